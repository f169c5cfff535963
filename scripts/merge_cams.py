from wsss.cam import merge_cams
from wsss.runtime import setup
from wsss.voc import VOCTree, index_files

params = snakemake.params
setup(snakemake.log[0], snakemake.threads)
image_ids = VOCTree.open(snakemake.input.data).shard_ids(params.split, snakemake.wildcards.shard, params.num_shards)
merge_cams([index_files([d], ".npy") for d in snakemake.input.rounds], image_ids, snakemake.output[0])
