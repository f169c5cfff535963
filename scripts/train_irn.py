from wsss.data.datasets import Dataset
from wsss.data.voc import index_files
from wsss.nets.hardware import device
from wsss.runtime import setup
from wsss.training.datasets import TrainingImages
from wsss.training.irn import train_irn
from wsss.training.loop import TrainingJob

params = snakemake.params
settings = params.settings  # registry Step.settings: seed and irn
setup(snakemake.log[0], snakemake.threads, settings["seed"])
dataset = Dataset.open(snakemake.input.data)
masks = index_files(snakemake.input.masks, ".png")
train_irn(
    TrainingImages(dataset, dataset.split_ids(params.split), masks, params.num_classes),
    settings["irn"],
    TrainingJob.for_rule(snakemake, settings["seed"], device()),
)
