"""How tests/workflow/test_readme.py runs README.md's commands: their extraction, where and how each runs
(RUNNERS), and the project owner's DVC origin that tests/workflow/test_dvc.py clones too (see test_readme.py's
docstring)."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.workflow_helpers import BIN, ENV, REPO, TINY, fake_venv, job_counts

VENV = BIN.parent
TIMEOUT_S = 900

REAL, DRY_RUN, MAKE_DRY_RUN = "real", "dry-run (-n)", "make -n"


@dataclass(frozen=True)
class NotRun:
    reason: str


DEMO, DVC_ORIGIN, COLLEAGUE, COLLEAGUE_CLONE, VOC = "demo", "demo (DVC section)", "colleague", "colleague/wsss", "voc"
# "Your own data": a project copy per kind, on a subset of coco340 (tests/own_data.py)
OWN_VOC, OWN_TAGGED, OWN_COCO = "own data: VOC tree", "own data: tagged photos", "own data: COCO"

# README command (as extracted) -> (mode, place). Places run their commands in README order.
RUNNERS = {
    # Set up and run: `make run` builds the DVC origin (make_dvc_origin); DEMO is a copy of it afterwards
    "make run": (REAL, DVC_ORIGIN),
    "make test": (MAKE_DRY_RUN, DEMO),
    "make unit": (MAKE_DRY_RUN, DEMO),
    "make lint": (MAKE_DRY_RUN, DEMO),  # tests/unit/test_lint.py runs ruff and test_workflow.py snakemake --lint
    ".venv/bin/snakemake --cores all results/miou.parquet": (REAL, DEMO),
    "printf 'erasing: {rounds: 3}\\n' > rounds3.yaml": (REAL, DEMO),
    ".venv/bin/snakemake --cores all results/miou.parquet --configfile rounds3.yaml": (REAL, DEMO),
    ".venv/bin/snakemake -n results/miou.parquet": (REAL, DEMO),
    ".venv/bin/snakemake --report results/report.html": (REAL, DEMO),
    # SLURM: full VOC settings; a dry run needs no cluster (no sbatch)
    ".venv/bin/snakemake results/miou.parquet --workflow-profile workflow/profiles/slurm --default-resources "
    "slurm_partition=gpu slurm_account=my_account mem_mb=4000 runtime=60 --configfile my_voc.yaml": (DRY_RUN, VOC),
    # DVC: recorded, pushed and committed in DVC_ORIGIN (make_dvc_origin), pulled by a colleague's clone
    "make repro": (REAL, DVC_ORIGIN),
    ".venv/bin/dvc remote add -d shared /mnt/team/wsss-cache": (REAL, DVC_ORIGIN),
    '.venv/bin/dvc push && git add dvc.lock .dvc/config && git commit -m "results"': (REAL, DVC_ORIGIN),
    ".venv/bin/dvc metrics show": (REAL, DVC_ORIGIN),
    ".venv/bin/dvc plots show": (REAL, DVC_ORIGIN),
    "git clone <repo-url> wsss && cd wsss && make install": (REAL, COLLEAGUE),
    "make pull": (REAL, COLLEAGUE_CLONE),
    'make pull ARGS="data pseudo_masks"': (REAL, COLLEAGUE_CLONE),
    ".venv/bin/dvc remote add s3 s3://my-bucket/wsss": (REAL, COLLEAGUE_CLONE),
    ".venv/bin/dvc remote modify s3 endpointurl https://minio.example.org": (REAL, COLLEAGUE_CLONE),
    "AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... .venv/bin/dvc push -r s3": (REAL, COLLEAGUE_CLONE),
    'make pull ARGS="-r s3"': (REAL, COLLEAGUE_CLONE),  # after the clone's cache and outputs are removed
    # figures over seeds: dry runs here; tests/workflow/test_seeds.py runs a replicated tiny run for real
    "make seeds": (MAKE_DRY_RUN, DEMO),
    ".venv/bin/snakemake --cores all --configfile config/demo-seeds.yaml": (DRY_RUN, DEMO),
    # the from-scratch ResNet-18 demo, once and over seeds: dry runs (the demo's own settings run for real)
    ".venv/bin/snakemake --cores all --configfile config/demo-resnet18.yaml": (DRY_RUN, DEMO),
    ".venv/bin/snakemake --cores all --configfile config/demo-seeds.yaml config/demo-resnet18.yaml": (DRY_RUN, DEMO),
    # the grid: dry run here; tests/workflow/test_grid.py runs it for real (with the tiny config file added)
    ".venv/bin/snakemake --cores all --configfile config/demo-grid.yaml": (DRY_RUN, DEMO),
    # CAM expansion over seeds: dry runs (test_grid.py runs SEAM through the workflow, test_cam_expansion.py
    # trains every method)
    ".venv/bin/snakemake --cores all --configfile config/demo-expansion.yaml": (DRY_RUN, DEMO),
    # the background reading's methods over seeds: a dry run (test_grid.py runs each switch through the workflow)
    ".venv/bin/snakemake --cores all --configfile config/demo-reading.yaml": (DRY_RUN, DEMO),
    # ReCAM against plain CAM over seeds: a dry run (tests/workflow/test_recam.py runs ReCAM's steps for real)
    ".venv/bin/snakemake --cores all --configfile config/demo-recam.yaml": (DRY_RUN, DEMO),
    "make expansion": (MAKE_DRY_RUN, DEMO),
    # the segmentation networks: a dry run (test_grid.py runs a U-Net with multi-scale + CRF inference for real)
    ".venv/bin/snakemake --cores all --configfile config/demo-archs.yaml": (DRY_RUN, DEMO),
    # pseudo-masks against random-walk labels over seeds: a dry run (test_workflow.py trains on both labels)
    ".venv/bin/snakemake --cores all --configfile config/demo-labels.yaml config/demo-seeds.yaml": (DRY_RUN, DEMO),
    "cat results/ranking.txt": NotRun("shows the grid's output; test_grid.py checks results/ranking.txt"),
    # PASCAL VOC: the literature's settings train at full size (and download): dry runs
    "snakemake --cores all results/miou.parquet --configfile config/voc2012.yaml": (DRY_RUN, VOC),
    "snakemake --cores all --configfile config/voc2012.yaml config/voc2012-grid.yaml": (DRY_RUN, VOC),
    "snakemake --cores all results/miou.parquet --configfile config/voc2012.yaml --config "
    "voc_root=/data/VOCdevkit/VOC2012 sbd_root=/data/benchmark_RELEASE/dataset": (DRY_RUN, VOC),
    # MS COCO 2014: its downloads and 64 shards planned (tests/workflow/test_coco_plan.py plans it on COCO-sized JSON)
    "snakemake --cores all results/miou.parquet --configfile config/voc2012.yaml config/coco2014.yaml": (DRY_RUN, VOC),
    # demo-sized settings on an existing tree: dry run here (the option order); tests/workflow/test_voc_data.py's
    # `existing` fixture runs these settings for real on such a tree (voc_root from a config file)
    "snakemake --cores all results/miou.parquet --config voc_root=/data/my_dataset/VOC2012": (DRY_RUN, VOC),
    # your own data: each kind's command for real on a coco340 subset (tests/own_data.py: one epoch per network in
    # config/photos.yaml); test_readme.py compares the runs, test_photos.py checks the VOC tree's on real JPEGs
    ".venv/bin/snakemake --cores all --configfile config/photos.yaml --config "
    "voc_root=../shared/data/coco340-voc/VOC2012": (REAL, OWN_VOC),
    ".venv/bin/snakemake --cores all --configfile config/photos.yaml config/coco-voc.yaml --config dataset='{kind: "
    "coco, images: ../shared/data/coco340-voc/VOC2012/JPEGImages, annotations: {train: "
    "../shared/data/coco340-voc/coco/instances_train.json, val: "
    "../shared/data/coco340-voc/coco/instances_val.json}}'": (REAL, OWN_COCO),
    ".venv/bin/snakemake --cores all --configfile config/photos.yaml --config dataset='{kind: tagged, images: "
    "my_photos, tags: my_tags.csv, masks: my_masks}'": (REAL, OWN_TAGGED),
    ".venv/bin/snakemake --cores all results/segmented --configfile config/photos.yaml --config dataset='{kind: "
    "tagged, images: my_photos, tags: my_tags.csv, masks: my_masks}' segment='{images: new_photos}'": (
        REAL,
        OWN_TAGGED,
    ),
    # over seeds: a dry run on the tiny tree (the seeds replicate what the runs above check)
    ".venv/bin/snakemake --cores all --configfile config/photos.yaml config/demo-seeds.yaml --config "
    "voc_root=../shared/data/coco340-voc/VOC2012": (DRY_RUN, VOC),
    # the reading's methods on photos (config/photos-reading.yaml): a dry run on the tiny tree
    ".venv/bin/snakemake --cores all --configfile config/photos.yaml config/photos-reading.yaml --config "
    "voc_root=../shared/data/coco340-voc/VOC2012": (DRY_RUN, VOC),
    # ReCAM against CAM on photos (config/demo-recam.yaml): a dry run on the tiny tree
    ".venv/bin/snakemake --cores all --configfile config/photos.yaml config/demo-recam.yaml --config "
    "voc_root=../shared/data/coco340-voc/VOC2012": (DRY_RUN, VOC),
    ".venv/bin/python benchmarks/photos.py results": NotRun(
        "needs a finished run; tests/workflow/test_photos.py runs it on the photos run it makes"
    ),
}

# placeholder -> its stand-in: a key of the test's `places` dict (paths and URLs of fixtures), else the text itself
SUBSTITUTIONS = {
    "<repo-url>": DVC_ORIGIN,
    "/mnt/team/wsss-cache": "dvc_remote",
    "s3://my-bucket/wsss": "s3_url",
    "https://minio.example.org": "s3_endpoint",
    "AWS_ACCESS_KEY_ID=...": "AWS_ACCESS_KEY_ID=testing",
    "AWS_SECRET_ACCESS_KEY=...": "AWS_SECRET_ACCESS_KEY=testing",
    "/data/VOCdevkit/VOC2012": "voc_root",
    "/data/benchmark_RELEASE/dataset": "sbd_root",
    "/data/my_dataset/VOC2012": "voc_root",
    "../shared/data/coco340-voc": "coco340",  # the VOC place: its tiny tree's parent; the own-data places: the subset
    "my_photos": "my_photos",
    "my_tags.csv": "my_tags.csv",
    "my_masks": "my_masks",
    "new_photos": "new_photos",
    # my_voc.yaml: a file of that name in VOC (config/voc2012.yaml + the fixture's voc_root/sbd_root);
    # my_account: kept (a dry run submits nothing)
}


def readme_commands(text: str | None = None) -> list[str]:
    """The command lines of README.md's bash code blocks, each once, in order."""
    text = (REPO / "README.md").read_text() if text is None else text
    commands = []
    for language, body in re.findall(r"^```(\w*)\n(.*?)^```", text, re.S | re.M):
        if language not in ("bash", "sh", "shell"):
            continue
        joined = re.sub(r"[ \t]*\\\n\s*", " ", body)
        for line in joined.splitlines():
            line = line.split("  #", 1)[0].strip()
            if line and not line.startswith("#") and line not in commands:
                commands.append(line)
    return commands


def untagged_command_blocks(text: str) -> list[str]:
    """Code blocks without a language that start like a command (they would escape the extraction)."""
    return [
        body
        for language, body in re.findall(r"^```(\w*)\n(.*?)^```", text, re.S | re.M)
        if not language and re.match(r"\s*(\.venv/bin/)?(snakemake|make|dvc|git|python)\b", body)
    ]


def substitute(command: str, places: dict) -> str:
    for placeholder, value in SUBSTITUTIONS.items():
        command = command.replace(placeholder, str(places.get(value, value)))
    assert not re.search(r"<[\w-]+>|=\.\.\.|/data/|my-bucket|example\.org|/mnt/", command), command
    return command


def run_readme_command(command: str, places: dict, env=None):
    mode, place = RUNNERS[command]
    line = substitute(command, places)
    if mode == DRY_RUN:
        line += " -n"
    elif mode == MAKE_DRY_RUN:
        line = re.sub(r"^make ", "make -n ", line)
    result = subprocess.run(
        ["bash", "-c", line], cwd=places[place], capture_output=True, text=True, env=env or ENV, timeout=TIMEOUT_S
    )
    if result.returncode != 0:
        raise AssertionError(
            f"README command failed ({mode} in {place}): {command}\nran: {line}\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
        )
    return result


def commands_of(place: str) -> list[str]:
    return [c for c in readme_commands() if not isinstance(RUNNERS.get(c), NotRun) and RUNNERS[c][1] == place]


def sh(cwd, *command):
    return subprocess.run([str(c) for c in command], cwd=cwd, check=True, capture_output=True, text=True, env=ENV)


def tiny_config(root: Path, **extra):
    """config/config.yaml with the tiny settings merged in, one classifier epoch and one shard (the DVC tests
    push and pull whole folders; test_workflow.py and test_slurm.py take shards apart)."""
    config = yaml.safe_load((root / "config/config.yaml").read_text())
    for key, value in {**TINY, "shards": 1, "classifier": {**TINY["classifier"], "epochs": 1}, **extra}.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) else value
    (root / "config/config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def copy_project(root: Path) -> Path:
    """The project's tracked files that a clone has (times kept: pyproject.toml stays older than the stamp)."""
    root.mkdir(parents=True)
    for name in (
        "Snakefile",
        "workflow",
        "scripts",
        "config",
        "src",
        "dvc.yaml",
        ".dvc",
        ".dvcignore",
        "Makefile",
        "pyproject.toml",
        ".gitignore",
        "README.md",
    ):
        source = REPO / name
        if source.is_dir():
            ignore = shutil.ignore_patterns("cache", "tmp", "__pycache__", "*.egg-info")
            shutil.copytree(source, root / name, ignore=ignore)
        else:
            shutil.copy2(source, root / name)
    return root


@dataclass(frozen=True)
class DvcOrigin:
    root: Path  # the project
    remote: Path  # its DVC remote, the README's /mnt/team/wsss-cache
    outputs: dict[str, str]  # README command -> its stdout


def make_dvc_origin(base: Path) -> DvcOrigin:
    """In base/demo: a git repository of the project with tiny settings, after the README's `make run` and the
    DVC section's commands of the project owner (DVC_ORIGIN: `make repro`, a local remote in base/remote,
    push and commit, metrics, plots), in README order. conftest.py's dvc_origin fixture builds it once a
    session for this file and tests/workflow/test_dvc.py, which clone it; commands that change it run on a copy."""
    root = copy_project(base / "demo")
    tiny_config(root)
    sh(root, "git", "init", "-q")
    sh(root, "git", "add", "-A")
    sh(root, "git", "commit", "-qm", "project")
    fake_venv(root)
    places = {DVC_ORIGIN: root, "dvc_remote": base / "remote"}
    model = root / "results/classifier/r0/model.pt"
    outputs = {}
    for command in commands_of(DVC_ORIGIN):
        before = model.stat().st_mtime_ns if model.exists() else None
        outputs[command] = run_readme_command(command, places).stdout
        if command == "make run":
            assert "WSSS results" in outputs[command] and (root / "results/report.html").is_file()
        if command == "make repro":  # dvc repro ran no Snakemake job: both agree that the demo run is up to date
            assert model.stat().st_mtime_ns == before
            assert "up to date" in sh(root, BIN / "dvc", "status").stdout
            assert job_counts(sh(root, BIN / "snakemake", "-n").stdout) == {}
    return DvcOrigin(root, places["dvc_remote"], outputs)
