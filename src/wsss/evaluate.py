"""Score one stage's per-image outputs against ground truth: a confusion matrix plus ignore counts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from .masks import cam_to_label
from .metrics import confusion_matrix, mean_iou, pixel_accuracy
from .voc import IGNORE, DataError, VOCTree, index_files, load_npy, read_mask


def _compare(tree: VOCTree, image_ids, num_classes: int, predict):
    """Yield (image id, confusion matrix, ignored pixels, scored pixels) for each image."""
    for image_id in tqdm(image_ids, desc="evaluate", mininterval=5):
        truth = read_mask(tree.mask_path(image_id), num_classes)
        prediction = predict(image_id)
        if prediction.shape != truth.shape:
            raise DataError(f"prediction for {image_id} is {prediction.shape}, ground truth is {truth.shape}")
        scored = truth != IGNORE
        ignored = int((scored & (prediction == IGNORE)).sum())
        yield image_id, confusion_matrix(truth, prediction, num_classes), ignored, int(scored.sum())


def _score(tree: VOCTree, image_ids, num_classes: int, predict) -> dict[str, np.ndarray]:
    confusion = np.zeros((num_classes, num_classes), np.int64)
    ignored = valid = 0
    for _, image_confusion, image_ignored, image_valid in _compare(tree, image_ids, num_classes, predict):
        confusion += image_confusion
        ignored += image_ignored
        valid += image_valid
    return {
        "confusion": confusion,
        "ignored_pixels": np.int64(ignored),
        "scored_pixels": np.int64(valid),
        "num_images": np.int64(len(image_ids)),
    }


def _lookup(index: dict[str, Path], image_id: str, what: str) -> Path:
    if image_id not in index:
        raise DataError(f"no {what} for image {image_id}")
    return index[image_id]


def cam_predictor(cam_dirs, labels, bg_threshold):
    """image id -> label map from its CAMs with the fixed background threshold (from config)."""
    index = index_files(cam_dirs, ".npy")
    return lambda i: cam_to_label(load_npy(_lookup(index, i, "CAM")), labels[i], bg_threshold)


def label_map_predictor(label_dirs, num_classes):
    """image id -> its PNG label map (255 = not predicted)."""
    index = index_files(label_dirs, ".png")
    return lambda i: read_mask(_lookup(index, i, "label map"), num_classes)


def evaluate_cams(tree, image_ids, cam_dirs, labels, bg_threshold, num_classes) -> dict[str, np.ndarray]:
    """CAMs -> label maps with the fixed background threshold (from config), scored."""
    return _score(tree, image_ids, num_classes, cam_predictor(cam_dirs, labels, bg_threshold))


def evaluate_cams_oracle(tree, image_ids, cam_dirs, labels, thresholds, num_classes) -> list[dict]:
    """ORACLE: the same CAMs scored at several background thresholds, chosen against ground truth."""
    index = index_files(cam_dirs, ".npy")
    cams = {i: load_npy(_lookup(index, i, "CAM")) for i in image_ids}
    return [
        _score(tree, image_ids, num_classes, lambda i, t=t: cam_to_label(cams[i], labels[i], t)) for t in thresholds
    ]


def evaluate_label_maps(tree, image_ids, label_dirs, num_classes) -> dict[str, np.ndarray]:
    """PNG label maps (255 = not predicted, counted as ignored) scored."""
    return _score(tree, image_ids, num_classes, label_map_predictor(label_dirs, num_classes))


def per_image_scores(tree, image_ids, num_classes, predict) -> pd.DataFrame:
    """One row per image: its own mIoU (over the classes in its ground truth, background included, pixels
    255 in either map left out, as for a stage), pixel accuracy and ignored fraction."""
    rows = []
    for image_id, confusion, ignored, valid in _compare(tree, image_ids, num_classes, predict):
        rows.append({"image_id": image_id, "miou": mean_iou(confusion), "pixel_accuracy": pixel_accuracy(confusion),
                     "ignored_fraction": ignored / max(valid, 1)})
    return pd.DataFrame(rows, columns=["image_id", "miou", "pixel_accuracy", "ignored_fraction"])


def image_scores_table(tree, stage_specs: dict, labels, num_classes) -> pd.DataFrame:
    """Per-image scores of every stage: stage_specs maps stage -> dict(kind, inputs, split, thresholds) with
    kind "cam" (scored at thresholds[0]) or "labels". Columns: stage, split, image_id, miou, ..."""
    frames = []
    for stage, spec in stage_specs.items():
        if spec["kind"] == "cam":
            predict = cam_predictor(spec["inputs"], labels, spec["thresholds"][0])
        elif spec["kind"] == "labels":
            predict = label_map_predictor(spec["inputs"], num_classes)
        else:
            raise ValueError(f"stage {stage!r}: no per-image scores for kind {spec['kind']!r}")
        scores = per_image_scores(tree, tree.split_ids(spec["split"]), num_classes, predict)
        frames.append(scores.assign(stage=stage, split=spec["split"]))
    columns = ["stage", "split", "image_id", "miou", "pixel_accuracy", "ignored_fraction"]
    return pd.concat(frames, ignore_index=True)[columns]


def save_scores(path, scores: dict[str, np.ndarray], **extra) -> None:
    np.savez(path, **scores, **{k: np.asarray(v) for k, v in extra.items()})


def load_scores(path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def evaluate_stage(kind, tree, image_ids, inputs, labels, thresholds, num_classes, out_path) -> None:
    """Score a stage and save its confusion matrix. cam_oracle keeps the best threshold, marked oracle."""
    if kind == "cam":
        scores = evaluate_cams(tree, image_ids, inputs, labels, thresholds[0], num_classes)
        save_scores(out_path, scores, bg_threshold=thresholds[0], oracle=False)
    elif kind == "cam_oracle":
        swept = evaluate_cams_oracle(tree, image_ids, inputs, labels, thresholds, num_classes)
        best = max(range(len(thresholds)), key=lambda k: mean_iou(swept[k]["confusion"]))
        save_scores(out_path, swept[best], bg_threshold=thresholds[best], oracle=True)
    elif kind == "labels":
        save_scores(out_path, evaluate_label_maps(tree, image_ids, inputs, num_classes), oracle=False)
    else:
        raise ValueError(f"unknown stage kind {kind!r}")
