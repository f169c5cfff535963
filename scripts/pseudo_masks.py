from functools import partial

from wsss.runtime import setup
from wsss.seeds.masks import pseudo_mask, label_cam_shard

params = snakemake.params
setup(snakemake.log[0], snakemake.threads)
label_cam_shard(
    snakemake.input.data, snakemake.input.labels, snakemake.input.cams, snakemake.output[0], snakemake.wildcards.shard,
    dict(params.items()), partial(pseudo_mask, fg_threshold=params.fg_threshold, bg_threshold=params.bg_threshold, params=params.crf),
)
