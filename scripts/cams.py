from wsss.data.labels import load_labels
from wsss.data.voc import VOCTree
from wsss.nets.classifier import load_classifier
from wsss.nets.hardware import device
from wsss.pipeline.partial_work import fingerprint, shard_work_dir
from wsss.runtime import setup
from wsss.seeds.cam import compute_cams
from wsss.seeds.erasing import eraser_for_round

params = snakemake.params
setup(snakemake.log[0], snakemake.threads)
tree = VOCTree.open(snakemake.input.data)
eraser = eraser_for_round(
    snakemake.input.earlier_cams, params.erasing_threshold, snakemake.input.labels, tree.split_ids(params.split)
)
with shard_work_dir(snakemake.output[0], fingerprint(dict(params.items()), snakemake.input)) as work:
    compute_cams(
        load_classifier(snakemake.input.model),
        tree,
        tree.shard_ids(params.split, snakemake.wildcards.shard, params.num_shards),
        load_labels(snakemake.input.labels),
        params.settings,
        work,
        device(),
        eraser,
    )
