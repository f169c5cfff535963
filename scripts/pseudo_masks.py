from functools import partial

from wsss.data.labels import load_labels
from wsss.seeds.masks import label_shard, pseudo_mask
from wsss.pipeline.partial_work import fingerprint, shard_work_dir
from wsss.runtime import setup
from wsss.data.voc import VOCTree

params = snakemake.params
setup(snakemake.log[0], snakemake.threads)
tree = VOCTree.open(snakemake.input.data)
with shard_work_dir(snakemake.output[0], fingerprint(dict(params.items()), snakemake.input)) as work:
    label_shard(
        tree, tree.shard_ids(params.split, snakemake.wildcards.shard, params.num_shards),
        snakemake.input.cams, load_labels(snakemake.input.labels), work,
        partial(pseudo_mask, fg_threshold=params.fg_threshold, bg_threshold=params.bg_threshold, params=params.crf),
    )
