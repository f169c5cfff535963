from wsss.cam import compute_cams
from wsss.classifier import load_classifier
from wsss.erasing import Eraser
from wsss.labels import load_labels, mean_colour
from wsss.runtime import device, setup
from wsss.voc import VOCTree

params = snakemake.params
setup(snakemake.log[0], snakemake.threads)
tree = VOCTree(snakemake.input.data)
split_ids = tree.split_ids(params.split)
eraser = None
if snakemake.input.earlier_cams:
    fill = mean_colour(snakemake.input.labels, split_ids)
    eraser = Eraser.from_shard_dirs(snakemake.input.earlier_cams, params.erasing_threshold, fill)
compute_cams(
    load_classifier(snakemake.input.model), tree,
    tree.shard_ids(params.split, snakemake.wildcards.shard, params.num_shards),
    load_labels(snakemake.input.labels), params.scales, snakemake.output[0], device(), eraser,
)
