from pathlib import Path

from wsss.runtime import device, setup
from wsss.segmentation import train_segmentation
from wsss.voc import VOCTree, index_files

params = snakemake.params
setup(snakemake.log[0], snakemake.threads, params.seed)
tree = VOCTree.open(snakemake.input.data)
image_ids = tree.split_ids(params.split)
supervision = snakemake.wildcards.supervision
if supervision == "pseudo_mask":
    mask_paths = index_files(snakemake.input.masks, ".png")
else:
    mask_paths = {i: tree.mask_path(i) for i in image_ids}
train_segmentation(
    tree, image_ids, mask_paths, params.num_classes, params.settings, params.seed, device(),
    snakemake.output.model, snakemake.output.history, Path(snakemake.output.model).with_name("checkpoint.pt"),
    desc=f"segmentation ({supervision})", weights=snakemake.input.weights[0] if snakemake.input.weights else None,
)
