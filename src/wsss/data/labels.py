"""Image-level labels: a dataset's tags, or the classes of each mask (IRN's cls_labels), plus per-image statistics."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from tqdm import tqdm

from wsss.data.datasets import Dataset
from wsss.data.voc import IGNORE, ROTATING_ORIENTATIONS, DataError, exif_orientation, read_image, read_mask

log = logging.getLogger(__name__)


def size_mismatch(image_path, image_shape, mask_path, mask_shape) -> DataError:
    """The error for a mask whose size is not its image's, naming both files (H x W of each).

    Images are read as stored: an EXIF orientation tag is ignored (as by PIL and every VOC loader), so a
    mask drawn on the rotated view of an EXIF-rotated photo has its sides swapped; the message says so.
    """
    message = (
        f"mask {mask_path} is {mask_shape[0]}x{mask_shape[1]} (HxW) but its image {image_path} is "
        f"{image_shape[0]}x{image_shape[1]}; a mask must have its image's size"
    )
    orientation = exif_orientation(image_path)
    if orientation in ROTATING_ORIENTATIONS:
        message += (
            f" (the image has EXIF orientation {orientation}, which viewers show rotated; pixels are read "
            "as stored, so annotate the stored image, or store the photo rotated, e.g. with "
            "PIL.ImageOps.exif_transpose, and remove the tag)"
        )
    return DataError(message)


def image_labels(dataset: Dataset, image_ids: list[str], num_classes: int) -> pd.DataFrame:
    """One row per image: its foreground class ids (ascending), size and mean colour.

    The class ids are the dataset's tags (COCO's annotations, a tags CSV) or, for a kind whose labels come
    from masks (VOC), the classes in its mask (IRN's cls_labels). Every mask there is is read and checked
    against its image's size either way. The mean colour is kept so erasing can fill with the dataset mean
    without another pass over the images.
    """
    rows = []
    for image_id in tqdm(image_ids, desc="labels", mininterval=2):
        image = read_image(dataset.image_path(image_id))
        mask_path = dataset.mask_path(image_id)
        mask = None if mask_path is None else read_mask(mask_path, num_classes)
        if mask is not None and image.shape[:2] != mask.shape:
            raise size_mismatch(dataset.image_path(image_id), image.shape[:2], mask_path, mask.shape)
        class_ids = dataset.tags(image_id)
        if class_ids is None:
            class_ids = [int(c) for c in np.unique(mask) if c not in (0, IGNORE)]
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
