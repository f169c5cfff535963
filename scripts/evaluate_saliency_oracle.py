from wsss.data.datasets import Dataset
from wsss.data.labels import load_labels
from wsss.runtime import setup
from wsss.scoring.evaluate import evaluate_saliency_oracle

params = snakemake.params
setup(snakemake.log[0], snakemake.threads)
dataset = Dataset.open(snakemake.input.data)
evaluate_saliency_oracle(
    dataset,
    dataset.masked_ids(params.split),  # a stage is scored on the images of its split that have masks
    snakemake.input.cams,
    snakemake.input.saliency,
    load_labels(snakemake.input.labels),
    params.thresholds,
    params.fg_threshold,
    params.crf,
    params.num_classes,
    snakemake.output[0],
)
