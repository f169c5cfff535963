from wsss.data.download import download, fetch_settings, mirror_urls
from wsss.runtime import setup

setup(snakemake.log[0], snakemake.threads)
params, fetch = snakemake.params, snakemake.config["download"]
urls = mirror_urls(fetch[params.source]["mirrors"], snakemake.wildcards.archive)
download(urls, snakemake.output[0], md5=params.md5, **fetch_settings(fetch))
