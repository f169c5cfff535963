import pandas as pd

from wsss.runtime import setup
from wsss.scoring.figures import save_figure, training_curves_figure

setup(snakemake.log[0], snakemake.threads)
save_figure(training_curves_figure([pd.read_parquet(path) for path in snakemake.input]), snakemake.output[0])
