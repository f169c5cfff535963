"""Small VOC 2012 and SBD trees in their published layouts, and their archives, built by the tests."""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import numpy as np
import scipy.io

from wsss.demo import make_demo_dataset
from wsss.voc import read_mask

CLASSES = ["aeroplane", "bird", "car", "cat", "person"]


def make_voc_and_sbd(root: Path, voc_train: int = 8, sbd_only: int = 8, val: int = 6, seed: int = 5):
    """VOCdevkit/VOC2012 and benchmark_RELEASE/dataset under root, with VOC's and SBD's list overlaps.

    JPEG images of varied sizes and palette masks with a 255 band (the demo generator's). VOC annotates
    its train and val images; SBD holds ``sbd_only`` further images (masks as .mat, no 255), plus two VOC
    train and one VOC val image, as the real SBD overlaps both. Returns (voc_dir, sbd_dir, expected
    train_aug ids).
    """
    staging = root / "staging"
    make_demo_dataset(staging, class_names=CLASSES, num_train=voc_train + sbd_only, num_val=val,
                      size_range=(40, 64), max_objects=2, background_only_fraction=0.1,
                      body_colour_prob=0.85, seed=seed)
    train = (staging / "ImageSets/Segmentation/train.txt").read_text().split()
    val_ids = (staging / "ImageSets/Segmentation/val.txt").read_text().split()
    voc_ids, sbd_ids = train[:voc_train], train[voc_train:]
    voc = root / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation", "Annotations"):
        (voc / sub).mkdir(parents=True)
    for image_id in train + val_ids:
        shutil.copy(staging / "JPEGImages" / f"{image_id}.jpg", voc / "JPEGImages")
    for image_id in voc_ids + val_ids:
        shutil.copy(staging / "SegmentationClass" / f"{image_id}.png", voc / "SegmentationClass")
        (voc / "Annotations" / f"{image_id}.xml").write_text("<annotation/>")
    (voc / "ImageSets/Segmentation/train.txt").write_text("".join(f"{i}\n" for i in voc_ids))
    (voc / "ImageSets/Segmentation/val.txt").write_text("".join(f"{i}\n" for i in val_ids))
    sbd = root / "benchmark_RELEASE" / "dataset"
    (sbd / "cls").mkdir(parents=True)
    sbd_train, sbd_val = sbd_ids[: len(sbd_ids) // 2] + voc_ids[:2], sbd_ids[len(sbd_ids) // 2:] + val_ids[:1]
    for image_id in sbd_train + sbd_val:
        mask = read_mask(staging / "SegmentationClass" / f"{image_id}.png", 21)
        mask = np.where(mask == 255, 0, mask).astype(np.uint8)  # SBD's class masks have no ignore band
        scipy.io.savemat(sbd / "cls" / f"{image_id}.mat",
                         {"GTcls": {"Segmentation": mask, "Boundaries": np.zeros(1), "CategoriesPresent": np.unique(mask)}})
    (sbd / "train.txt").write_text("".join(f"{i}\n" for i in sbd_train))
    (sbd / "val.txt").write_text("".join(f"{i}\n" for i in sbd_val))
    shutil.rmtree(staging)
    return voc, sbd, sorted(voc_ids + sbd_ids)


def tar_bytes(source: Path, arcname: str, mode: str = "w") -> bytes:
    """An archive of source stored under arcname (e.g. VOCdevkit, as in VOCtrainval_11-May-2012.tar)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        tar.add(source, arcname=arcname)
    return buffer.getvalue()
