from wsss.nets.backbones import imagenet_weights
from wsss.runtime import setup

setup(snakemake.log[0], snakemake.threads)
imagenet_weights(
    snakemake.wildcards.arch,
    snakemake.wildcards.tag,
    snakemake.output[0],
    snakemake.params.mirrors,
    **snakemake.params.settings,
)
