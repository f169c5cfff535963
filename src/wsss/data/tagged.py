"""The tagged dataset kind (placeholder: being written)."""

from __future__ import annotations

from wsss.data.datasets import BuiltIndex, IndexRequest


def tagged_inputs(settings: dict) -> dict:
    raise NotImplementedError


def masked_splits(settings: dict, splits: list[str], classes: list[str]) -> frozenset:
    raise NotImplementedError


def build_tagged(request: IndexRequest) -> BuiltIndex:
    raise NotImplementedError
