from wsss.data.download import download, fetch_settings, mirror_urls
from wsss.nets.clip import CLIP_VIT_B16_SHA256, CLIP_VIT_B16_URL
from wsss.runtime import setup

setup(snakemake.log[0], snakemake.threads)
fetch = snakemake.config["download"]
urls = mirror_urls(fetch["weights"], CLIP_VIT_B16_URL.rsplit("/", 1)[1]) + [CLIP_VIT_B16_URL]
download(urls, snakemake.output[0], sha256_prefix=CLIP_VIT_B16_SHA256, **fetch_settings(fetch))
