from wsss.download import download
from wsss.models import weights_source
from wsss.runtime import setup

setup(snakemake.log[0], snakemake.threads)
urls, sha256_prefix = weights_source(snakemake.wildcards.arch, snakemake.wildcards.tag, snakemake.params.mirrors)
download(urls, snakemake.output[0], sha256_prefix=sha256_prefix, **snakemake.params.settings)
