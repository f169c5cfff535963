from pathlib import Path

from wsss.data.voc import VOCTree, index_files
from wsss.nets.hardware import device
from wsss.pipeline.partial_work import fingerprint
from wsss.runtime import setup
from wsss.training.irn import train_irn

params = snakemake.params
settings = params.settings  # registry Step.settings: seed and irn
setup(snakemake.log[0], snakemake.threads, settings["seed"])
tree = VOCTree.open(snakemake.input.data)
# Not a declared output, so Snakemake keeps it when a killed job reruns; the job resumes from it.
checkpoint = Path(snakemake.output.model).with_name("checkpoint.pt")
train_irn(
    tree,
    tree.split_ids(params.split),
    index_files(snakemake.input.masks, ".png"),
    params.num_classes,
    settings["irn"],
    settings["seed"],
    device(),
    (snakemake.output.model, snakemake.output.history, checkpoint),
    fingerprint=fingerprint(dict(params.items()), snakemake.input),
    checkpoint_every=snakemake.config["checkpoint_every"],
    weights=snakemake.input.weights[0] if snakemake.input.weights else None,
)
