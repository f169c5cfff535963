import pandas as pd

from wsss.runtime import setup
from wsss.scoring.figures import miou_by_stage_figure, save_figure

setup(snakemake.log[0], snakemake.threads)
save_figure(miou_by_stage_figure(pd.read_parquet(snakemake.input[0])), snakemake.output[0])
