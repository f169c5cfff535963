from pathlib import Path

from wsss.data.labels import load_labels, mean_colour
from wsss.data.voc import VOCTree
from wsss.nets.hardware import device
from wsss.pipeline.partial_work import fingerprint
from wsss.runtime import setup
from wsss.seeds.erasing import eraser_for_round
from wsss.training.classifier import train_classifier

params = snakemake.params
settings = params.settings  # registry Step.settings: seed, classifier and, from round 1 on, erasing
setup(snakemake.log[0], snakemake.threads, settings["seed"])
tree = VOCTree.open(snakemake.input.data)
labels = load_labels(snakemake.input.labels)
image_ids = tree.split_ids(params.split)
round_index = int(snakemake.wildcards.round)
threshold = settings["erasing"]["threshold"] if round_index > 0 else None
eraser = eraser_for_round(snakemake.input.earlier_cams, threshold, snakemake.input.labels, image_ids)
# Not a declared output, so Snakemake keeps it when a killed job reruns; the job resumes from it.
checkpoint = Path(snakemake.output.model).with_name("checkpoint.pt")
train_classifier(
    tree,
    image_ids,
    labels,
    params.num_classes,
    settings["classifier"],
    settings["seed"] + round_index,
    device(),
    snakemake.output.model,
    snakemake.output.history,
    checkpoint,
    eraser=eraser,
    round_index=round_index,
    fingerprint=fingerprint(dict(params.items(), round=round_index), snakemake.input),
    checkpoint_every=snakemake.config["checkpoint_every"],
    weights=snakemake.input.weights[0] if snakemake.input.weights else None,
    hide_fill_rgb=mean_colour(snakemake.input.labels, image_ids),  # Hide-and-Seek fills like erasing does
    class_names=params.classes,
)
