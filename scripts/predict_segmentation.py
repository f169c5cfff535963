from wsss.data.voc import VOCTree
from wsss.nets.hardware import device
from wsss.nets.segmentation import load_segmentation, predict_images
from wsss.pipeline.partial_work import fingerprint, shard_work_dir
from wsss.runtime import setup

setup(snakemake.log[0], snakemake.threads)
tree = VOCTree.open(snakemake.input.data)
with shard_work_dir(snakemake.output[0], fingerprint(dict(snakemake.params.items()), snakemake.input)) as work:
    predict_images(
        load_segmentation(snakemake.input.model),
        tree,
        tree.split_ids(snakemake.params.split),
        work,
        device(),
        snakemake.params.long_side,
        snakemake.params.inference,
    )
