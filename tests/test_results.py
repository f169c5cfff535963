import numpy as np
import pandas as pd
import pytest

from wsss.evaluate import evaluate_cams, evaluate_label_maps, load_scores, save_scores
from wsss.results import build_tables, format_summary, metrics_json, per_class_wide
from wsss.voc import VOC_CLASSES, VOCTree, save_npy, write_mask


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
    prediction[0, 0] = 255  # not predicted: ignored and counted
    write_mask(tmp_path / "pred" / "x.png", prediction)
    scores = evaluate_label_maps(tree, ["x"], [tmp_path / "pred"], 21)
    assert int(scores["ignored_pixels"]) == 1 and int(scores["scored_pixels"]) == 15
    save_scores(tmp_path / "s.npz", scores, oracle=False)
    assert load_scores(tmp_path / "s.npz")["confusion"].sum() == 14


def test_tables_and_summary():
    confusion = np.zeros((21, 21), np.int64)
    confusion[0, 0], confusion[8, 8], confusion[8, 0] = 90, 6, 4
    scores = {"confusion": confusion, "ignored_pixels": np.int64(5), "scored_pixels": np.int64(100),
              "num_images": np.int64(3)}
    half = {**scores, "confusion": confusion // 2 * 0 + np.diag(np.diag(confusion)) // 2}
    stages = [("segmentation", "val", half), ("fully_supervised", "val", scores),
              ("cam_oracle", "train", {**scores, "oracle": np.bool_(True), "bg_threshold": np.float64(0.2)})]
    per_class, summary = build_tables(stages, list(VOC_CLASSES))
    assert {"stage", "split", "class_id", "class_name", "iou", "tp", "fp", "fn", "gt_pixels", "pred_pixels"} <= set(per_class)
    row = per_class[(per_class.stage == "fully_supervised") & (per_class.class_id == 8)].iloc[0]
    assert row.class_name == "cat" and row.iou == pytest.approx(6 / 10) and row.fn == 4
    full = summary.set_index("stage").loc["fully_supervised"]
    assert full.miou == pytest.approx((90 / 94 + 0.6) / 2) and full.ignored_fraction == pytest.approx(0.05)
    text = format_summary(summary)
    assert "ORACLE" in text.splitlines()[3] and "segmentation / fully-supervised" in text
    assert isinstance(per_class, pd.DataFrame)


def test_dvc_views_carry_the_same_figures():
    confusion = np.zeros((21, 21), np.int64)
    confusion[0, 0], confusion[8, 8], confusion[8, 0], confusion[0, 3] = 90, 6, 4, 2  # bird predicted, absent
    scores = {"confusion": confusion, "ignored_pixels": np.int64(0), "scored_pixels": np.int64(102),
              "num_images": np.int64(1)}
    per_class, summary = build_tables([("crf", "train", scores), ("segmentation", "val", scores)], list(VOC_CLASSES))
    metrics = metrics_json(summary)
    assert list(metrics) == ["crf", "segmentation"]
    assert metrics["crf"] == {"miou": pytest.approx(summary["miou"][0], abs=1e-6),
                              "pixel_accuracy": pytest.approx(summary["pixel_accuracy"][0], abs=1e-6)}
    wide = per_class_wide(per_class)
    assert list(wide.columns) == ["class_name", "crf", "segmentation"]
    assert list(wide["class_name"]) == ["background", "cat"]  # classes absent from ground truth are left out
    assert wide.set_index("class_name").loc["cat", "segmentation"] == pytest.approx(0.6)
