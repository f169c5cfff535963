import pandas as pd

from wsss.data.labels import load_labels
from wsss.data.voc import VOCTree
from wsss.runtime import setup
from wsss.scoring.figures import write_train_gallery

params = snakemake.params
setup(snakemake.log[0], snakemake.threads)
write_train_gallery(
    VOCTree.open(snakemake.input.data),
    load_labels(snakemake.input.labels),
    pd.read_parquet(snakemake.input.scores),
    params.split,
    params.settings,
    [list(getattr(snakemake.input, f"cams_r{r}")) for r in range(params.rounds)],
    list(snakemake.input.merged),
    {stage: list(getattr(snakemake.input, stage)) for stage in params.label_stages},
    params.classes,
    params.bg_threshold,
    snakemake.output[0],
    params.rank_stage,
)
