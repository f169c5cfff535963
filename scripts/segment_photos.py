from wsss.data.datasets import image_files
from wsss.data.voc import shard_ids
from wsss.nets.hardware import device
from wsss.pipeline.partial_work import fingerprint, shard_work_dir
from wsss.runtime import setup
from wsss.training.segmentation import load_segmentation, predict_images

# registry Step.settings of "segment": segment.images, segmentation.long_side and .inference
params = snakemake.params
prediction = params.settings["segmentation"]
setup(snakemake.log[0], snakemake.threads)
photos = image_files(snakemake.input.photos)
image_ids = shard_ids(list(photos), int(snakemake.wildcards.shard), params.num_shards)
with shard_work_dir(snakemake.output[0], fingerprint(dict(params.items()), snakemake.input)) as work:
    predict_images(
        load_segmentation(snakemake.input.model),
        {i: photos[i] for i in image_ids},
        work / "labels",
        device(),
        prediction["long_side"],
        prediction["inference"],
        overlay_dir=work / "overlays",
    )
