from wsss.data.download import download, mirror_urls
from wsss.runtime import setup

setup(snakemake.log[0], snakemake.threads)
params = snakemake.params
urls = mirror_urls(params.mirrors, snakemake.wildcards.archive)
download(urls, snakemake.output[0], md5=params.md5, **params.settings)
