from wsss.data.datasets import Dataset
from wsss.pipeline.partial_work import fingerprint, shard_work_dir
from wsss.runtime import setup
from wsss.seeds.saliency import saliency_shard

params = snakemake.params
setup(snakemake.log[0], snakemake.threads)
dataset = Dataset.open(snakemake.input.data)
image_ids = dataset.shard_ids(params.split, snakemake.wildcards.shard, params.num_shards)
with shard_work_dir(snakemake.output[0], fingerprint(dict(params.items()), snakemake.input)) as work:
    saliency_shard(dataset, image_ids, params.settings["saliency"]["source"], work)  # registry Step.settings
