"""The experiments grid through Snakemake's CLI on the tiny config: shared steps run once, one ranked table."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from tests.workflow_helpers import GRID_EXPERIMENTS, GRID_FILES, copy_grid, job_counts, run


def plan(workdir, *targets) -> dict[str, int]:
    return job_counts(run(workdir, "-n", *targets, configfiles=GRID_FILES).stdout)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """The grid's project before any run: what it plans. The run is conftest.py's grid_run, in its own copy."""
    return copy_grid(tmp_path_factory.mktemp("grid"))


def test_a_bad_override_names_the_experiment(workdir):
    (workdir / "bad.yaml").write_text(yaml.safe_dump({"experiments": {"mine": {"cam": {"method": "nope"}}}}))
    result = run(workdir, "-n", check=False, configfiles=("tiny.yaml", "bad.yaml"))
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "experiments.mine" in output and "method" in output and "nope" in output


def test_the_plan_computes_shared_steps_once(workdir):
    jobs = plan(workdir, "results/miou.parquet")
    # round 0 for the CAM experiments, round 1 for cam_erasing, SEAM's, reading's (Mixup-CAM)
    assert jobs["train_classifier"] == 4
    assert jobs["cams"] == 5  # cam r0, gradcampp r0, cam_erasing r1, seam r0, reading r0 (one shard each)
    assert jobs["merge_cams"] == jobs["crf"] == jobs["pseudo_masks"] == jobs["random_walk"] == 5
    # each of the experiments but unet_ms_crf and cam_weights has its own pseudo-masks
    assert jobs["train_irn"] == 5
    # one per experiment + one bound; U-Net and cam_weights: both their own (the bound shares reading's SEC-free
    # settings, so reading's is cam's, predicted on tiles)
    assert jobs["train_segmentation"] == 5 + 1 + 2 + 2 and jobs["predict_segmentation"] == 5 + 1 + 2 + 2 + 1
    assert jobs["saliency"] == jobs["evaluate_saliency_oracle"] == 1  # reading's OpenCV maps and oracle stage
    # cam: 8 stages; gradcampp, seam: 7 (share fully_supervised); cam_erasing: 7 (shares cam_r0 and
    # fully_supervised); unet_ms_crf, cam_weights: their two networks' stages only; reading: 8 (its bound
    # predicts on tiles) and the saliency oracle
    assert jobs["evaluate_stage"] == 8 + 7 + 7 + 2 + 7 + 8 + 2
    assert jobs["miou_table"] == 7 and jobs["grid_table"] == 1


def test_config_mistakes_are_said_in_words(workdir):
    """An old key name and an output stride the network cannot have stop the run with a sentence that names
    the experiment and the fix, not jsonschema's bare message."""
    bad = {"experiments": {"mine": {"classifier": {"arch": "resnet18"}}, "u": {"segmentation": {"arch": "unet"}}}}
    (workdir / "words.yaml").write_text(yaml.safe_dump(bad))
    result = run(workdir, "-n", check=False, configfiles=("tiny.yaml", "words.yaml"))
    assert result.returncode != 0
    assert "experiments.mine: classifier.arch is now called classifier.backbone" in result.stdout + result.stderr
    (workdir / "words.yaml").write_text(yaml.safe_dump({"segmentation": {"arch": "unet"}}))
    result = run(workdir, "-n", check=False, configfiles=("tiny.yaml", "words.yaml"))
    assert "segmentation.arch: unet needs segmentation.output_stride: 32 (it is 16)" in result.stdout + result.stderr


def test_an_inference_only_experiment_trains_no_network(workdir):
    """config/demo-archs.yaml: deeplabv3_ms_crf changes only the test-time inference of deeplabv3, so it
    predicts with deeplabv3's two networks (pseudo-labels and bound): 7 networks x 2 trained, 8 x 2
    predicted."""
    jobs = job_counts(run(workdir, "-n", configfiles=("tiny.yaml", "config/demo-archs.yaml")).stdout)
    assert jobs["train_segmentation"] == 14 and jobs["predict_segmentation"] == 16
    detail = run(
        workdir,
        "-n",
        "results/deeplabv3_ms_crf/metrics/fully_supervised.npz",
        configfiles=("tiny.yaml", "config/demo-archs.yaml"),
    ).stdout
    assert "results/deeplabv3/segmentation/ground_truth/model.pt" in detail
    assert "results/deeplabv3_ms_crf/segmentation/ground_truth/predictions" in detail


def test_grid_run_trains_each_shared_network_once(grid_run):
    counts = job_counts(grid_run.output)
    assert counts["train_classifier"] == 4 and counts["train_segmentation"] == 10
    results, logs = grid_run.root / "results", grid_run.root / "logs"
    assert sorted(str(p.relative_to(results)) for p in results.glob("*/classifier/r*")) == [
        "cam/classifier/r0",
        "cam_erasing/classifier/r1",
        "reading/classifier/r0",
        "seam/classifier/r0",
    ]
    seam = torch.load(results / "seam/classifier/r0/model.pt", weights_only=True)
    assert seam["meta"]["method"] == "seam" and seam["meta"]["method_settings"]["scale"] == 0.5
    assert any(key.startswith("pcm.") for key in seam["state_dict"])
    assert not (logs / "gradcampp" / "train_classifier").exists()
    assert not (results / "gradcampp" / "segmentation" / "ground_truth").exists()
    assert sorted(p.name for p in (results / "cam_erasing" / "cams").iterdir()) == ["merged", "r1"]
    assert plan(grid_run.root) == {}


def test_grid_tables_cover_every_experiment(grid_run, tiny_reference):
    results = grid_run.root / "results"
    table = pd.read_parquet(results / "miou.parquet")
    summary = pd.read_parquet(results / "summary.parquet")
    assert list(dict.fromkeys(table["experiment"])) == list(GRID_EXPERIMENTS)
    assert summary["seeds"].eq(1).all() and summary["miou_sd"].isna().all()  # one seed: no spread
    for name in GRID_EXPERIMENTS:
        own = pd.read_parquet(results / name / "summary.parquet")
        mine = summary[summary["experiment"] == name].reset_index(drop=True)
        assert list(mine["stage"]) == list(own["stage"])
        pd.testing.assert_series_equal(mine["miou"], own["miou"])
    by_stage = summary.set_index(["experiment", "stage"])["miou"]
    # a shared step is one file, so its scores agree across the experiments that share it
    assert by_stage["cam_erasing", "cam_r0"] == by_stage["cam", "cam_r0"]
    assert by_stage["gradcampp", "fully_supervised"] == by_stage["cam", "fully_supervised"]
    assert by_stage["gradcampp", "cam_r0"] != by_stage["cam", "cam_r0"]
    # the experiment with the base settings reproduces a plain run of them (over 2 shards) exactly
    plain = pd.read_parquet(tiny_reference / "results" / "summary.parquet").drop(columns="experiment")
    mine = pd.read_parquet(results / "cam_erasing" / "summary.parquet").drop(columns="experiment")
    pd.testing.assert_frame_equal(mine, plain)


def test_ranking_orders_experiments_and_prices_them(grid_run):
    ranking = pd.read_parquet(grid_run.root / "results" / "ranking.parquet")
    assert sorted(ranking["experiment"]) == sorted(GRID_EXPERIMENTS)
    assert ranking["segmentation"].is_monotonic_decreasing and list(ranking["rank"]) == [1, 2, 3, 4, 5, 6, 7]
    costs = ranking.set_index("experiment")
    assert (costs["total_s"] > 0).all() and (costs["own_s"] <= costs["total_s"]).all()
    # gradcampp reuses cam's classifier, so it ran less than it needs
    assert costs.loc["gradcampp", "own_s"] < costs.loc["gradcampp", "total_s"]
    assert costs.loc["cam", "classifier_s"] == costs.loc["gradcampp", "classifier_s"] > 0
    lines = (grid_run.root / "results" / "ranking.txt").read_text().splitlines()
    assert lines[0].startswith("Experiments ranked by segmentation mIoU")
    assert [line.split()[1] for line in lines[2:9]] == list(ranking["experiment"])
    assert "segmentation pix.acc" in lines[1]
    summary = pd.read_parquet(grid_run.root / "results" / "summary.parquet").set_index(["experiment", "stage"])
    np.testing.assert_array_equal(
        ranking["pixel_accuracy"], summary["pixel_accuracy"][:, "segmentation"][ranking["experiment"]]
    )


def test_each_network_reports_its_inference_and_has_its_own_bound(grid_run):
    """The U-Net experiment trained its own networks on cam_erasing's pseudo-masks, and both its stages say
    which network and which test-time inference made their predictions."""
    results = grid_run.root / "results"
    assert not (results / "unet_ms_crf" / "pseudo_masks").exists()
    model = torch.load(results / "unet_ms_crf/segmentation/ground_truth/model.pt", weights_only=True)
    assert model["meta"]["arch"] == "unet" and model["meta"]["upsampling"] == "transpose"
    summary = pd.read_parquet(results / "summary.parquet").set_index(["experiment", "stage"])["note"]
    note = "unet (transpose) on efficientnet_lite0; scale 0.75, 1 + flip + CRF"
    assert summary["unet_ms_crf", "segmentation"] == summary["unet_ms_crf", "fully_supervised"] == note
    assert summary["cam", "segmentation"] == "deeplabv3 on efficientnet_lite0; scale 1 + flip"
    assert summary["cam", "crf"] == ""
    text = (results / "summary.txt").read_text()
    assert f"  {note}" in text


def test_the_reading_methods_run_through_the_workflow(grid_run):
    """reading: a Mixup-CAM classifier, OpenCV saliency maps as the pseudo-masks' background (and the oracle
    sweep of its threshold, marked ORACLE), a network trained with SEC's loss, predictions on tiles; cam_weights:
    networks with median-frequency class weights, written next to them."""
    results = grid_run.root / "results"
    maps = sorted((results / "reading/saliency").glob("shard*/*.png"))
    assert len(maps) == len(list((results / "reading/pseudo_masks").glob("shard*/*.png"))) > 0
    history = pd.read_parquet(results / "reading/segmentation/pseudo_mask/history.parquet")
    assert {"seed_loss", "expand_loss", "constrain_loss"} <= set(history.columns)
    summary = pd.read_parquet(results / "summary.parquet").set_index(["experiment", "stage"])
    assert summary.loc[("reading", "saliency_oracle"), "oracle"]
    assert summary.loc[("reading", "segmentation"), "note"].endswith("+ tiles 32/8; SEC loss")
    weights = json.loads((results / "cam_weights/segmentation/pseudo_mask/class_weights.json").read_text())
    assert weights["method"] == "median_frequency"
    plain = json.loads((results / "cam/segmentation/pseudo_mask/class_weights.json").read_text())
    assert plain["method"] == "none" and set(plain["weights"].values()) <= {0.0, 1.0}
