import socket
import subprocess
import time

import numpy as np
import pytest

from tests import workflow_helpers
from tests.helpers import DEMO_CLASSES
from tests.workflow_helpers import WORKFLOW_FIXTURES
from wsss.data.demo import make_demo_dataset
from wsss.data.voc import VOC_CLASSES, VOCTree


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects
def pytest_collection_modifyitems(items):
    """`workflow` on every slurm or s3 test and on every test that uses a workflow fixture, so that
    `pytest -m "not workflow"` (make unit) leaves them all out. Tests that call the workflow helpers
    themselves carry the mark in their file: workflow_helpers.require_workflow_mark fails them otherwise."""
    for item in items:
        used = WORKFLOW_FIXTURES.keys() & set(item.fixturenames)
        for marker in filter(None, (WORKFLOW_FIXTURES[name] for name in used)):
            item.add_marker(marker)
        if used or item.get_closest_marker("slurm") or item.get_closest_marker("s3"):
            item.add_marker("workflow")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item):
    """The running test (its setup and teardown included), for workflow_helpers.require_workflow_mark."""
    workflow_helpers.current_test = item
    try:
        return (yield)
    finally:
        workflow_helpers.current_test = None


@pytest.fixture(scope="session")
def demo_tree(tmp_path_factory) -> VOCTree:
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
    root = workflow_helpers.copy_workflow(tmp_path_factory.mktemp("reference"))
    workflow_helpers.run(root, "results/miou.parquet")
    return root


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 server on 127.0.0.1 with a bucket `wsss`: (its URL, an environment with the credentials)."""
    with socket.socket() as probe:  # a free port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [workflow_helpers.BIN / "moto_server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env = {
        **workflow_helpers.ENV,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    import boto3

    boto3.client(
        "s3", endpoint_url=url, aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    ).create_bucket(Bucket="wsss")
    yield url, env
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture(scope="session")
def dvc_origin(tmp_path_factory):
    """The README's demo project after `make run` and the DVC section's commands (git repository, dvc repro,
    a local remote, push, commit): one tiny run, shared by tests/test_readme.py and tests/test_dvc.py (see
    readme_runner.make_dvc_origin). Tests clone it or work on a copy: none changes its tracked files or results
    (test_dvc.py adds an S3 remote in the git-ignored .dvc/config.local)."""
    from tests.readme_runner import make_dvc_origin

    return make_dvc_origin(tmp_path_factory.mktemp("dvc-origin"))
