from functools import partial

from wsss.runtime import setup
from wsss.seeds.masks import label_cam_shard, pseudo_mask

params = snakemake.params
setup(snakemake.log[0], snakemake.threads)
to_label = partial(pseudo_mask, fg_threshold=params.fg_threshold, bg_threshold=params.bg_threshold, params=params.crf)
label_cam_shard(snakemake.input, snakemake.output[0], snakemake.wildcards.shard, dict(params.items()), to_label)
