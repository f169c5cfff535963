from wsss.data.datasets import Dataset
from wsss.nets.hardware import device
from wsss.pipeline.partial_work import fingerprint, shard_work_dir
from wsss.runtime import setup
from wsss.training.segmentation import load_segmentation, predict_images

# registry Step.settings of "predictions": segmentation.long_side and .inference, splits.val
settings = snakemake.params.settings
prediction = settings["segmentation"]
setup(snakemake.log[0], snakemake.threads)
dataset = Dataset.open(snakemake.input.data)
with shard_work_dir(snakemake.output[0], fingerprint(dict(snakemake.params.items()), snakemake.input)) as work:
    predict_images(
        load_segmentation(snakemake.input.model),
        {i: dataset.image_path(i) for i in dataset.split_ids(settings["splits"]["val"])},
        work,
        device(),
        prediction["long_side"],
        prediction["inference"],
    )
