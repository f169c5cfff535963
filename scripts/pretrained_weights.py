from wsss.data.download import fetch_settings
from wsss.nets.backbones import imagenet_weights
from wsss.runtime import setup

setup(snakemake.log[0], snakemake.threads)
fetch = snakemake.config["download"]
imagenet_weights(
    snakemake.wildcards.arch,
    snakemake.wildcards.tag,
    snakemake.output[0],
    fetch["weights"],
    **fetch_settings(fetch),
)
