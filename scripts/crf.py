from functools import partial

from wsss.runtime import setup
from wsss.seeds.masks import crf_label, label_cam_shard

params = snakemake.params
setup(snakemake.log[0], snakemake.threads)
to_label = partial(crf_label, bg_threshold=params.bg_threshold, params=params.crf)
label_cam_shard(snakemake.input, snakemake.output[0], snakemake.wildcards.shard, dict(params.items()), to_label)
