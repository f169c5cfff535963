from wsss.download import download
from wsss.runtime import setup

setup(snakemake.log[0], snakemake.threads)
params = snakemake.params
archive = snakemake.wildcards.archive
urls = [url if url.endswith(archive) else f"{url.rstrip('/')}/{archive}" for url in params.mirrors]
download(urls, snakemake.output[0], md5=params.md5, **params.settings)
