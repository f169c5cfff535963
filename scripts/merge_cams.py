from wsss.data.datasets import Dataset
from wsss.data.voc import index_files
from wsss.pipeline.partial_work import fingerprint, shard_work_dir
from wsss.runtime import setup
from wsss.seeds.masks import merge_cams

params = snakemake.params
setup(snakemake.log[0], snakemake.threads)
image_ids = Dataset.open(snakemake.input.data).shard_ids(params.split, snakemake.wildcards.shard, params.num_shards)
with shard_work_dir(snakemake.output[0], fingerprint(dict(params.items()), snakemake.input)) as work:
    merge_cams([index_files([d], ".npy") for d in snakemake.input.rounds], image_ids, work)
