from wsss.data.download import extract
from wsss.runtime import setup

setup(snakemake.log[0], snakemake.threads)
extract(snakemake.input[0], snakemake.output[0], snakemake.params.member_root, tuple(snakemake.params.keep))
