"""The voc dataset kind: a VOC 2012 tree, its image lists, and SBD's extra masks for train_aug.

VOC 2012 annotates 1,464 train images; the literature trains on train_aug, VOC train plus the SBD images
(Hariharan et al. 2011) minus VOC val: 10,582 images. SBD's masks (``cls/<id>.mat``) are converted to
palette PNGs here, once, so every later step reads one kind of mask. VOC's own masks win where both
exist: they are finer and carry the 255 boundary band.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from tqdm import tqdm

from wsss.data.datasets import FROM_MASKS, BuiltIndex, IndexedImage, IndexRequest
from wsss.data.voc import DataError, VOCTree, read_list, write_mask

log = logging.getLogger(__name__)

TRAIN_AUG = "train_aug"


def read_sbd_mask(path: Path, num_classes: int) -> np.ndarray:
    """SBD's class mask (``GTcls.Segmentation`` of a .mat file) as uint8 class ids."""
    import scipy.io  # here: the workflow imports the dataset kinds when it plans (0.3 s)

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


def build_voc(request: IndexRequest) -> BuiltIndex:
    """The voc kind: the configured splits of the VOC tree (inputs "voc") and, with SBD (inputs "sbd"),
    train_aug, SBD's masks converted to request.masks_dir (VOC's own mask where both exist). Labels come
    from the masks, as IRN's cls_labels. Every image of a split must have a mask."""
    voc_root = Path(request.inputs["voc"])
    sbd_root = request.inputs.get("sbd") or None
    check_voc_root(voc_root)
    voc = VOCTree(voc_root)
    ids = {path.stem: read_list(path) for path in sorted((voc_root / "ImageSets" / "Segmentation").glob("*.txt"))}
    converted = request.masks_dir
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
        expected = request.config.get("expected_train_aug")
        if expected is not None and len(ids[TRAIN_AUG]) != expected:
            raise DataError(
                f"train_aug built from {voc_root} and {sbd_root} has {len(ids[TRAIN_AUG])} images, expected "
                f"{expected} (key expected_train_aug): are these the VOC 2012 and SBD release lists?"
            )
        to_convert = [i for i in ids[TRAIN_AUG] if not voc.mask_path(i).exists()]
        converted.mkdir(parents=True, exist_ok=True)
        for image_id in tqdm(to_convert, desc="SBD masks", mininterval=2):
            mask = read_sbd_mask(sbd_root / "cls" / f"{image_id}.mat", len(request.classes))
            write_mask(converted / f"{image_id}.png", mask)
        log.info(
            "converted %d SBD masks; VOC's own masks used for the other %d",
            len(to_convert),
            len(ids[TRAIN_AUG]) - len(to_convert),
        )
    for split in request.splits:
        if split not in ids:
            raise DataError(f"split {split!r} has no image list: neither {voc.split_path(split)} nor SBD's train_aug")
    index = VOCTree(voc_root, converted)
    splits = {}
    for split in request.splits:
        splits[split] = []
        for image_id in ids[split]:
            image, mask = index.image_path(image_id), index.mask_path(image_id)
            for path in (image, mask):
                if not path.is_file():
                    raise DataError(f"image {image_id!r} of split {split!r} has no file {path}")
            splits[split].append(IndexedImage(image_id, image, mask))
    return BuiltIndex(splits, FROM_MASKS)
