from pathlib import Path

from wsss.data.datasets import IndexRequest
from wsss.data.kinds import index_dataset
from wsss.runtime import setup

setup(snakemake.log[0], snakemake.threads)
params = snakemake.params
request = IndexRequest(
    settings=params.dataset,
    inputs=dict(snakemake.input.items()),
    splits=params.splits,
    train_split=params.train_split,
    classes=params.classes,
    out_dir=Path(snakemake.output[0]),
    config={"expected_train_aug": snakemake.config["expected_train_aug"]},  # a check of the lists, no param
)
index_dataset(request)
