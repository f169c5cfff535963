"""The coco dataset kind (placeholder: being written)."""

from __future__ import annotations

from wsss.data.datasets import BuiltIndex, IndexRequest


def coco_inputs(settings: dict) -> dict:
    raise NotImplementedError


def build_coco(request: IndexRequest) -> BuiltIndex:
    raise NotImplementedError
