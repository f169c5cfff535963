import pandas as pd

from wsss.runtime import setup
from wsss.scoring.figures import class_iou_figure, save_figure

setup(snakemake.log[0], snakemake.threads)
save_figure(class_iou_figure(pd.read_parquet(snakemake.input[0]), snakemake.params.stages), snakemake.output[0])
