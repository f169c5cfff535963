from functools import partial

from wsss.runtime import setup
from wsss.seeds.masks import crf_label, label_cam_shard

params = snakemake.params
setup(snakemake.log[0], snakemake.threads)
settings = params.settings  # registry Step.settings: crf and cam.eval_threshold
to_label = partial(crf_label, bg_threshold=settings["cam"]["eval_threshold"], params=settings["crf"])
label_cam_shard(snakemake.input, snakemake.output[0], snakemake.wildcards.shard, dict(params.items()), to_label)
