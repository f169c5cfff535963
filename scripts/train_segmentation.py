from wsss.data.datasets import Dataset
from wsss.data.labels import load_labels
from wsss.data.voc import index_files
from wsss.nets.hardware import device
from wsss.pipeline.registry import GROUND_TRUTH
from wsss.runtime import setup
from wsss.training.datasets import TrainingImages
from wsss.training.loop import TrainingJob
from wsss.training.segmentation import train_segmentation

params = snakemake.params
settings = params.settings  # registry Step.settings: seed and segmentation (training keys)
setup(snakemake.log[0], snakemake.threads, settings["seed"])
dataset = Dataset.open(snakemake.input.data)
supervision = snakemake.wildcards.supervision  # pseudo_mask / random_walk (their label maps) or ground_truth
if supervision == GROUND_TRUTH:  # the fully-supervised bound: the train images that have masks
    image_ids = dataset.masked_ids(params.split)
    mask_paths = {i: dataset.mask_path(i) for i in image_ids}
else:
    image_ids = dataset.split_ids(params.split)
    mask_paths = index_files(snakemake.input.masks, ".png")
labels = snakemake.input.get("labels", [])  # SEC's loss only (registry.trains_with_sec)
train_segmentation(
    TrainingImages(dataset, image_ids, mask_paths, len(params.classes)),
    settings["segmentation"],
    TrainingJob.for_rule(snakemake, settings["seed"], device(), supervision=supervision),
    desc=f"segmentation ({supervision})",
    class_names=params.classes,
    class_weights_path=snakemake.output.class_weights,
    image_labels=load_labels(labels[0]) if labels else None,
)
