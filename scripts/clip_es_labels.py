from functools import partial

from wsss.runtime import setup
from wsss.seeds.masks import clip_es_label, label_cam_shard

params = snakemake.params
setup(snakemake.log[0], snakemake.threads)
settings = params.settings["clip_es"]  # registry Step.settings: clip_es.crf and clip_es.confidence
to_label = partial(clip_es_label, crf=settings["crf"], confidence=settings["confidence"])
label_cam_shard(snakemake.input, snakemake.output[0], snakemake.wildcards.shard, dict(params.items()), to_label)
