"""The workflow through Snakemake's CLI on a tiny demo config, in a copy of the repository."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
TINY = {
    "demo": {"num_train": 12, "num_val": 6, "size_range": [40, 56], "background_only_fraction": 0.1},
    "shards": 2,
    "classifier": {"epochs": 1, "batch_size": 4, "resize_long": [40, 56], "crop_size": 40},
    "cam": {"scales": [1.0, 0.5], "oracle_thresholds": [0.1, 0.3]},
    "segmentation": {"epochs": 1, "batch_size": 4, "resize_long": [40, 56], "crop_size": 40},
    "report": {"sample_size": 3, "best": 1, "worst": 1, "val_sample_size": 2},
}
STAGES = ["cam_r0", "cam_r1", "cam", "cam_oracle", "crf", "pseudo_mask", "segmentation", "fully_supervised"]


def run(workdir, *args, check=True, configfiles=("tiny.yaml",)):
    """Run snakemake in workdir; --configfile goes last because it takes several files."""
    command = [str(SNAKEMAKE), "--cores", "2", *args, "--configfile", *configfiles]
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


def planned_jobs(workdir, *targets) -> dict[str, int]:
    """Rule -> job count of a dry run (empty when there is nothing to do)."""
    out = run(workdir, "-n", *targets).stdout
    table = re.search(r"Job stats:\n.*?\n-+\s+-+\n(.*?)\ntotal", out, re.S)
    return {} if table is None else {line.split()[0]: int(line.split()[1]) for line in table.group(1).splitlines()}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("workflow")
    for name in ("Snakefile", "workflow", "scripts", "config"):
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, root / name)
    (root / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    return root


def test_invalid_config_names_the_key(workdir):
    (workdir / "bad.yaml").write_text(yaml.safe_dump({"shards": "many"}))
    result = run(workdir, "-n", check=False, configfiles=("tiny.yaml", "bad.yaml"))
    assert result.returncode != 0
    assert "shards" in result.stderr + result.stdout and "is not of type 'integer'" in result.stderr + result.stdout


def test_stop_after_classifier_then_resume(workdir):
    run(workdir, "results/classifier/r0/model.pt")
    remaining = planned_jobs(workdir, "results/miou.parquet")
    assert "train_classifier" in remaining and remaining["train_classifier"] == 1  # round 1 only
    assert "demo_dataset" not in remaining and "image_labels" not in remaining
    run(workdir)  # the default target: tables, report figures, every shard
    log = (workdir / "logs" / "train_classifier" / "r0.log").read_text()
    assert "left out" in log  # background-only images are counted in the log


def test_end_to_end_table(workdir):
    table = pd.read_parquet(workdir / "results" / "miou.parquet")
    summary = pd.read_parquet(workdir / "results" / "summary.parquet")
    assert list(summary["stage"]) == STAGES
    assert set(table["stage"]) == set(STAGES)
    assert {"stage", "split", "class_id", "class_name", "iou", "tp", "fp", "fn", "gt_pixels"} <= set(table.columns)
    splits = dict(zip(summary["stage"], summary["split"]))
    assert splits["cam"] == "train" and splits["pseudo_mask"] == "train" and splits["segmentation"] == "val"
    assert summary.set_index("stage").loc["pseudo_mask", "ignored_fraction"] > 0
    assert summary.set_index("stage").loc["cam_oracle", "oracle"] and not summary["oracle"].drop(3).any()
    for stage, group in table.groupby("stage"):
        present = group[group["gt_pixels"] > 0]
        assert summary.set_index("stage").loc[stage, "miou"] == pytest.approx(present["iou"].mean())
    assert 0 in set(table["class_id"])  # background counts
    cams = sorted((workdir / "results" / "cams" / "r0").glob("shard*/*.npy"))
    assert len(cams) == 12 and np.load(cams[0], allow_pickle=False).dtype == np.float16
    assert (workdir / "results" / "summary.txt").read_text().startswith("stage")


def test_rerun_does_nothing(workdir):
    assert planned_jobs(workdir, "results/miou.parquet") == {}
    assert planned_jobs(workdir) == {}


def test_deleting_one_crf_shard_reruns_only_that_shard(workdir):
    shutil.rmtree(workdir / "results" / "crf" / "shard1")
    jobs = planned_jobs(workdir)  # the default target `all` names every shard
    # the figures drawn from CRF-derived scores are redrawn too (the val gallery's captions read the
    # per-image score table, which holds every stage)
    assert jobs == {"all": 1, "crf": 1, "evaluate_stage": 1, "miou_table": 1, "image_scores": 1,
                    "report_train_gallery": 1, "report_val_gallery": 1, "report_class_iou": 1,
                    "report_miou_by_stage": 1}
    explicit = planned_jobs(workdir, "results/crf/shard1", "results/miou.parquet")
    assert explicit == {"crf": 1, "evaluate_stage": 1, "miou_table": 1}
    run(workdir)
    assert planned_jobs(workdir) == {} and planned_jobs(workdir, "results/miou.parquet") == {}
    assert len(list((workdir / "results" / "crf" / "shard1").glob("*.png"))) == 6  # 12 train images, 2 shards


def test_report(workdir):
    """The report's figures come from the run; `snakemake --report` embeds them with their captions."""
    report = workdir / "results" / "report"
    gallery = report / "train_gallery"
    train = sorted(p.relative_to(gallery).with_suffix("").as_posix() for p in gallery.glob("*/*.png"))
    assert [name.split("__")[0] for name in train] == ["best/01", "sample/01", "sample/02", "sample/03", "worst/01"]
    scores = pd.read_parquet(workdir / "results" / "metrics" / "image_scores.parquet")
    pseudo = scores[scores["stage"] == "pseudo_mask"].set_index("image_id")["miou"]
    labels = pd.read_parquet(workdir / "results" / "labels" / "image_labels.parquet").set_index("image_id")
    pseudo = pseudo[labels.loc[pseudo.index, "class_ids"].map(len) > 0]  # best/worst rank images with objects
    best, worst = (name.split("__") for name in (train[0], train[-1]))
    assert float(best[3][3:]) == pytest.approx(pseudo.max(), abs=5e-4)
    assert pseudo[best[1]] == pseudo.max()  # the file is named after the best image
    assert float(worst[3][3:]) == pytest.approx(pseudo.min(), abs=5e-4)
    assert len(list(report.glob("val_gallery/*.png"))) == 2
    for name in ("class_iou", "miou_by_stage", "confusion_segmentation", "classifier_curves"):
        assert (report / f"{name}.png").stat().st_size > 10_000
    run(workdir, "--report", "report.html")
    html = (workdir / "report.html").read_text()
    for text in ("Train gallery", "Val gallery", "Classifier training", best[1], "pseudo-mask IoU"):
        assert text in html, text


def test_same_config_same_outputs(workdir, tmp_path):
    """Determinism on CPU: a second copy of the workflow reproduces the table exactly."""
    run(workdir, "results/miou.parquet")  # no-op when the tests above already ran it
    other = tmp_path / "again"
    other.mkdir()
    for name in ("Snakefile", "workflow", "scripts", "config", "tiny.yaml"):
        source = workdir / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, other / name)
    run(other, "results/miou.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(other / "results" / "miou.parquet"),
                                  pd.read_parquet(workdir / "results" / "miou.parquet"))


def test_lint_is_clean(workdir):
    result = run(workdir, "--lint", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr
