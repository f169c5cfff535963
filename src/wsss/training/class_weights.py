"""Class weights for the segmentation network's loss (segmentation.class_weights), from the pixel counts of the
label maps it trains on: networks trained on real photos learn only the frequent classes unless the rare ones
weigh more.

The counts are taken once, before training, over the stored label maps (the pseudo-labels for the WSSS network,
the ground truth for the bound), at their own resolution (before the training resize and crop), 255 (ignore)
left out. A class that never occurs there is no target of the loss and gets weight 0.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wsss.data.voc import IGNORE, read_mask
from wsss.files import atomic_write

NONE, MEDIAN_FREQUENCY, INVERSE_LOG = "none", "median_frequency", "inverse_log"
# ENet's c (Paszke et al. 2016, Sec. 5.2): with it, 1 / ln(c + p) stays within about [1.42, 50.5] for p in [0, 1]
ENET_C = 1.02


@dataclass(frozen=True)
class LabelCounts:
    """Pixel counts of a set of label maps, per class id (background included), 255 left out.

    pixels: pixels labelled c; image_pixels: labelled pixels of the images where c occurs (median frequency
    balancing's denominator); images: label maps where c occurs; labelled: all labelled pixels.
    """

    pixels: np.ndarray
    image_pixels: np.ndarray
    images: np.ndarray

    @property
    def labelled(self) -> int:
        return int(self.pixels.sum())


def count_labels(label_paths: Iterable[Path], num_classes: int) -> LabelCounts:
    """The LabelCounts of the label maps (palette PNGs of class ids, 255 = ignore) at their stored size."""
    pixels = np.zeros(num_classes, np.int64)
    image_pixels = np.zeros(num_classes, np.int64)
    images = np.zeros(num_classes, np.int64)
    for path in label_paths:
        # read_mask refuses ids >= num_classes other than 255, so the first num_classes bins are every label
        counts = np.bincount(read_mask(path, num_classes).ravel(), minlength=IGNORE + 1)[:num_classes]
        present = counts > 0
        pixels += counts
        image_pixels[present] += counts.sum()
        images += present
    return LabelCounts(pixels, image_pixels, images)


def median_frequency_weights(counts: LabelCounts) -> np.ndarray:
    """Median frequency balancing (Eigen & Fergus, ICCV 2015; SegNet's class balancing):
    freq(c) = pixels of c / labelled pixels of the images where c occurs, w_c = median(freq) / freq(c), the
    median over the classes that occur (numpy's: the mean of the middle two for an even number); 0 for the rest."""
    present = counts.pixels > 0
    weights = np.zeros(len(counts.pixels))
    if present.any():
        frequency = counts.pixels[present] / counts.image_pixels[present]
        weights[present] = np.median(frequency) / frequency
    return weights


def inverse_log_weights(counts: LabelCounts, c: float = ENET_C) -> np.ndarray:
    """ENet's weighting (Paszke et al. 2016, Sec. 5.2): w_c = 1 / ln(c + p_c), p_c = pixels of c / all labelled
    pixels, not clipped (c = 1.02 bounds it by itself); 0 for classes that do not occur, as ENet's code gives
    them (e-lab/ENet-training, train/models/encoder.lua)."""
    present = counts.pixels > 0
    weights = np.zeros(len(counts.pixels))
    if present.any():
        weights[present] = 1 / np.log(c + counts.pixels[present] / counts.labelled)
    return weights


# segmentation.class_weights -> the weights of a LabelCounts; none: every class 1 (the loss takes no weights)
CLASS_WEIGHTINGS = {
    NONE: lambda counts: np.ones(len(counts.pixels)),
    MEDIAN_FREQUENCY: median_frequency_weights,
    INVERSE_LOG: inverse_log_weights,
}


def weighting(method: str):
    """The weights function of a segmentation.class_weights value, checked before any label map is read."""
    if method not in CLASS_WEIGHTINGS:
        raise ValueError(f"segmentation.class_weights must be one of {', '.join(CLASS_WEIGHTINGS)}, got {method!r}")
    return CLASS_WEIGHTINGS[method]


def write_class_weights(path: Path, method: str, class_names: list[str], weights, counts: LabelCounts) -> None:
    """class_weights.json next to the model: the method, and per class name its weight and the counts behind it
    (pixels, labelled pixels of the images it occurs in, images), so a run says what its loss weighed."""
    if len(class_names) != len(weights):
        raise ValueError(f"{len(weights)} class weights for {len(class_names)} class names")
    document = {
        "method": method,
        "labelled_pixels": counts.labelled,
        "weights": {name: float(w) for name, w in zip(class_names, weights)},
        "pixels": {name: int(n) for name, n in zip(class_names, counts.pixels)},
        "image_pixels": {name: int(n) for name, n in zip(class_names, counts.image_pixels)},
        "images": {name: int(n) for name, n in zip(class_names, counts.images)},
    }
    with atomic_write(Path(path)) as tmp:
        tmp.write_text(json.dumps(document, indent=2) + "\n")
