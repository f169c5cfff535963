"""Sharing artifacts through DVC remotes: a fresh clone + `make pull` is up to date for Snakemake.

The project is the README's tiny demo run, recorded with `make repro` (dvc repro), pushed to a
local-directory remote and committed: conftest.py's dvc_origin, built once a session and shared with
tests/workflow/test_readme.py, whose test_dvc_commands also takes it through S3 (moto's server on 127.0.0.1) as
the README does. Each test works in its own `git clone` of that project.
"""

import shutil
import subprocess

import pandas as pd
import pytest
import yaml

from tests.workflow_helpers import BIN, ENV, fake_venv, job_counts


def sh(cwd, *command, check=True, env=None):
    result = subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True, env=env or ENV)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, command))} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def dry_run(cwd, *targets):
    return job_counts(sh(cwd, BIN / "snakemake", "-n", *targets).stdout)


def make_pull(clone, *args, check=True, env=None):
    extra = [f"ARGS={' '.join(args)}"] if args else []
    return sh(clone, "make", "pull", *extra, check=check, env=env)


@pytest.fixture(scope="module")
def origin(dvc_origin):
    """The demo run, recorded by dvc repro, pushed to a local remote (dvc_origin.remote), committed."""
    return dvc_origin.root


def clone(origin, tmp_path):
    target = tmp_path / "clone"
    sh(tmp_path, "git", "clone", "-q", origin, target)
    fake_venv(target)  # as after `make install`; make pull then installs nothing into the shared venv
    return target


def test_fresh_clone_pull_is_up_to_date(origin, tmp_path):
    repo = clone(origin, tmp_path)
    result = make_pull(repo)
    assert "up to date for Snakemake: evaluate" in result.stdout
    assert dry_run(repo, "results/miou.parquet") == {} and dry_run(repo) == {}  # `all` names every shard too
    assert "missing provenance" not in sh(repo, BIN / "snakemake", "-n").stderr  # metadata recorded for every job
    pd.testing.assert_frame_equal(
        pd.read_parquet(repo / "results/miou.parquet"), pd.read_parquet(origin / "results/miou.parquet")
    )
    # a changed config value reruns exactly the steps that use it
    config = yaml.safe_load((repo / "config/config.yaml").read_text())
    config["pseudo_mask"]["fg_threshold"] = 0.7
    (repo / "config/config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    assert dry_run(repo, "results/miou.parquet") == {
        "pseudo_masks": 1,  # one shard (readme_runner.tiny_config)
        "train_irn": 1,  # IRN trains on the pseudo-masks
        "random_walk": 1,
        "train_segmentation": 1,
        "predict_segmentation": 1,
        "evaluate_stage": 3,  # pseudo_mask, random_walk, segmentation
        "miou_table": 1,
    }
    status = sh(repo, BIN / "dvc", "status").stdout
    assert "pseudo_masks" in status and "cams_r0" not in status
    # the demo data has no inputs: only the metadata recorded by make pull can trigger it
    config["demo"]["body_colour_prob"] = 0.8
    (repo / "config/config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    assert dry_run(repo, "results/miou.parquet")["demo_dataset"] == 1


def test_partial_pull_runs_segmentation_without_cams(origin, tmp_path):
    repo = clone(origin, tmp_path)
    result = make_pull(repo, "data", "pseudo_masks")
    assert "up to date for Snakemake: pseudo_masks" in result.stdout and "skipped cams_r0: not pulled" in result.stdout
    assert not (repo / "results/cams/r0").exists()
    assert dry_run(repo, "results/segmentation/pseudo_mask/model.pt") == {"train_segmentation": 1}


def test_tampered_remote_object_is_not_marked_up_to_date(origin, dvc_origin, tmp_path):
    remote = tmp_path / "remote"
    shutil.copytree(dvc_origin.remote, remote)
    repo = clone(origin, tmp_path)
    sh(repo, BIN / "dvc", "remote", "modify", "--local", "shared", "url", remote)
    # corrupt one pseudo-mask in the remote: find its object through the .dir manifest
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    entry = next(o for o in lock["stages"]["pseudo_masks"]["outs"] if o["path"] == "results/pseudo_masks")
    manifest_md5 = entry["md5"][: -len(".dir")]
    manifest = yaml.safe_load((remote / "files/md5" / manifest_md5[:2] / f"{manifest_md5[2:]}.dir").read_text())
    victim = next(item for item in manifest if item["relpath"].endswith(".png"))
    obj = remote / "files/md5" / victim["md5"][:2] / victim["md5"][2:]
    obj.chmod(0o644)
    obj.write_bytes(obj.read_bytes()[:-10] + b"tampered!!")
    result = make_pull(repo, check=False)
    assert "up to date for Snakemake: pseudo_masks" not in result.stdout
    assert "pseudo_masks" in result.stderr + result.stdout
    assert not (repo / "results/pseudo_masks").exists()  # removed: never taken as a valid output
    jobs = dry_run(repo)
    assert jobs.get("pseudo_masks") == 1
