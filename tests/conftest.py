"""Fixtures of both loops (tests/unit, tests/workflow); the workflow fixtures are in tests/workflow/conftest.py."""

import os

import numpy as np
import pytest

from tests import workflow_helpers
from tests.helpers import DEMO_CLASSES
from tests.voc_data import index_voc, make_photo_tree
from wsss.data.datasets import Dataset
from wsss.data.demo import make_demo_dataset
from wsss.data.voc import VOC_CLASSES


def pytest_configure(config):
    """In pytest-xdist's workers (make test, make unit: one per core) torch computes on one thread: two workers
    of two threads each on two cores wait on each other's threads at every small operation (make unit: 99 s in
    one process, 236 s in two workers of two threads)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


def pytest_collection_modifyitems(items):
    """The workflow tests first, the unit tests after them: pytest-xdist's workers (make test) then start on the
    long Snakemake runs and the many short unit modules fill the end, so both workers finish at about the same
    time (the Makefile keeps this order: --no-loadscope-reorder)."""
    items.sort(key=lambda item: not item.path.is_relative_to(workflow_helpers.WORKFLOW_TESTS))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item):
    """The running test (its setup and teardown included), for workflow_helpers.require_workflow_test."""
    workflow_helpers.current_test = item
    try:
        return (yield)
    finally:
        workflow_helpers.current_test = None


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> Dataset:
    """A small demo dataset (VOC layout), indexed as the workflow's steps read it."""
    root = tmp_path_factory.mktemp("demo") / "VOC2012"
    make_demo_dataset(
        root,
        class_names=DEMO_CLASSES,
        num_train=24,
        num_val=8,
        size_range=(48, 72),
        max_objects=3,
        background_only_fraction=0.1,
        body_colour_prob=0.85,
        seed=3,
    )
    return index_voc(root, root.parent / "index")


@pytest.fixture(scope="session")
def photo_tree(tmp_path_factory):
    """A VOC-layout tree of photo-like JPEGs (tests/voc_data.make_photo_tree): (its root, each image's kind)."""
    root = tmp_path_factory.mktemp("photos") / "VOC2012"
    return root, make_photo_tree(root)


@pytest.fixture
def num_classes() -> int:
    return len(VOC_CLASSES)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
