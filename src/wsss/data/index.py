"""The dataset index: which VOC tree the workflow reads, its image lists, and SBD's extra masks.

VOC 2012 annotates 1,464 train images; the literature trains on train_aug, VOC train plus the SBD images
(Hariharan et al. 2011) minus VOC val: 10,582 images. SBD's masks (``cls/<id>.mat``) are converted to
palette PNGs here, once, so every later step reads one kind of mask. VOC's own masks win where both
exist: they are finer and carry the 255 boundary band.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import scipy.io
from tqdm import tqdm

from wsss.data.voc import INDEX_FILE, DataError, VOCTree, read_list, write_mask
from wsss.files import atomic_write

log = logging.getLogger(__name__)

TRAIN_AUG = "train_aug"


def read_sbd_mask(path: Path, num_classes: int) -> np.ndarray:
    """SBD's class mask (``GTcls.Segmentation`` of a .mat file) as uint8 class ids."""
    try:
        record = scipy.io.loadmat(path, struct_as_record=False, squeeze_me=True)["GTcls"]
        mask = np.asarray(record.Segmentation)
    except (OSError, ValueError, KeyError, AttributeError, TypeError) as error:
        raise DataError(f"cannot read SBD mask {path}: {error}") from error
    if mask.ndim != 2:
        raise DataError(f"SBD mask {path} has shape {mask.shape}; expected a 2-D label map")
    bad = (mask >= num_classes) & (mask != 255)
    if bad.any():
        raise DataError(
            f"SBD mask {path} has class id {int(mask[bad][0])}, but the class list has {num_classes} classes"
        )
    return mask.astype(np.uint8)


def train_aug_ids(voc_train: list[str], voc_val: list[str], sbd_train: list[str], sbd_val: list[str]) -> list[str]:
    """(SBD train ∪ SBD val ∪ VOC train) minus VOC val, sorted."""
    return sorted((set(sbd_train) | set(sbd_val) | set(voc_train)) - set(voc_val))


def check_voc_root(root: Path) -> None:
    missing = [
        d for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation") if not (Path(root) / d).is_dir()
    ]
    if missing:
        raise DataError(f"{root} is not a VOC2012-layout directory: missing {', '.join(missing)}")


def write_index(
    voc_root: Path,
    out_dir: Path,
    splits: list[str],
    num_classes: int,
    sbd_root: Path | None = None,
    expected_train_aug: int | None = None,
) -> dict[str, int]:
    """Write the index directory for voc_root (and SBD): dataset.json, lists/, SegmentationClassAug/.

    Every image of the given splits must exist, with a mask. Returns the image count per list.
    """
    voc_root, out_dir = Path(voc_root), Path(out_dir)
    check_voc_root(voc_root)
    lists, extra = out_dir / "lists", out_dir / "SegmentationClassAug"
    lists.mkdir(parents=True, exist_ok=True)
    extra.mkdir(exist_ok=True)
    voc = VOCTree(voc_root)
    ids = {path.stem: read_list(path) for path in sorted((voc_root / "ImageSets" / "Segmentation").glob("*.txt"))}
    if sbd_root is not None:
        sbd_root = Path(sbd_root)
        sbd_train, sbd_val = read_list(sbd_root / "train.txt"), read_list(sbd_root / "val.txt")
        ids[TRAIN_AUG] = train_aug_ids(voc.split_ids("train"), voc.split_ids("val"), sbd_train, sbd_val)
        log.info(
            "train_aug: %d images (SBD train %d, SBD val %d, VOC train %d, minus VOC val)",
            len(ids[TRAIN_AUG]),
            len(sbd_train),
            len(sbd_val),
            len(ids["train"]),
        )
        if expected_train_aug is not None and len(ids[TRAIN_AUG]) != expected_train_aug:
            raise DataError(
                f"train_aug built from {voc_root} and {sbd_root} has {len(ids[TRAIN_AUG])} images, expected "
                f"{expected_train_aug} (key expected_train_aug): are these the VOC 2012 and SBD release lists?"
            )
        to_convert = [i for i in ids[TRAIN_AUG] if not voc.mask_path(i).exists()]
        for image_id in tqdm(to_convert, desc="SBD masks", mininterval=2):
            write_mask(extra / f"{image_id}.png", read_sbd_mask(sbd_root / "cls" / f"{image_id}.mat", num_classes))
        log.info(
            "converted %d SBD masks; VOC's own masks used for the other %d",
            len(to_convert),
            len(ids[TRAIN_AUG]) - len(to_convert),
        )
    for split in splits:
        if split not in ids:
            raise DataError(f"split {split!r} has no image list: neither {voc.split_path(split)} nor SBD's train_aug")
    index = VOCTree(voc_root, extra, lists)
    for name, image_ids in ids.items():
        (lists / f"{name}.txt").write_text("".join(f"{i}\n" for i in image_ids))
    for split in splits:
        for image_id in ids[split]:
            for path in (index.image_path(image_id), index.mask_path(image_id)):
                if not path.is_file():
                    raise DataError(f"image {image_id!r} of split {split!r} has no file {path}")
    counts = {name: len(image_ids) for name, image_ids in ids.items()}
    manifest = {"voc_root": str(voc_root), "sbd_root": None if sbd_root is None else str(sbd_root), "images": counts}
    with atomic_write(out_dir / INDEX_FILE) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2))
    log.info("dataset index: %s", counts)
    return counts
