"""Image-level labels derived from segmentation masks (IRN's cls_labels), plus per-image statistics."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from tqdm import tqdm

from .voc import IGNORE, VOCTree, read_image, read_mask

log = logging.getLogger(__name__)


def image_labels(tree: VOCTree, image_ids: list[str], num_classes: int) -> pd.DataFrame:
    """One row per image: its foreground class ids (ascending), size and mean colour.

    The mean colour is kept so erasing can fill with the dataset mean without another pass over the images.
    """
    rows = []
    for image_id in tqdm(image_ids, desc="labels", mininterval=2):
        mask = read_mask(tree.mask_path(image_id), num_classes)
        image = read_image(tree.image_path(image_id))
        if image.shape[:2] != mask.shape:
            raise ValueError(f"image {tree.image_path(image_id)} is {image.shape[:2]} but its mask is {mask.shape}")
        present = np.unique(mask)
        class_ids = [int(c) for c in present if c not in (0, IGNORE)]
        mean = image.reshape(-1, 3).mean(0)
        rows.append(
            {
                "image_id": image_id,
                "class_ids": class_ids,
                "height": image.shape[0],
                "width": image.shape[1],
                "mean_r": float(mean[0]),
                "mean_g": float(mean[1]),
                "mean_b": float(mean[2]),
            }
        )
    frame = pd.DataFrame(rows)
    no_foreground = int((frame["class_ids"].map(len) == 0).sum())
    log.info("labels for %d images; %d have no foreground class", len(frame), no_foreground)
    return frame


def load_labels(path) -> dict[str, list[int]]:
    """image id -> ascending foreground class ids, from the labels parquet."""
    frame = pd.read_parquet(path, columns=["image_id", "class_ids"])
    return {row.image_id: [int(c) for c in row.class_ids] for row in frame.itertuples()}


def mean_colour(path, image_ids: list[str]) -> np.ndarray:
    """Pixel-weighted mean RGB of the given images, from the labels parquet."""
    frame = pd.read_parquet(path).set_index("image_id").loc[image_ids]
    weights = (frame["height"] * frame["width"]).to_numpy(float)
    means = frame[["mean_r", "mean_g", "mean_b"]].to_numpy(float)
    return (means * weights[:, None]).sum(0) / weights.sum()
