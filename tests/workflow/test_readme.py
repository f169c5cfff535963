"""Every command in README.md's ```bash blocks runs as written (issue 12: documented commands rot).

How it works
------------
``readme_commands()`` reads README.md's ```bash / ```sh blocks, joins ``\\`` continuation lines, drops
comment lines and trailing comments (``  # ...``: two spaces, then ``#``) and returns each command line
once, in README order. ``RUNNERS`` (in ``tests/readme_runner.py``, with the rest of the machinery) maps every
such line, exactly as extracted, to how the tests run it:

- ``REAL``: through ``bash -c`` as written (placeholders substituted, see ``SUBSTITUTIONS``);
- ``DRY_RUN``: the same with `` -n`` appended, only where the command would otherwise train at full
  size (``config/voc2012.yaml``, the SLURM profile command) or would repeat at length what another test
  runs for real (the grid: ``tests/workflow/test_grid.py``; the demo settings on an existing VOC tree:
  ``tests/workflow/test_voc_data.py``), to keep this file's run time small (``make test`` runs it);
- ``MAKE_DRY_RUN``: ``make -n <target>`` (``make test`` would run this suite inside itself);
- ``NotRun(reason)``: not run, with the reason.

and to where: ``DVC_ORIGIN`` (a copy of the project, tiny settings merged into ``config/config.yaml``, a
git repository, as after ``git clone``, where ``make run`` and the DVC section's commands of the project
owner run: ``make_dvc_origin``, once a session through conftest.py's ``dvc_origin`` fixture, which
``tests/workflow/test_dvc.py`` clones too), ``DEMO`` (a copy of that project for the commands after ``make run``,
which change its results), ``COLLEAGUE`` (the directory ``git clone`` runs in) and ``COLLEAGUE_CLONE``
(the clone it makes), ``VOC`` (a copy for the VOC-layout commands, with a tiny VOC + SBD tree from
``tests/voc_data.py``). Commands of one place run in README order, each one's failure naming it.
``test_every_readme_command_has_a_runner`` fails when a README command has no entry here (and when an
entry names a command the README no longer has).

To add a README command: add its line, as extracted, to ``RUNNERS`` with a mode and a place (a new place
needs a fixture and a test that calls ``run_place``), and a placeholder it uses to ``SUBSTITUTIONS``;
e.g. ``"make seeds": (MAKE_DRY_RUN, DEMO)``.

The project copies have no pip install: their ``.venv`` is a directory of symlinks to this interpreter's
venv with its own fresh ``.installed`` stamp, newer than ``pyproject.toml`` (copied with its time), so
``make`` installs nothing; in the clone a ``post-checkout`` hook (``core.hooksPath`` set through git's
environment) makes it, as ``make install`` would have.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from tests.readme_runner import (
    COLLEAGUE,
    COLLEAGUE_CLONE,
    DEMO,
    DVC_ORIGIN,
    VENV,
    VOC,
    commands_of,
    copy_project,
    run_readme_command,
    sh,
    tiny_config,
)
from tests.voc_data import make_voc_and_sbd
from tests.workflow_helpers import BIN, ENV, copy_finished_run, fake_venv, job_counts
from wsss.data.voc import read_mask


@pytest.fixture(scope="module")
def demo(dvc_origin, tmp_path_factory):
    """A copy of the demo project after `make run` and the DVC section (times kept: still up to date for
    Snakemake), for the commands that change its results: the shared dvc_origin stays as it was."""
    return copy_finished_run(dvc_origin.root, tmp_path_factory.mktemp("readme") / "demo")


@pytest.mark.s3
def test_dvc_commands(dvc_origin, s3_server, tmp_path):
    """The DVC section: record, push and commit in the demo project (dvc_origin ran those commands, after
    `make run`); a colleague's clone pulls (also from S3)."""
    demo = dvc_origin.root
    assert list(dvc_origin.outputs) == commands_of(DVC_ORIGIN)
    assert "segmentation" in dvc_origin.outputs[".venv/bin/dvc metrics show"]
    url, s3_env = s3_server
    colleague = tmp_path / "colleague"
    colleague.mkdir()
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    hook = hooks / "post-checkout"  # what `make install` would have made: a venv, here this one's
    hook.write_text(
        f"#!/bin/sh\nmkdir .venv && for e in '{VENV}'/*; do ln -s \"$e\" .venv/; done\ntouch .venv/.installed\n"
    )
    hook.chmod(0o755)
    places = {
        DVC_ORIGIN: demo,
        COLLEAGUE: colleague,
        COLLEAGUE_CLONE: colleague / "wsss",
        "dvc_remote": dvc_origin.remote,
        "s3_url": "s3://wsss/readme",
        "s3_endpoint": url,
    }
    clone_env = {**ENV, "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "core.hooksPath", "GIT_CONFIG_VALUE_0": str(hooks)}
    for command in commands_of(COLLEAGUE) + commands_of(COLLEAGUE_CLONE):
        if command == 'make pull ARGS="-r s3"':  # from S3 only: nothing left from the local remote's pull
            for name in (".dvc/cache", "results", "resources"):
                shutil.rmtree(places[COLLEAGUE_CLONE] / name)
        env = clone_env if command.startswith("git clone") else s3_env if "s3" in command else ENV
        result = run_readme_command(command, places, env=env)
        if command.startswith("make pull"):
            assert "up to date for Snakemake: pseudo_masks" in result.stdout, result.stdout
            if "data pseudo_masks" not in command:
                assert "skipped" not in result.stdout and "up to date for Snakemake: evaluate" in result.stdout
            if "-r s3" in command:  # everything from S3 alone, and Snakemake agrees that nothing is left to do
                for targets in (["results/miou.parquet"], []):
                    plan = sh(places[COLLEAGUE_CLONE], BIN / "snakemake", "-n", *targets).stdout
                    assert job_counts(plan) == {}, plan[-2000:]
    assert "up to date" in sh(demo, BIN / "dvc", "status").stdout
    assert "results" in sh(demo, "git", "log", "--format=%s").stdout.splitlines()
    assert (places[COLLEAGUE_CLONE] / "results/summary.txt").read_text() == (demo / "results/summary.txt").read_text()


def test_workflow_commands(demo):
    """Calling the workflow after `make run` (cached, one more round, -n, the report), `make test`, the grid."""
    places = {DEMO: demo}
    for command in commands_of(DEMO):
        result = run_readme_command(command, places)
        if command == ".venv/bin/snakemake --cores all results/miou.parquet":
            assert "Nothing to be done" in result.stdout + result.stderr
        if command in ("make test", "make unit"):  # a pytest worker per core; make unit: tests/unit only
            line = re.search(r"^\.venv/bin/python -m pytest -n auto .*$", result.stdout, re.M)
            assert line, result.stdout
            assert line[0].endswith(" tests/unit") == (command == "make unit"), line[0]
        if command == "make lint":
            assert re.search(r"^\.venv/bin/ruff check", result.stdout, re.M), result.stdout
        if "rounds3.yaml" in command and command.startswith(".venv"):
            assert (demo / "results/cams/r2").is_dir()
        if "demo-grid.yaml" in command:
            assert "train_classifier" in result.stdout
        if "expansion" in command and command.startswith(".venv"):  # 6 round-0 classifiers + 1 round 1, x 3 seeds
            assert re.search(r"^train_classifier\s+21$", result.stdout, re.M), result.stdout[-2000:]
        if "demo-reading" in command:  # 4 classifiers a seed (2 rounds + mixup's 2), OpenCV's maps once (1 shard)
            assert re.search(r"^train_classifier\s+12$", result.stdout, re.M), result.stdout[-2000:]
            assert re.search(r"^saliency\s+1$", result.stdout, re.M), result.stdout[-2000:]
        if "demo-recam" in command:  # one classifier a seed, shared by cam and recam; ReCAM's step once a seed
            assert re.search(r"^train_classifier\s+3$", result.stdout, re.M), result.stdout[-2000:]
            assert re.search(r"^train_recam\s+3$", result.stdout, re.M), result.stdout[-2000:]
        if command == "make expansion":
            assert "--configfile config/demo-expansion.yaml" in result.stdout, result.stdout
        if "demo-labels.yaml" in command:  # two segmentation networks on pseudo-labels per seed, one bound
            assert re.search(r"^train_segmentation\s+9$", result.stdout, re.M), result.stdout[-2000:]
        if "seeds" in command:  # every seed's chain, then the tables over seeds
            assert "grid_table" in result.stdout or command == "make seeds"
    assert (demo / "results/report.html").is_file()


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    """A copy of the project for the VOC commands: a tiny VOC + SBD tree, my_voc.yaml pointing at it."""
    base = tmp_path_factory.mktemp("readme-voc")
    voc_root, sbd_root, _ = make_voc_and_sbd(base / "vocdata")
    root = copy_project(base / "project")
    tiny_config(root)
    fake_venv(root)
    my_voc = yaml.safe_load((root / "config/voc2012.yaml").read_text())
    (root / "my_voc.yaml").write_text(yaml.safe_dump({**my_voc, "voc_root": str(voc_root), "sbd_root": str(sbd_root)}))
    return {VOC: root, "voc_root": voc_root, "sbd_root": sbd_root, "coco340": voc_root.parent}


def test_voc_commands(voc):
    """The VOC-layout commands, as dry runs: the literature's settings, the SLURM profile (no cluster needed:
    a dry run submits nothing), the demo settings on an existing tree. Each plans the whole run from the data."""
    for command in commands_of(VOC):
        result = run_readme_command(command, voc)
        assert "This was a dry-run" in result.stdout, result.stdout[-2000:]
        assert "train_classifier" in result.stdout and "miou_table" in result.stdout
        if "voc_root" in command or "my_voc.yaml" in command:  # the existing tree: nothing to download
            assert "download_archive" not in result.stdout and "dataset_index" in result.stdout
        if "photos-reading" in command:  # two classifiers (cam's, mixup's); five networks and two bounds (cross-
            # entropy's, shared, and class_weights'); OpenCV's maps once
            assert re.search(r"^train_classifier\s+2$", result.stdout, re.M), result.stdout[-2000:]
            assert re.search(r"^train_segmentation\s+7$", result.stdout, re.M), result.stdout[-2000:]
            assert re.search(r"^saliency\s+\d+$", result.stdout, re.M), result.stdout[-2000:]
        if "demo-recam" in command:  # photos.yaml has one round: one classifier a seed, shared by cam and recam;
            # ReCAM's step once a seed; two networks a seed and one bound
            assert re.search(r"^train_classifier\s+3$", result.stdout, re.M), result.stdout[-2000:]
            assert re.search(r"^train_recam\s+3$", result.stdout, re.M), result.stdout[-2000:]
            assert re.search(r"^train_segmentation\s+9$", result.stdout, re.M), result.stdout[-2000:]
        if command.endswith("--configfile config/voc2012.yaml"):  # IRN's chain: one classifier, a network + bound
            assert re.search(r"^train_classifier\s+1$", result.stdout, re.M), result.stdout[-2000:]
            assert re.search(r"^train_segmentation\s+2$", result.stdout, re.M), result.stdout[-2000:]
        if "voc2012-grid.yaml" in command:  # IRN's, 2 erasing rounds, 3 methods, ReCAM, CLIP-ES; 8 networks, 3 bounds
            assert re.search(r"^train_classifier\s+6$", result.stdout, re.M), result.stdout[-2000:]
            assert re.search(r"^train_segmentation\s+11$", result.stdout, re.M), result.stdout[-2000:]
            # ReCAM: on irn_chain's classifier; CLIP-ES: no classifier; its maps and labels per shard, its weights
            # downloaded on the submit host
            for rule, count in (
                ("train_recam", 1),
                ("recam_cams", 16),
                ("clip_es", 16),
                ("clip_es_labels", 16),
                ("clip_weights", 1),
            ):
                assert re.search(rf"^{rule}\s+{count}$", result.stdout, re.M), result.stdout[-2000:]
            assert "grid_table" in result.stdout
        if "coco2014.yaml" in command:  # the three COCO archives fetched and extracted, 64 shards of CAMs
            for rule, count in (("download_archive", 3), ("extract_archive", 3), ("cams", 64)):
                assert re.search(rf"^{rule}\s+{count}$", result.stdout, re.M), result.stdout[-2000:]
        if "workflow/profiles/slurm" in command:  # the profile's per-rule resources and the command line's defaults
            assert "gpu=1, cpus_per_gpu=8" in result.stdout and "slurm_account=my_account" in result.stdout


def same_files(left: Path, right: Path, pattern: str) -> list[str]:
    """The relative paths of pattern's files under left, after checking right has the same files, byte for byte."""
    files = sorted(p.relative_to(left).as_posix() for p in left.glob(pattern))
    assert files and files == sorted(p.relative_to(right).as_posix() for p in right.glob(pattern)), pattern
    for name in files:
        assert (left / name).read_bytes() == (right / name).read_bytes(), name
    return files


def test_own_data_commands(own_data):
    """The "Your own data" commands, run as written (tests/own_data.py): the tagged photos (tags from COCO's JSON,
    masks of val only) make the VOC-tree run's labels, CAMs, pseudo-masks and network bit for bit and score val
    only; COCO's JSON gives the same labels and masks that agree with the tree's PNGs; the network segments new
    photos into results/segmented."""
    voc, tagged, coco = (own_data.voc / "results", own_data.tagged / "results", own_data.coco / "results")
    labels = pd.read_parquet(voc / "labels/image_labels.parquet")
    pd.testing.assert_frame_equal(labels, pd.read_parquet(tagged / "labels/image_labels.parquet"), check_exact=True)
    pd.testing.assert_frame_equal(labels, pd.read_parquet(coco / "labels/image_labels.parquet"), check_exact=True)
    cams = same_files(voc, tagged, "cams/*/shard*/**/*.npy")
    assert len([name for name in cams if "/stride4/" not in name]) == 2 * len(own_data.splits["train"])  # r0, merged
    same_files(voc, tagged, "crf/shard*/*.png")
    same_files(voc, tagged, "pseudo_masks/shard*/*.png")
    same_files(voc, tagged, "segmentation/pseudo_mask/predictions/*.png")
    ours, theirs = (torch.load(r / "segmentation/pseudo_mask/model.pt", weights_only=True) for r in (tagged, voc))
    for key, value in theirs["state_dict"].items():
        assert torch.equal(ours["state_dict"][key], value), key
    # the tagged run scores val only, and says why not the rest; no bound without train masks
    summary = pd.read_parquet(tagged / "summary.parquet")
    assert list(summary["stage"]) == ["segmentation"] and summary["num_images"].tolist() == [
        len(own_data.splits["val"])
    ]
    text = (tagged / "summary.txt").read_text()
    assert "not scored: cam_r0, cam, cam_oracle, crf, pseudo_mask (no masks for train)" in text, text
    assert "not scored: fully_supervised (not trained: no masks for train)" in text, text
    assert not (tagged / "segmentation/ground_truth").exists()
    assert sorted(p.name for p in (tagged / "report/train_gallery/sample").glob("*.png"))  # galleries, no scores
    assert all("iounone" in p.name for p in (tagged / "report/train_gallery").rglob("*.png"))
    # new photos: a label map at each photo's size, an overlay, and the table
    photos = sorted(own_data.new_photos.glob("*.jpg"))
    segments = pd.read_parquet(tagged / "segmented/segments.parquet")
    assert sorted(segments["image"].unique()) == [p.stem for p in photos]
    for photo in photos:
        with Image.open(photo) as image, Image.open(tagged / "segmented/labels" / f"{photo.stem}.png") as label:
            assert label.mode == "P" and label.size == image.size
        assert (tagged / "segmented/overlays" / f"{photo.stem}.jpg").is_file()
        assert segments[segments["image"] == photo.stem]["fraction"].sum() == pytest.approx(1)
    # COCO's JSON: masks rasterised with pycocotools agree with the tree's PNGs (drawn with PIL's outline)
    agree = total = 0
    for image_id in own_data.splits["train"] + own_data.splits["val"]:
        mine = read_mask(coco / "data/masks" / f"{image_id}.png", 21)
        truth = read_mask(own_data.coco340 / "VOC2012/SegmentationClass" / f"{image_id}.png", 21)
        agree, total = agree + int((mine == truth).sum()), total + truth.size
    assert agree / total >= 0.99, agree / total
    coco_summary = pd.read_parquet(coco / "summary.parquet").set_index("stage")
    assert {"cam", "crf", "pseudo_mask", "segmentation", "fully_supervised"} <= set(coco_summary.index)
    assert coco_summary.loc["segmentation", "num_images"] == len(own_data.splits["val"])
