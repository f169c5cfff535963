"""Score one stage's per-image outputs against ground truth: a confusion matrix plus the pixel counts
behind coverage and confident precision."""

from __future__ import annotations

import numpy as np
import pandas as pd
from tqdm import tqdm

from wsss.data.datasets import Dataset
from wsss.data.voc import IGNORE, DataError, index_files, indexed_file, load_npy, read_image, read_mask, read_saliency
from wsss.scoring.metrics import confusion_matrix, mean_iou, pixel_accuracy
from wsss.seeds.masks import cam_to_label
from wsss.seeds.saliency import cam_claims, saliency_labels, saliency_map_file

PIXEL_COUNTS = ("scored", "labelled", "labelled_correct")


def _compare(dataset: Dataset, image_ids, num_classes: int, predict):
    """Yield (image id, confusion matrix, pixel counts) for each image.

    The confusion matrix counts a pixel the prediction leaves unlabelled (255) as background (metrics). The
    counts say what that hides: "scored" (pixels with a ground-truth label), "labelled" (of those, the ones
    the prediction labels) and "labelled_correct" (of those, the ones it labels right).
    """
    for image_id in tqdm(image_ids, desc="evaluate", mininterval=5):
        truth = read_mask(dataset.mask_path(image_id), num_classes)
        prediction = predict(image_id)
        if prediction.shape != truth.shape:
            raise DataError(f"prediction for {image_id} is {prediction.shape}, ground truth is {truth.shape}")
        scored = truth != IGNORE
        labelled = scored & (prediction != IGNORE)
        counts = {
            "scored": int(scored.sum()),
            "labelled": int(labelled.sum()),
            "labelled_correct": int((labelled & (prediction == truth)).sum()),
        }
        yield image_id, confusion_matrix(truth, prediction, num_classes), counts


def coverage(counts: dict) -> float:
    """The fraction of ground-truth-labelled pixels that the prediction labels (1 for a dense map)."""
    return counts["labelled"] / counts["scored"] if counts["scored"] else float("nan")


def confident_precision(counts: dict) -> float:
    """The pixel accuracy over the pixels the prediction labels: a pseudo-mask's precision where it is sure."""
    return counts["labelled_correct"] / counts["labelled"] if counts["labelled"] else float("nan")


def score_predictor(dataset: Dataset, image_ids, num_classes: int, predict) -> dict[str, np.ndarray]:
    """The confusion matrix and pixel counts (_compare) of predict (image id -> label map) over image_ids."""
    confusion = np.zeros((num_classes, num_classes), np.int64)
    totals = dict.fromkeys(PIXEL_COUNTS, 0)
    for _, image_confusion, counts in _compare(dataset, image_ids, num_classes, predict):
        confusion += image_confusion
        for key in totals:
            totals[key] += counts[key]
    return {
        "confusion": confusion,
        **{f"{key}_pixels": np.int64(value) for key, value in totals.items()},
        "num_images": np.int64(len(image_ids)),
    }


def pixel_counts(scores: dict) -> dict:
    """The pixel counts of a stage's saved scores, as _compare names them."""
    return {key: int(scores[f"{key}_pixels"]) for key in PIXEL_COUNTS}


def cam_predictor(cam_dirs, labels, bg_threshold):
    """image id -> label map from its CAMs with the fixed background threshold (from config)."""
    index = index_files(cam_dirs, ".npy")
    return lambda i: cam_to_label(load_npy(indexed_file(index, i, "CAM")), labels[i], bg_threshold)


def label_map_predictor(label_dirs, num_classes):
    """image id -> its PNG label map (255 = not predicted)."""
    index = index_files(label_dirs, ".png")
    return lambda i: read_mask(indexed_file(index, i, "label map"), num_classes)


def evaluate_cams(dataset, image_ids, cam_dirs, labels, bg_threshold, num_classes) -> dict[str, np.ndarray]:
    """CAMs -> label maps with the fixed background threshold (from config), scored."""
    return score_predictor(dataset, image_ids, num_classes, cam_predictor(cam_dirs, labels, bg_threshold))


def evaluate_cams_oracle(dataset, image_ids, cam_dirs, labels, thresholds, num_classes) -> list[dict]:
    """ORACLE: the same CAMs scored at several background thresholds, chosen against ground truth."""
    index = index_files(cam_dirs, ".npy")
    cams = {i: load_npy(indexed_file(index, i, "CAM")) for i in image_ids}
    return [
        score_predictor(dataset, image_ids, num_classes, lambda i, t=t: cam_to_label(cams[i], labels[i], t))
        for t in thresholds
    ]


def saliency_cues(dataset, image_ids, cam_dirs, saliency_dirs, labels, fg_threshold, crf_params) -> dict:
    """image id -> (its saliency map, the class its CAMs claim at each pixel): what the pseudo-masks with saliency
    are made of (wsss.seeds.saliency.saliency_pseudo_mask), computed once for every threshold of the sweep."""
    cam_index, map_index = index_files(cam_dirs, ".npy"), index_files(saliency_dirs, ".png")
    cues = {}
    for image_id in image_ids:
        image = read_image(dataset.image_path(image_id))
        claims = cam_claims(
            image, load_npy(indexed_file(cam_index, image_id, "CAM")), labels[image_id], fg_threshold, crf_params
        )
        saliency = read_saliency(saliency_map_file(map_index, saliency_dirs, image_id), image.shape[:2])
        cues[image_id] = (saliency, claims)
    return cues


def evaluate_saliency_oracle(
    dataset, image_ids, cam_dirs, saliency_dirs, labels, thresholds, fg_threshold, crf_params, num_classes, out_path
) -> None:
    """ORACLE: the pseudo-masks with saliency rebuilt at each saliency threshold and scored; the best threshold is
    kept (chosen against ground truth), saved as its bg_threshold and marked oracle, as cam_oracle."""
    cues = saliency_cues(dataset, image_ids, cam_dirs, saliency_dirs, labels, fg_threshold, crf_params)
    swept = [
        score_predictor(dataset, image_ids, num_classes, lambda i, t=t: saliency_labels(*cues[i], t))
        for t in thresholds
    ]
    best = max(range(len(thresholds)), key=lambda k: mean_iou(swept[k]["confusion"]))
    save_scores(out_path, swept[best], bg_threshold=thresholds[best], oracle=True)


def evaluate_label_maps(dataset, image_ids, label_dirs, num_classes) -> dict[str, np.ndarray]:
    """PNG label maps scored (255 = not labelled: background in the mIoU, left out of the confident precision)."""
    return score_predictor(dataset, image_ids, num_classes, label_map_predictor(label_dirs, num_classes))


IMAGE_SCORES = ("miou", "pixel_accuracy", "coverage", "confident_precision")


def per_image_scores(dataset, image_ids, num_classes, predict) -> pd.DataFrame:
    """One row per image, scored as a stage is (metrics): its own mIoU (over the classes predicted or present
    in it), pixel accuracy, coverage and confident precision."""
    rows = []
    for image_id, confusion, counts in _compare(dataset, image_ids, num_classes, predict):
        rows.append(
            {
                "image_id": image_id,
                "miou": mean_iou(confusion),
                "pixel_accuracy": pixel_accuracy(confusion),
                "coverage": coverage(counts),
                "confident_precision": confident_precision(counts),
            }
        )
    return pd.DataFrame(rows, columns=["image_id", *IMAGE_SCORES])


def image_scores_table(dataset, stage_specs: dict, labels, num_classes) -> pd.DataFrame:
    """Per-image scores of every stage: stage_specs maps stage -> dict(kind, inputs, split, thresholds) with
    kind "cam" (scored at thresholds[0]) or "labels", scored on the images of its split that have masks.
    Columns: stage, split, image_id, miou, ..."""
    frames = []
    for stage, spec in stage_specs.items():
        if spec["kind"] == "cam":
            predict = cam_predictor(spec["inputs"], labels, spec["thresholds"][0])
        elif spec["kind"] == "labels":
            predict = label_map_predictor(spec["inputs"], num_classes)
        else:
            raise ValueError(f"stage {stage!r}: no per-image scores for kind {spec['kind']!r}")
        scores = per_image_scores(dataset, dataset.masked_ids(spec["split"]), num_classes, predict)
        frames.append(scores.assign(stage=stage, split=spec["split"]))
    columns = ["stage", "split", "image_id", *IMAGE_SCORES]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def save_scores(path, scores: dict[str, np.ndarray], **extra) -> None:
    np.savez(path, **scores, **{k: np.asarray(v) for k, v in extra.items()})


def load_scores(path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def evaluate_stage(kind, dataset, image_ids, inputs, labels, thresholds, num_classes, out_path) -> None:
    """Score a stage and save its confusion matrix. cam_oracle keeps the best threshold, marked oracle."""
    if kind == "cam":
        scores = evaluate_cams(dataset, image_ids, inputs, labels, thresholds[0], num_classes)
        save_scores(out_path, scores, bg_threshold=thresholds[0], oracle=False)
    elif kind == "cam_oracle":
        swept = evaluate_cams_oracle(dataset, image_ids, inputs, labels, thresholds, num_classes)
        best = max(range(len(thresholds)), key=lambda k: mean_iou(swept[k]["confusion"]))
        save_scores(out_path, swept[best], bg_threshold=thresholds[best], oracle=True)
    elif kind == "labels":
        save_scores(out_path, evaluate_label_maps(dataset, image_ids, inputs, num_classes), oracle=False)
    else:
        raise ValueError(f"unknown stage kind {kind!r}")
