import numpy as np
import pandas as pd
import pytest

from wsss.data.voc import VOC_CLASSES, VOCTree, save_npy, write_mask
from wsss.scoring.evaluate import evaluate_cams, evaluate_label_maps, load_scores, pixel_counts, save_scores
from wsss.scoring.tables import (
    COST_PARTS,
    build_tables,
    format_ranking,
    format_summary,
    metrics_json,
    per_class_wide,
    ranking_table,
    summary_over_seeds,
    write_tables,
)


@pytest.fixture
def tiny_tree(tmp_path):
    root = tmp_path / "VOC2012"
    (root / "SegmentationClass").mkdir(parents=True)
    truth = np.zeros((4, 4), np.uint8)
    truth[:2, :2] = 8
    truth[3, 3] = 255
    write_mask(root / "SegmentationClass" / "x.png", truth)
    return VOCTree(root), truth


def test_cam_and_label_map_evaluation(tiny_tree, tmp_path):
    tree, truth = tiny_tree
    (tmp_path / "cams").mkdir()
    cams = np.zeros((1, 4, 4), np.float16)
    cams[0, :2, :3] = 0.8  # one column too wide
    save_npy(tmp_path / "cams" / "x.npy", cams)
    scores = evaluate_cams(tree, ["x"], [tmp_path / "cams"], {"x": [8]}, 0.15, 21)
    assert scores["confusion"][8, 8] == 4 and scores["confusion"][0, 8] == 2
    (tmp_path / "pred").mkdir()
    prediction = truth.copy()
    prediction[3, 3] = 0
    prediction[0, 0] = 255  # not labelled: background in the confusion, outside the confident precision
    prediction[1, 1] = 0  # labelled, wrongly
    write_mask(tmp_path / "pred" / "x.png", prediction)
    scores = evaluate_label_maps(tree, ["x"], [tmp_path / "pred"], 21)
    assert pixel_counts(scores) == {"scored": 15, "labelled": 14, "labelled_correct": 13}
    assert scores["confusion"][8, 0] == 2 and scores["confusion"][8, 8] == 2
    save_scores(tmp_path / "s.npz", scores, oracle=False)
    loaded = load_scores(tmp_path / "s.npz")
    assert loaded["confusion"].sum() == 15  # every pixel with a ground-truth label is scored
    summary = build_tables([("pseudo_mask", "train", loaded)], list(VOC_CLASSES))[1].iloc[0]
    assert summary.coverage == pytest.approx(14 / 15) and summary.confident_precision == pytest.approx(13 / 14)
    assert summary.pixel_accuracy == pytest.approx(13 / 15)


def test_tables_and_summary():
    confusion = np.zeros((21, 21), np.int64)
    confusion[0, 0], confusion[8, 8], confusion[8, 0] = 90, 6, 4
    scores = {
        "confusion": confusion,
        "scored_pixels": np.int64(100),
        "labelled_pixels": np.int64(95),
        "labelled_correct_pixels": np.int64(92),
        "num_images": np.int64(3),
    }
    half = {**scores, "confusion": confusion // 2 * 0 + np.diag(np.diag(confusion)) // 2}
    stages = [
        ("segmentation", "val", half),
        ("fully_supervised", "val", scores),
        ("cam_oracle", "train", {**scores, "oracle": np.bool_(True), "bg_threshold": np.float64(0.2)}),
    ]
    per_class, summary = build_tables(stages, list(VOC_CLASSES))
    assert {"stage", "split", "class_id", "class_name", "iou", "tp", "fp", "fn", "gt_pixels", "pred_pixels"} <= set(
        per_class
    )
    row = per_class[(per_class.stage == "fully_supervised") & (per_class.class_id == 8)].iloc[0]
    assert row.class_name == "cat" and row.iou == pytest.approx(6 / 10) and row.fn == 4
    full = summary.set_index("stage").loc["fully_supervised"]
    assert full.miou == pytest.approx((90 / 94 + 0.6) / 2) and full.coverage == pytest.approx(0.95)
    assert full.confident_precision == pytest.approx(92 / 95) and full.seed is pd.NA
    text = format_summary(summary)
    assert "ORACLE" in text.splitlines()[3] and "segmentation / fully-supervised" in text
    assert "chainercv" in text  # the table says how it scores
    assert isinstance(per_class, pd.DataFrame)


def test_dvc_views_carry_the_same_figures():
    confusion = np.zeros((21, 21), np.int64)
    confusion[0, 0], confusion[8, 8], confusion[8, 0], confusion[0, 3] = 90, 6, 4, 2  # bird predicted, absent
    scores = {
        "confusion": confusion,
        "scored_pixels": np.int64(102),
        "labelled_pixels": np.int64(102),
        "labelled_correct_pixels": np.int64(96),
        "num_images": np.int64(1),
    }
    per_class, summary = build_tables([("crf", "train", scores), ("segmentation", "val", scores)], list(VOC_CLASSES))
    metrics = metrics_json(summary)
    assert list(metrics) == ["crf", "segmentation"]
    assert metrics["crf"] == {
        "miou": pytest.approx(summary["miou"][0], abs=1e-6),
        "pixel_accuracy": pytest.approx(summary["pixel_accuracy"][0], abs=1e-6),
    }
    wide = per_class_wide(per_class)
    assert list(wide.columns) == ["class_name", "crf", "segmentation"]
    assert list(wide["class_name"]) == ["background", "cat"]  # classes absent from ground truth are left out
    assert wide.set_index("class_name").loc["cat", "segmentation"] == pytest.approx(0.6)


def test_nothing_scored_keeps_the_tables_and_says_why(tmp_path):
    """Photos with tags and no masks: no stage is scored; the tables keep their columns and summary.txt names
    each stage left unscored, with the reason."""
    unscored = {"cam": "no masks for train", "crf": "no masks for train", "segmentation": "no masks for val"}
    paths = {name: tmp_path / name for name in ("miou.parquet", "summary.parquet", "summary.txt", "m.json", "p.csv")}
    text = write_tables(
        [],
        list(VOC_CLASSES),
        paths["miou.parquet"],
        paths["summary.parquet"],
        paths["summary.txt"],
        metrics_path=paths["m.json"],
        plots_path=paths["p.csv"],
        unscored=unscored,
    )
    assert "not scored: cam, crf (no masks for train)" in text and "not scored: segmentation (no masks for val)" in text
    assert text.splitlines()[0].split()[:2] == ["stage", "split"]  # the table's header, without rows
    assert pd.read_parquet(paths["summary.parquet"]).empty and pd.read_parquet(paths["miou.parquet"]).empty
    assert {"stage", "miou", "num_images"} <= set(pd.read_parquet(paths["summary.parquet"]).columns)
    assert paths["m.json"].read_text().strip() == "{}"


def run_summary(experiment, seed, seg, full):
    """A per-run summary with made-up mIoUs (segmentation, fully_supervised) and their pixel counts."""
    rows = []
    for stage, miou in (("segmentation", seg), ("fully_supervised", full)):
        rows.append(
            {
                "experiment": experiment,
                "seed": seed,
                "stage": stage,
                "split": "val",
                "miou": miou,
                "pixel_accuracy": miou + 0.1,
                "mean_class_accuracy": miou,
                "coverage": 1.0,
                "confident_precision": miou + 0.1,
                "num_images": 6,
                "num_classes": 3,
                "oracle": False,
                "bg_threshold": np.nan,
            }
        )
    return pd.DataFrame(rows)


def test_seeds_are_summarised_as_mean_and_sd():
    runs = pd.concat(
        [run_summary("a", seed, seg, 0.8) for seed, seg in ((0, 0.5), (1, 0.6), (2, 0.7))]
        + [run_summary("b", seed, seg, 0.8) for seed, seg in ((0, 0.62), (1, 0.64), (2, 0.66))]
        + [run_summary("c", seed, seg, 0.8) for seed, seg in ((0, 0.2), (1, 0.21), (2, 0.22))],
        ignore_index=True,
    )
    summary = summary_over_seeds(runs).set_index(["experiment", "stage"])
    assert summary.loc[("a", "segmentation"), "miou"] == pytest.approx(0.6)
    assert summary.loc[("a", "segmentation"), "miou_sd"] == pytest.approx(np.std([0.5, 0.6, 0.7], ddof=1))
    assert summary.loc[("a", "fully_supervised"), "miou_sd"] == 0 and summary["seeds"].eq(3).all()
    text = format_summary(runs)
    assert "a: mean ± sd over 3 seeds [0, 1, 2]" in text and "0.600 ± 0.100" in text
    assert "segmentation / fully-supervised mIoU: 0.750 ± 0.125" in text
    costs = {
        f"{e}/seed{s}": {
            "total_s": 60.0 * (s + 1),
            "own_s": 60.0,
            "classifier_s": 0.0,
            "cams_s": 0.0,
            "masks_s": 0.0,
            "segmentation_s": 0.0,
        }
        for e in "abc"
        for s in range(3)
    }
    ranking = ranking_table(runs, costs, {run: run[0] for run in costs}, "segmentation")
    assert list(ranking["experiment"]) == ["b", "a", "c"]
    assert ranking.set_index("experiment").loc["a", "total_s"] == pytest.approx(120)  # mean over seeds
    # a (0.6 ± 0.1) and b (0.64 ± 0.02) overlap; c (0.21 ± 0.01) is apart from both
    assert list(ranking["within_noise_of"]) == ["2", "1", ""]
    text = format_ranking(ranking, "segmentation", {"segmentation": "val"})
    assert "mean ± sd over 3 seeds" in text.splitlines()[0] and "0.640±0.020" in text


def test_one_seed_has_no_spread():
    runs = run_summary("default", 0, 0.5, 0.8)
    summary = summary_over_seeds(runs)
    assert summary["seeds"].eq(1).all() and summary["miou_sd"].isna().all()
    text = format_summary(runs)
    assert "±" not in text and "segmentation / fully-supervised mIoU: 0.625" in text


def test_ranking_says_when_a_bound_is_no_bound():
    """A fully-supervised network below the WSSS one (an underfit bound) is named under the ranking."""
    runs = pd.concat([run_summary("fine", 0, 0.5, 0.8), run_summary("underfit", 0, 0.6, 0.3)], ignore_index=True)
    parts = dict.fromkeys(COST_PARTS, 30.0)
    costs = {name: {"total_s": 60.0, "own_s": 60.0, **parts} for name in ("fine/seed0", "underfit/seed0")}
    ranking = ranking_table(runs, costs, {"fine/seed0": "fine", "underfit/seed0": "underfit"}, "segmentation")
    assert ranking.set_index("experiment").loc["underfit", "ratio_to_fully_supervised"] == pytest.approx(2.0)
    text = format_ranking(ranking, "segmentation", {"segmentation": "val"})
    assert "seg/fully above 1 (underfit): the network on ground truth scores below" in text
    assert "fine" not in text.splitlines()[-1]
