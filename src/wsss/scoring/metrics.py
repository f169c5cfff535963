"""Segmentation scores as the literature computes them: a chainercv-style bincount confusion matrix.

The conventions are those of chainercv's calc_semantic_segmentation_iou, which IRN (and most WSSS papers
after it) report: ground-truth pixels labelled 255 are left out; a predicted 255 (a pseudo-mask's
unlabelled pixel) counts as background, as IRN's eval_sem_seg does; the mIoU is the mean over every class
that is predicted or present, so a class predicted where it is absent scores 0.
"""

from __future__ import annotations

import numpy as np

from wsss.data.voc import IGNORE


def confusion_matrix(truth: np.ndarray, prediction: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) int64 counts, rows = ground truth, columns = prediction.

    Pixels that are 255 in the truth (the ignore band) are left out; 255 in the prediction (not labelled)
    counts as background.
    """
    if truth.shape != prediction.shape:
        raise ValueError(f"shape mismatch: truth {truth.shape} vs prediction {prediction.shape}")
    truth = truth.astype(np.int64).ravel()
    prediction = prediction.astype(np.int64).ravel()
    prediction[prediction == IGNORE] = 0
    valid = truth != IGNORE
    if (truth[valid] >= num_classes).any() or (prediction[valid] >= num_classes).any():
        raise ValueError(f"class id >= {num_classes} in truth or prediction")
    counts = np.bincount(num_classes * truth[valid] + prediction[valid], minlength=num_classes**2)
    return counts.reshape(num_classes, num_classes)


def per_class_scores(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """IoU and the counts behind it, per class; IoU is NaN for classes absent from truth and prediction."""
    tp = np.diag(confusion).astype(np.int64)
    gt = confusion.sum(1)
    pred = confusion.sum(0)
    union = gt + pred - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
    return {"tp": tp, "fp": pred - tp, "fn": gt - tp, "gt_pixels": gt, "pred_pixels": pred, "iou": iou}


def mean_iou(confusion: np.ndarray) -> float:
    """Mean IoU over the classes predicted or present (chainercv / IRN), background included."""
    iou = per_class_scores(confusion)["iou"]
    return float(np.nanmean(iou)) if not np.isnan(iou).all() else float("nan")


def pixel_accuracy(confusion: np.ndarray) -> float:
    total = confusion.sum()
    return float(np.trace(confusion) / total) if total else float("nan")


def average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Mean over classes (with at least one positive) of the average precision of ranking by score."""
    aps = []
    for column in range(targets.shape[1]):
        positives = targets[:, column] > 0.5
        if not positives.any():
            continue
        order = np.argsort(-scores[:, column], kind="stable")
        hits = positives[order]
        precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
        aps.append(float(precision[hits].mean()))
    return float(np.mean(aps)) if aps else float("nan")
