"""OpenAI's CLIP ViT-B/16 weights file, where it is published and its checksum: torch-free, so the download step
(scripts/clip_weights.py) starts without importing torch. Reading it: wsss.nets.clip."""

from __future__ import annotations

from wsss.data.download import mirror_urls

# OpenAI's ViT-B/16 (the file CLIP-ES's README names); the hex in its address is the file's sha256
CLIP_VIT_B16_URL = (
    "https://openaipublic.azureedge.net/clip/models/"
    "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt"
)
CLIP_VIT_B16_SHA256 = "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f"


def clip_weights_urls(mirrors: list[str]) -> list[str]:
    """Where the file is fetched from: each mirror (<mirror>/ViT-B-16.pt), then OpenAI's address."""
    return mirror_urls(mirrors, CLIP_VIT_B16_URL.rsplit("/", 1)[1]) + [CLIP_VIT_B16_URL]
