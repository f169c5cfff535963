from wsss.data.datasets import Dataset
from wsss.data.labels import load_labels, mean_colour
from wsss.nets.hardware import device
from wsss.runtime import setup
from wsss.seeds.erasing import eraser_for_round
from wsss.training.classifier import train_classifier
from wsss.training.datasets import TrainingImages
from wsss.training.loop import TrainingJob

params = snakemake.params
settings = params.settings  # registry Step.settings: seed, classifier and, from round 1 on, erasing
setup(snakemake.log[0], snakemake.threads, settings["seed"])
dataset = Dataset.open(snakemake.input.data)
labels = load_labels(snakemake.input.labels)
image_ids = dataset.split_ids(params.split)
round_index = int(snakemake.wildcards.round)
threshold = settings["erasing"]["threshold"] if round_index > 0 else None
eraser = eraser_for_round(snakemake.input.earlier_cams, threshold, snakemake.input.labels, image_ids)
train_classifier(
    TrainingImages(dataset, image_ids, labels, params.num_classes),
    settings["classifier"],
    TrainingJob.for_rule(snakemake, settings["seed"] + round_index, device(), round=round_index),
    eraser=eraser,
    round_index=round_index,
    hide_fill_rgb=mean_colour(snakemake.input.labels, image_ids),  # Hide-and-Seek fills like erasing does
    class_names=params.classes,
)
