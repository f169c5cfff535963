from wsss.data.datasets import Dataset
from wsss.data.labels import image_labels
from wsss.runtime import setup

setup(snakemake.log[0], snakemake.threads)
dataset = Dataset.open(snakemake.input.data)
image_ids = sorted({i for split in snakemake.params.splits for i in dataset.split_ids(split)})
image_labels(dataset, image_ids, len(snakemake.params.classes)).to_parquet(snakemake.output[0], index=False)
