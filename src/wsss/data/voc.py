"""PASCAL VOC conventions: class names, the colour palette, the directory layout and checked readers."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from wsss.files import atomic_write

VOC_CLASSES = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)
IGNORE = 255

log = logging.getLogger(__name__)


class DataError(ValueError):
    """A data file (image, mask, list) that cannot be used; the message names the file."""


def voc_palette() -> list[int]:
    """The 256-entry VOC colour map (bit-interleaved class id), flat [r, g, b, r, g, b, ...]."""
    palette = []
    for index in range(256):
        r = g = b = 0
        c = index
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        palette += [r, g, b]
    return palette


@dataclass(frozen=True)
class VOCTree:
    """A directory in VOC 2012 layout (JPEGImages/, SegmentationClass/, ImageSets/Segmentation/), as the voc
    dataset kind reads it (wsss.data.voc_sbd); the steps read every kind through wsss.data.datasets.Dataset.

    ``extra_masks`` holds masks of images that VOC itself does not annotate (SBD's, for train_aug).
    """

    root: Path
    extra_masks: Path | None = None

    def __post_init__(self):
        for name in ("root", "extra_masks"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)))

    def image_path(self, image_id: str) -> Path:
        return self.root / "JPEGImages" / f"{image_id}.jpg"

    def mask_path(self, image_id: str) -> Path:
        path = self.root / "SegmentationClass" / f"{image_id}.png"
        if self.extra_masks is not None and not path.exists():
            return self.extra_masks / f"{image_id}.png"
        return path

    def split_path(self, split: str) -> Path:
        return self.root / "ImageSets" / "Segmentation" / f"{split}.txt"

    def split_ids(self, split: str) -> list[str]:
        path = self.split_path(split)
        if not path.is_file():
            raise DataError(f"image list for split {split!r} not found: {path}")
        ids = read_list(path)
        if not ids:
            raise DataError(f"image list {path} is empty")
        return ids

    def shard_ids(self, split: str, shard: int, num_shards: int) -> list[str]:
        """The ids of one shard of a split (see shard_ids below)."""
        return shard_ids(self.split_ids(split), int(shard), num_shards)


def read_list(path: Path) -> list[str]:
    """The image ids of a list file (first word of each non-empty line), as VOC and SBD write them."""
    if not Path(path).is_file():
        raise DataError(f"image list not found: {path}")
    return [line.split()[0] for line in Path(path).read_text().splitlines() if line.strip()]


def read_image(path: Path) -> np.ndarray:
    """An RGB image as a uint8 (H, W, 3) array; a clear error names an unreadable file.

    Any mode becomes RGB (grayscale, CMYK, palette, with or without alpha, which is dropped). Pixels are
    read as stored: an EXIF orientation tag is not applied (nor is it by PIL's Image.open or torchvision's
    VOC loader), since a mask is annotated on the stored pixels and must have the stored size; VOC's own
    JPEGs carry no such tag. labels.size_mismatch explains a rotated mask.
    """
    try:
        with Image.open(path) as image:
            return np.array(image.convert("RGB"))  # writable: pydensecrf and in-place erasing need it
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise DataError(f"cannot read image {path}: {error}") from error


# EXIF orientations that swap width and height when applied (transpose, 90° clockwise, transverse,
# 90° counter-clockwise)
ROTATING_ORIENTATIONS = (5, 6, 7, 8)
EXIF_ORIENTATION = 0x0112


def exif_orientation(path: Path) -> int | None:
    """The EXIF orientation tag of an image file (1-8), or None when it has none or cannot be read."""
    try:
        with Image.open(path) as image:
            return image.getexif().get(EXIF_ORIENTATION)
    except (OSError, UnidentifiedImageError, ValueError):
        return None


def read_mask(path: Path, num_classes: int) -> np.ndarray:
    """A label mask as uint8 (H, W): class ids < num_classes, or 255 = ignore.

    Raises DataError naming the file for unreadable files, colour (RGB) masks and out-of-range values.
    """
    try:
        with Image.open(path) as image:
            if image.mode not in ("P", "L"):
                raise DataError(f"mask {path} has mode {image.mode}; expected a palette or grey PNG of class ids")
            mask = np.asarray(image)
    except (OSError, UnidentifiedImageError) as error:
        raise DataError(f"cannot read mask {path}: {error}") from error
    bad = (mask >= num_classes) & (mask != IGNORE)
    if bad.any():
        value = int(mask[bad][0])
        raise DataError(
            f"mask {path} has class id {value}, but the class list has {num_classes} classes "
            f"(ids 0-{num_classes - 1}, 255 = ignore)"
        )
    return mask


def write_mask(path: Path, mask: np.ndarray) -> None:
    """Write a uint8 label map as a VOC-palette PNG, atomically (temporary name, then rename)."""
    image = Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8))
    image.putpalette(voc_palette())
    with atomic_write(path) as tmp:
        image.save(tmp, format="PNG")


def read_saliency(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """An image's saliency map as uint8 (H, W), 0-255, as the WSSS repositories publish PoolNet's or DSS's maps:
    one grayscale PNG per image (an RGB copy is read as its luma, which for grey pixels is the grey value).
    A DataError names a missing or unreadable file, or one whose size is not its image's (shape)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"saliency map {path} not found")
    try:
        with Image.open(path) as image:
            saliency = np.array(image.convert("L"))
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise DataError(f"cannot read saliency map {path}: {error}") from error
    if saliency.shape != tuple(shape):
        raise DataError(
            f"saliency map {path} is {saliency.shape[1]}x{saliency.shape[0]} px, its image {shape[1]}x{shape[0]} px"
        )
    return saliency


def write_saliency(path: Path, saliency: np.ndarray) -> None:
    """Write a uint8 saliency map as a grayscale PNG (the form read_saliency reads), atomically."""
    with atomic_write(path) as tmp:
        Image.fromarray(np.ascontiguousarray(saliency, dtype=np.uint8)).save(tmp, format="PNG")


# Inside each CAM shard directory: the stride-4 grid CAMs (IRN's strided "cam" of make_cam.py), one .npy per
# image under the same name as its image-resolution CAMs beside the folder; the random walk spreads these.
GRID_DIR = "stride4"


def save_npy(path: Path, array: np.ndarray) -> None:
    """np.save, atomically: a killed job never leaves a half-written array under the final name."""
    with atomic_write(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array, allow_pickle=False)


def load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read array {path}: {error}") from error


def shard_ids(ids: list[str], shard: int, num_shards: int) -> list[str]:
    """The ids of one shard: every num_shards-th id of the sorted list, so shards stay balanced."""
    if not 0 <= shard < num_shards:
        raise ValueError(f"shard {shard} outside 0..{num_shards - 1}")
    return sorted(ids)[shard::num_shards]


def index_files(directories: list[Path], suffix: str) -> dict[str, Path]:
    """Map image id -> file over several shard directories (e.g. every CAM .npy of one round)."""
    index: dict[str, Path] = {}
    for directory in directories:
        for path in Path(directory).glob(f"*{suffix}"):
            index[path.name[: -len(suffix)]] = path
    return index


def indexed_file(index: dict[str, Path], image_id: str, what: str) -> Path:
    """An image's file from an index_files index; a DataError names the image and what is missing."""
    if image_id not in index:
        raise DataError(f"no {what} for image {image_id}")
    return index[image_id]


def pending_ids(image_ids, out_dir: Path, suffix: str) -> list[str]:
    """The ids whose <out_dir>/<id><suffix> is not written yet. Per-image files are written atomically
    (temporary name, then rename), so a file under its final name is complete: a rerun after a kill
    skips those images and redoes only the rest."""
    out_dir = Path(out_dir)
    todo = [i for i in image_ids if not (out_dir / f"{i}{suffix}").is_file()]
    if len(todo) < len(image_ids):
        log.info("%s: %d of %d images already written, skipped", out_dir, len(image_ids) - len(todo), len(image_ids))
    return todo
