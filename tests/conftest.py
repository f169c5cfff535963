import numpy as np
import pytest

from wsss.data.demo import make_demo_dataset
from wsss.data.voc import VOC_CLASSES, VOCTree

DEMO_CLASSES = ["aeroplane", "bird", "car", "cat", "person"]


@pytest.fixture(scope="session")
def demo_tree(tmp_path_factory) -> VOCTree:
    root = tmp_path_factory.mktemp("demo") / "VOC2012"
    make_demo_dataset(root, class_names=DEMO_CLASSES, num_train=24, num_val=8, size_range=(48, 72),
                      max_objects=3, background_only_fraction=0.1, body_colour_prob=0.85, seed=3)
    return VOCTree(root)


@pytest.fixture
def num_classes() -> int:
    return len(VOC_CLASSES)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def tiny_reference(tmp_path_factory):
    """An uninterrupted local run of the whole workflow on the tiny config: the figures other runs must match."""
    from .workflow_helpers import copy_workflow, run

    root = copy_workflow(tmp_path_factory.mktemp("reference"))
    run(root, "results/miou.parquet")
    return root
