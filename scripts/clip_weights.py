from wsss.data.download import download, fetch_settings
from wsss.nets.clip_file import CLIP_VIT_B16_SHA256, clip_weights_urls
from wsss.runtime import setup

setup(snakemake.log[0], snakemake.threads)
fetch = snakemake.config["download"]
urls = clip_weights_urls(fetch["weights"])
download(urls, snakemake.output[0], sha256_prefix=CLIP_VIT_B16_SHA256, **fetch_settings(fetch))
