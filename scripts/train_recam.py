from wsss.data.datasets import Dataset
from wsss.data.labels import load_labels
from wsss.nets.hardware import device
from wsss.runtime import setup
from wsss.training.datasets import TrainingImages
from wsss.training.loop import TrainingJob
from wsss.training.recam import train_recam

params = snakemake.params
settings = params.settings  # registry Step.settings: seed, recam, classifier's resize_long and crop_size
setup(snakemake.log[0], snakemake.threads, settings["seed"])
dataset = Dataset.open(snakemake.input.data)
train_recam(
    snakemake.input.classifier,
    TrainingImages(dataset, dataset.split_ids(params.split), load_labels(snakemake.input.labels), params.num_classes),
    settings["recam"],
    {**settings["classifier"], "num_workers": params.num_workers},
    TrainingJob.for_rule(snakemake, settings["seed"], device()),
)
