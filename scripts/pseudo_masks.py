from functools import partial

from wsss.runtime import setup
from wsss.seeds.masks import label_cam_shard, pseudo_mask
from wsss.seeds.saliency import saliency_pseudo_mask

params = snakemake.params
setup(snakemake.log[0], snakemake.threads)
thresholds = params.settings["pseudo_mask"]  # registry Step.settings: crf, pseudo_mask and, with it, saliency
with_saliency = "saliency" in params.settings  # pseudo_mask.saliency_threshold set: its maps are inputs.saliency
if with_saliency:
    to_label = partial(
        saliency_pseudo_mask,
        fg_threshold=thresholds["fg_threshold"],
        saliency_threshold=thresholds["saliency_threshold"],
        params=params.settings["crf"],
    )
else:
    to_label = partial(
        pseudo_mask,
        fg_threshold=thresholds["fg_threshold"],
        bg_threshold=thresholds["bg_threshold"],
        params=params.settings["crf"],
    )
label_cam_shard(
    snakemake.input,
    snakemake.output[0],
    snakemake.wildcards.shard,
    dict(params.items()),
    to_label,
    saliency=with_saliency,
)
