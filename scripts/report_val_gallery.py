import pandas as pd

from wsss.data.datasets import Dataset
from wsss.runtime import setup
from wsss.scoring.figures import write_val_gallery

params = snakemake.params
setup(snakemake.log[0], snakemake.threads)
write_val_gallery(
    Dataset.open(snakemake.input.data),
    pd.read_parquet(snakemake.input.scores),
    params.split,
    params.settings,
    list(snakemake.input.segmentation),
    list(snakemake.input.fully_supervised),
    params.classes,
    snakemake.output[0],
)
