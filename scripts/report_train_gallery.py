import pandas as pd

from wsss.data.datasets import Dataset
from wsss.data.labels import load_labels
from wsss.runtime import setup
from wsss.scoring.figures import TrainGalleryRun, write_train_gallery

params = snakemake.params
setup(snakemake.log[0], snakemake.threads)
run = TrainGalleryRun(
    dataset=Dataset.open(snakemake.input.data),
    labels=load_labels(snakemake.input.labels),
    image_scores=pd.read_parquet(snakemake.input.scores),
    round_cam_dirs=[list(getattr(snakemake.input, f"cams_r{r}")) for r in range(params.rounds)],
    merged_cam_dirs=list(snakemake.input.merged),
    label_map_dirs={stage: list(getattr(snakemake.input, stage)) for stage in params.label_stages},
    class_names=params.classes,
    bg_threshold=params.bg_threshold,
)
write_train_gallery(run, params.split, params.rank_stage, params.settings, snakemake.output[0])
