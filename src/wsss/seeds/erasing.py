"""Adversarial erasing (AE-PSL): hide what earlier rounds' CAMs mined so the next classifier looks elsewhere."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wsss.data.labels import mean_colour
from wsss.data.voc import DataError, index_files, load_npy


def mined_region(cams_per_round: list[np.ndarray], threshold: float, shape: tuple[int, int]) -> np.ndarray:
    """Pixels where any class's CAM of any earlier round exceeds the erasing threshold (bool HxW)."""
    region = np.zeros(shape, bool)
    for cams in cams_per_round:
        if cams.shape[1:] != shape:
            raise ValueError(f"CAM shape {cams.shape[1:]} does not match image shape {shape}")
        if len(cams):
            region |= (cams > threshold).any(0)
    return region


def erase(image: np.ndarray, region: np.ndarray, fill_rgb) -> np.ndarray:
    """A copy of image with the region filled with fill_rgb (the dataset mean colour)."""
    erased = image.copy()
    erased[region] = np.round(np.asarray(fill_rgb)).astype(np.uint8)
    return erased


class Eraser:
    """Erases, for one image id, the regions mined by the given earlier rounds (their CAM file indexes)."""

    def __init__(self, cam_indexes: list[dict[str, Path]], threshold: float, fill_rgb):
        self.cam_indexes = cam_indexes
        self.threshold = threshold
        self.fill_rgb = fill_rgb

    @classmethod
    def from_shard_dirs(cls, shard_dirs, threshold: float, fill_rgb) -> Eraser:
        """From CAM shard directories laid out as .../r<round>/shard<k>: one index per round."""
        by_round: dict[str, list[Path]] = {}
        for directory in map(Path, shard_dirs):
            by_round.setdefault(directory.parent.name, []).append(directory)
        return cls([index_files(dirs, ".npy") for dirs in by_round.values()], threshold, fill_rgb)

    def __call__(self, image_id: str, image: np.ndarray) -> np.ndarray:
        cams = []
        for index in self.cam_indexes:
            if image_id not in index:
                raise DataError(f"no CAM of an earlier round for image {image_id}")
            cams.append(load_npy(index[image_id]))
        return erase(image, mined_region(cams, self.threshold, image.shape[:2]), self.fill_rgb)


def eraser_for_round(earlier_shard_dirs, threshold: float | None, labels_path, image_ids) -> Eraser | None:
    """The eraser a round's classifier and CAMs see: none for round 0 (no earlier CAM shards, and no
    threshold: round 0 does not read it), otherwise every earlier round's mined regions filled with the mean
    colour of the given images."""
    if not earlier_shard_dirs:
        return None
    return Eraser.from_shard_dirs(earlier_shard_dirs, threshold, mean_colour(labels_path, image_ids))
