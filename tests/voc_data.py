"""Small VOC 2012 and SBD trees in their published layouts, and their archives, built by the tests."""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image, ImageDraw, ImageFilter

from wsss.data.datasets import Dataset, IndexRequest
from wsss.data.demo import make_demo_dataset
from wsss.data.kinds import DATASET_KEYS, index_dataset
from wsss.data.voc import VOC_CLASSES, read_mask, write_mask

CLASSES = ["aeroplane", "bird", "car", "cat", "person"]


def voc_request(
    voc_root, out_dir, splits=("train", "val"), sbd_root=None, expected_train_aug=None, classes=VOC_CLASSES
):
    """The dataset_index step's request for a VOC tree (the voc kind), as the workflow makes it."""
    return IndexRequest(
        settings={"kind": "voc", **DATASET_KEYS},
        inputs={"voc": str(voc_root), "sbd": str(sbd_root) if sbd_root else []},
        splits=list(splits),
        train_split=splits[0],
        classes=list(classes),
        out_dir=Path(out_dir),
        config={"expected_train_aug": expected_train_aug},
    )


def index_voc(voc_root, out_dir, splits=("train", "val"), **options) -> Dataset:
    """A VOC tree's dataset index (the voc kind), opened as the steps read it."""
    index_dataset(voc_request(voc_root, out_dir, splits, **options))
    return Dataset.open(out_dir)


def make_voc_and_sbd(
    root: Path, voc_train: int = 8, sbd_only: int = 8, val: int = 6, seed: int = 5, stored_as: tuple[str, ...] = ()
):
    """VOCdevkit/VOC2012 and benchmark_RELEASE/dataset under root, with VOC's and SBD's list overlaps.

    JPEG images of varied sizes and palette masks with a 255 band (the demo generator's). VOC annotates
    its train and val images; SBD holds ``sbd_only`` further images (masks as .mat, no 255), plus two VOC
    train and one VOC val image, as the real SBD overlaps both. stored_as: the JPEGs' kinds in turn (see
    PHOTO_KINDS: grayscale, CMYK, EXIF-rotated; default: as the demo writes them). Returns (voc_dir, sbd_dir,
    expected train_aug ids).
    """
    staging = root / "staging"
    make_demo_dataset(
        staging,
        class_names=CLASSES,
        num_train=voc_train + sbd_only,
        num_val=val,
        size_range=(40, 64),
        max_objects=2,
        background_only_fraction=0.1,
        body_colour_prob=0.85,
        seed=seed,
    )
    train = (staging / "ImageSets/Segmentation/train.txt").read_text().split()
    val_ids = (staging / "ImageSets/Segmentation/val.txt").read_text().split()
    voc_ids, sbd_ids = train[:voc_train], train[voc_train:]
    voc = root / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation", "Annotations"):
        (voc / sub).mkdir(parents=True)
    for i, image_id in enumerate(train + val_ids):
        source = staging / "JPEGImages" / f"{image_id}.jpg"
        if stored_as:
            save_jpeg(Image.open(source), voc / "JPEGImages" / source.name, stored_as[i % len(stored_as)])
        else:
            shutil.copy(source, voc / "JPEGImages")
    for image_id in voc_ids + val_ids:
        shutil.copy(staging / "SegmentationClass" / f"{image_id}.png", voc / "SegmentationClass")
        (voc / "Annotations" / f"{image_id}.xml").write_text("<annotation/>")
    (voc / "ImageSets/Segmentation/train.txt").write_text("".join(f"{i}\n" for i in voc_ids))
    (voc / "ImageSets/Segmentation/val.txt").write_text("".join(f"{i}\n" for i in val_ids))
    sbd = root / "benchmark_RELEASE" / "dataset"
    (sbd / "cls").mkdir(parents=True)
    sbd_train, sbd_val = sbd_ids[: len(sbd_ids) // 2] + voc_ids[:2], sbd_ids[len(sbd_ids) // 2 :] + val_ids[:1]
    for image_id in sbd_train + sbd_val:
        mask = read_mask(staging / "SegmentationClass" / f"{image_id}.png", 21)
        mask = np.where(mask == 255, 0, mask).astype(np.uint8)  # SBD's class masks have no ignore band
        scipy.io.savemat(
            sbd / "cls" / f"{image_id}.mat",
            {"GTcls": {"Segmentation": mask, "Boundaries": np.zeros(1), "CategoriesPresent": np.unique(mask)}},
        )
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


# Class id -> (colour, shape) of the photo tree's objects: each class has its own look, so a classifier can learn it.
PHOTO_OBJECTS = {
    1: ((200, 40, 40), "ellipse"),
    3: ((40, 170, 60), "triangle"),
    7: ((40, 70, 200), "rectangle"),
    15: ((220, 200, 40), "diamond"),
}
# How the i-th image of a split is stored: plain RGB, grayscale, CMYK, or RGB with an EXIF orientation tag
# (6: viewers rotate it 90° clockwise, 8: counter-clockwise); pixels and masks are as stored.
PHOTO_KINDS = ("RGB", "L", "CMYK", "exif6", "RGB", "L", "CMYK", "exif8")


def save_jpeg(image: Image.Image, path: Path, kind: str) -> None:
    """An RGB image as a JPEG of the given PHOTO_KINDS kind: its pixels converted (L, CMYK) or kept with an EXIF
    orientation tag (exif6, exif8)."""
    if kind.startswith("exif"):
        exif = Image.Exif()
        exif[0x0112] = int(kind[4:])  # Orientation
        image.save(path, quality=90, exif=exif)
    else:
        image.convert(kind).save(path, quality=90)


def _draw_shape(draw, shape: str, box: tuple[int, int, int, int], fill) -> None:
    left, top, right, bottom = box
    if shape == "ellipse":
        draw.ellipse(box, fill=fill)
    elif shape == "rectangle":
        draw.rectangle(box, fill=fill)
    elif shape == "triangle":
        draw.polygon([((left + right) // 2, top), (right, bottom), (left, bottom)], fill=fill)
    else:  # diamond
        cx, cy = (left + right) // 2, (top + bottom) // 2
        draw.polygon([(cx, top), (right, cy), (cx, bottom), (left, cy)], fill=fill)


def make_photo_tree(root: Path, num_train: int = 12, num_val: int = 4, long_range=(300, 640), seed: int = 0) -> dict:
    """A VOC-layout tree of photo-like JPEGs (root/JPEGImages, SegmentationClass, ImageSets/Segmentation).

    Each image has a random size with its long side in long_range (landscape or portrait), a noisy colour
    gradient and 1-2 objects of PHOTO_OBJECTS' classes; its mask is a VOC-palette PNG of the stored pixels
    with a 255 band along object outlines. Images are stored as PHOTO_KINDS says, in turn per split, so
    every split has grayscale, CMYK and EXIF-rotated JPEGs. Returns {image id: kind}.
    """
    rng = np.random.default_rng(seed)
    root = Path(root)
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    kinds = {}
    for split, count in (("train", num_train), ("val", num_val)):
        ids = [f"{split}_{i:03d}" for i in range(count)]
        for i, image_id in enumerate(ids):
            long_side = int(rng.integers(long_range[0], long_range[1] + 1))
            short_side = int(round(long_side * rng.uniform(0.6, 1.0)))
            height, width = (short_side, long_side) if rng.random() < 0.6 else (long_side, short_side)
            ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
            corners = rng.uniform(40, 220, size=(2, 3))
            ramp = (xs / width + ys / height)[..., None] / 2
            pixels = corners[0] * (1 - ramp) + corners[1] * ramp
            image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
            labels = Image.new("L", (width, height), 0)
            draw, label_draw = ImageDraw.Draw(image), ImageDraw.Draw(labels)
            classes = rng.choice(sorted(PHOTO_OBJECTS), size=int(rng.integers(1, 3)), replace=False)
            for class_id in classes:
                colour, shape = PHOTO_OBJECTS[int(class_id)]
                size = rng.uniform(0.25, 0.5) * min(height, width)
                left, top = rng.uniform(0, width - size), rng.uniform(0, height - size)
                box = (int(left), int(top), int(left + size), int(top + size))
                _draw_shape(draw, shape, box, colour)
                _draw_shape(label_draw, shape, box, int(class_id))
            noisy = np.asarray(image, np.float32) + rng.normal(0, 10, size=(height, width, 3))
            image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
            band = np.asarray(labels.filter(ImageFilter.MaxFilter(5))) != np.asarray(
                labels.filter(ImageFilter.MinFilter(5))
            )
            mask = np.where(band, 255, np.asarray(labels)).astype(np.uint8)
            write_mask(root / "SegmentationClass" / f"{image_id}.png", mask)
            kind = PHOTO_KINDS[i % len(PHOTO_KINDS)]
            save_jpeg(image, root / "JPEGImages" / f"{image_id}.jpg", kind)
            kinds[image_id] = kind
        (root / "ImageSets/Segmentation" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return kinds
