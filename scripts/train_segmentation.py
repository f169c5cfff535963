from pathlib import Path

from wsss.data.voc import VOCTree, index_files
from wsss.nets.hardware import device
from wsss.pipeline.partial_work import fingerprint
from wsss.pipeline.registry import GROUND_TRUTH
from wsss.runtime import setup
from wsss.training.segmentation import train_segmentation

params = snakemake.params
settings = params.settings  # registry Step.settings: seed and segmentation (training keys)
setup(snakemake.log[0], snakemake.threads, settings["seed"])
tree = VOCTree.open(snakemake.input.data)
image_ids = tree.split_ids(params.split)
supervision = snakemake.wildcards.supervision  # pseudo_mask / random_walk (their label maps) or ground_truth
if supervision == GROUND_TRUTH:
    mask_paths = {i: tree.mask_path(i) for i in image_ids}
else:
    mask_paths = index_files(snakemake.input.masks, ".png")
# Not a declared output, so Snakemake keeps it when a killed job reruns; the job resumes from it.
checkpoint = Path(snakemake.output.model).with_name("checkpoint.pt")
train_segmentation(
    tree,
    image_ids,
    mask_paths,
    params.num_classes,
    settings["segmentation"],
    settings["seed"],
    device(),
    snakemake.output.model,
    snakemake.output.history,
    checkpoint,
    desc=f"segmentation ({supervision})",
    fingerprint=fingerprint(dict(params.items(), supervision=supervision), snakemake.input),
    checkpoint_every=snakemake.config["checkpoint_every"],
    weights=snakemake.input.weights[0] if snakemake.input.weights else None,
)
