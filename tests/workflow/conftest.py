"""Fixtures that run the workflow, DVC or a server: only tests in this folder (make test, not make unit) can
use them."""

import dataclasses
import json
import os
import socket
import subprocess
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest
from filelock import FileLock

from tests import workflow_helpers


def built_once(tmp_path_factory, name: str, build, record_type):
    """build(folder): a project that tests of several modules read, built once per pytest run. `make test` runs
    the suite in pytest-xdist workers (one process per core, each module in one worker): there the first worker
    to ask builds it in the run's folder, shared by the workers, while the others wait on a lock and read the
    record it left (record_type, a dataclass of paths, strings and dicts, as JSON); a failed build is reported
    to each worker that asks, not repeated."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return build(tmp_path_factory.mktemp(name))
    shared = tmp_path_factory.getbasetemp().parent  # the run's folder, above each worker's own
    record, failed = shared / f"{name}.json", shared / f"{name}.failed"
    with FileLock(shared / f"{name}.lock"):
        if failed.exists():
            pytest.fail(f"{name} failed to build in another worker:\n{failed.read_text()}")
        if not record.exists():
            folder = shared / name
            folder.mkdir()
            try:
                built = build(folder)
            except BaseException:
                failed.write_text(traceback.format_exc())
                raise
            fields = {key: str(value) if isinstance(value, Path) else value for key, value in vars(built).items()}
            record.write_text(json.dumps(fields))
    fields = json.loads(record.read_text())
    paths = {field.name for field in dataclasses.fields(record_type) if field.type in (Path, "Path")}
    return record_type(**{key: Path(value) if key in paths else value for key, value in fields.items()})


@dataclass(frozen=True)
class TinyRun:
    root: Path  # the finished project copy
    left_after_stop: dict[str, int]  # rule -> jobs that a dry run of the tables planned after the stop


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> TinyRun:
    """The whole workflow on the tiny config, run as a user stops and resumes it: up to the round-0 classifier
    (its model as the target), then the default target (tables, report figures, every shard). No job is
    interrupted: these are the figures other runs must match, and independent runs do (the grid's experiment with
    these settings in test_grid.py, the reference commit's run in test_results_kept.py, a run killed
    mid-training on SLURM in test_slurm.py). test_workflow.py works on a copy."""

    def build(folder: Path) -> TinyRun:
        root = workflow_helpers.copy_workflow(folder)
        workflow_helpers.run(root, "results/classifier/r0/model.pt")
        left = workflow_helpers.planned_jobs(root, "results/miou.parquet")
        workflow_helpers.run(root)
        return TinyRun(root, left)

    return built_once(tmp_path_factory, "reference", build, TinyRun)


@pytest.fixture(scope="session")
def tiny_reference(tiny_run) -> Path:
    """tiny_run's project: the figures other runs must match. Tests read it or work on a copy of it."""
    return tiny_run.root


@dataclass(frozen=True)
class GridRun:
    root: Path  # the finished grid project (workflow_helpers.GRID)
    output: str  # the run's stdout and stderr


@pytest.fixture(scope="session")
def grid_run(tmp_path_factory) -> GridRun:
    """The experiments grid run to its tables in its own project: test_grid.py reads it, and test_seeds.py
    compares seed 0 of a replicated one-round run with its `cam` experiment (the same settings)."""

    def build(folder: Path) -> GridRun:
        root = workflow_helpers.copy_grid(folder)
        result = workflow_helpers.run(root, configfiles=workflow_helpers.GRID_FILES)
        return GridRun(root, result.stdout + result.stderr)

    return built_once(tmp_path_factory, "grid-run", build, GridRun)


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
    a local remote, push, commit): one tiny run, shared by test_readme.py and test_dvc.py (see
    readme_runner.make_dvc_origin). Tests clone it or work on a copy: none changes its tracked files or results
    (test_dvc.py adds an S3 remote in the git-ignored .dvc/config.local)."""
    from tests.readme_runner import DvcOrigin, make_dvc_origin

    return built_once(tmp_path_factory, "dvc-origin", make_dvc_origin, DvcOrigin)


@pytest.fixture(scope="session")
def own_data(tmp_path_factory):
    """The README's "Your own data" commands run on a coco340 subset in three forms (tests/own_data.py): the
    VOC tree, COCO's JSON, tagged photos (and their results/segmented); test_readme.py compares them and
    test_photos.py checks the VOC tree's run on real JPEGs. Skipped, saying why, without ../shared's coco340."""
    from tests.own_data import COCO340, OwnDataRuns, make_own_data_runs

    if not COCO340.is_dir():
        pytest.skip(f"the coco340 development set is not at {COCO340} (../shared/data/coco340-voc, outside the repo)")
    return built_once(tmp_path_factory, "own-data", make_own_data_runs, OwnDataRuns)
