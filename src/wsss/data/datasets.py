"""The dataset index: one form for every kind of data, which every step after it reads.

A dataset kind (wsss.data.kinds: voc, coco, tagged) says which images each configured split has, where each
image is, its image-level labels (read from its mask, as IRN's cls_labels, or given as tags) and its mask
where one exists. The dataset_index step asks the kind once and writes its answer to results/data/:

    dataset.json   the kind, where its labels come from, images and masked images per split, what was left out
    images.tsv     one row per image: id, image file, mask file (empty: none), class ids (tags kinds)
    lists/<split>.txt   the image ids of each split, in the kind's order
    masks/<id>.png      the masks the kind made (SBD's .mat files, COCO's polygons), as palette PNGs

Paths inside the project are stored relative to the index directory (the project can move, DVC can share
it); others as absolute paths. Dataset.open reads it back.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from wsss.data.voc import DataError, shard_ids
from wsss.files import atomic_write

log = logging.getLogger(__name__)

INDEX_FILE, TABLE_FILE, LISTS_DIR, MASKS_DIR = "dataset.json", "images.tsv", "lists", "masks"
TABLE_COLUMNS = ("image_id", "image", "mask", "class_ids")
# Where a kind's image-level labels come from: the classes in each image's mask (VOC, as IRN's cls_labels),
# or tags it gives for every image (COCO's annotations, a tags CSV)
FROM_MASKS, FROM_TAGS = "masks", "tags"


@dataclass(frozen=True)
class IndexedImage:
    """One image as a kind gives it: its file, its mask file (None: no mask) and, for a tags kind, its
    foreground class ids (ascending, 1-based: 0 is background)."""

    image_id: str
    image: Path
    mask: Path | None = None
    class_ids: tuple[int, ...] | None = None


@dataclass(frozen=True)
class IndexRequest:
    """What a kind's builder gets from the dataset_index rule.

    settings: the config's dataset section; inputs: the files and folders the rule declared (by name);
    splits: the configured split names (the values of config splits), train_split: the one the networks
    train on (it must have images); classes: the class names, background first; out_dir: the index
    directory (a kind writes the masks it makes to out_dir/masks); config: the whole config, for the keys a
    kind reads outside the dataset section (voc: expected_train_aug).
    """

    settings: dict
    inputs: dict
    splits: list[str]
    train_split: str
    classes: list[str]
    out_dir: Path
    config: dict = field(default_factory=dict)

    @property
    def masks_dir(self) -> Path:
        return Path(self.out_dir) / MASKS_DIR


@dataclass(frozen=True)
class BuiltIndex:
    """A kind's answer: the images of each configured split (and of any other list it keeps, e.g. VOC's
    trainval), where the labels come from, and how many images it left out and why (said in the log and
    dataset.json)."""

    splits: dict[str, list[IndexedImage]]
    labels_from: str
    left_out: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetKind:
    """A registered dataset kind (wsss.data.kinds.KINDS).

    build: IndexRequest -> BuiltIndex (the dataset_index job);
    keys: the dataset section's keys it reads (a key of another kind set in the config is an error, said in
    words: wsss.pipeline.config_checks), required: those of them it cannot do without;
    inputs: dataset section -> {name: file or folder} the dataset_index rule declares as inputs (None: the
    workflow decides, as for voc's downloads and demo);
    masked_splits: (dataset section, split names, classes, train split) -> the splits with at least one mask,
    known when the workflow is planned: stages are scored on those only, and the fully-supervised bound needs
    the train split among them (the tagged kind puts a CSV's rows in the train split when it has no split
    column, so it needs that split's name).
    """

    name: str
    build: Callable[[IndexRequest], BuiltIndex]
    labels_from: str
    keys: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    inputs: Callable[[dict], dict] | None = None
    masked_splits: Callable[[dict, list[str], list[str], str], frozenset] = (
        lambda settings, splits, classes, train_split: frozenset(splits)
    )
    description: str = ""


def stored_path(path, index_dir: Path) -> str:
    """How the table stores a path: relative to the index directory when inside the working directory (the
    project), absolute otherwise."""
    absolute = os.path.abspath(path)
    if absolute == os.getcwd() or absolute.startswith(os.getcwd() + os.sep):
        return os.path.relpath(absolute, os.path.abspath(index_dir))
    return absolute


def write_index(built: BuiltIndex, request: IndexRequest, kind: str) -> dict[str, int]:
    """Write the index directory (see the module's docstring) for a kind's answer; the image count per list.

    Every configured split must be listed, the train split must have images, and every listed image file
    must exist (a missing one is named with its split)."""
    out_dir = Path(request.out_dir)
    missing_splits = [split for split in request.splits if split not in built.splits]
    if missing_splits:
        raise DataError(f"the {kind} data has no split {', '.join(map(repr, missing_splits))}")
    if not built.splits[request.train_split]:
        raise DataError(f"the training split {request.train_split!r} has no images")
    rows: dict[str, IndexedImage] = {}
    for split, images in built.splits.items():
        for image in images:
            if not Path(image.image).is_file():
                raise DataError(f"image {image.image_id!r} of split {split!r} has no file {image.image}")
            if image.mask is not None and not Path(image.mask).is_file():
                raise DataError(f"image {image.image_id!r} of split {split!r} has no mask file {image.mask}")
            if any(character in str(path) for path in (image.image, image.mask or "") for character in "\t\n"):
                raise DataError(f"image {image.image_id!r}: a tab or line break in its file name")
            rows.setdefault(image.image_id, image)
    lists = out_dir / LISTS_DIR
    lists.mkdir(parents=True, exist_ok=True)
    for split, images in built.splits.items():
        (lists / f"{split}.txt").write_text("".join(f"{image.image_id}\n" for image in images))
    with atomic_write(out_dir / TABLE_FILE) as tmp:
        with open(tmp, "w") as table:
            table.write("\t".join(TABLE_COLUMNS) + "\n")
            for image in rows.values():
                classes = "" if image.class_ids is None else " ".join(str(c) for c in image.class_ids)
                mask = "" if image.mask is None else stored_path(image.mask, out_dir)
                table.write(f"{image.image_id}\t{stored_path(image.image, out_dir)}\t{mask}\t{classes}\n")
    counts = {split: len(images) for split, images in built.splits.items()}
    masked = {split: sum(image.mask is not None for image in images) for split, images in built.splits.items()}
    manifest = {
        "kind": kind,
        "labels_from": built.labels_from,
        "images": counts,
        "masked_images": masked,
        "left_out": built.left_out,
    }
    with atomic_write(out_dir / INDEX_FILE) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2))
    for reason, count in built.left_out.items():
        log.info("left out %d images: %s", count, reason)
    log.info("dataset index (%s): images %s, with masks %s", kind, counts, masked)
    return counts


class Dataset:
    """The dataset index as the steps read it (written by write_index): a split's image ids, each image's
    file, mask (or None) and tags."""

    def __init__(self, index_dir: Path, manifest: dict, rows: dict[str, tuple[str, str, str]]):
        self.index_dir, self.manifest, self._rows = Path(index_dir), manifest, rows

    @classmethod
    def open(cls, index_dir) -> Dataset:
        index_dir = Path(index_dir)
        try:
            manifest = json.loads((index_dir / INDEX_FILE).read_text())
            lines = (index_dir / TABLE_FILE).read_text().splitlines()
        except (OSError, ValueError) as error:
            raise DataError(f"cannot read dataset index {index_dir}: {error}") from error
        if not lines or tuple(lines[0].split("\t")) != TABLE_COLUMNS:
            raise DataError(f"dataset index {index_dir / TABLE_FILE} has no header {', '.join(TABLE_COLUMNS)}")
        rows = {}
        for line in lines[1:]:
            image_id, image, mask, classes = line.split("\t")
            rows[image_id] = (image, mask, classes)
        return cls(index_dir, manifest, rows)

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    @property
    def labels_from(self) -> str:
        return self.manifest["labels_from"]

    def _row(self, image_id: str) -> tuple[str, str, str]:
        if image_id not in self._rows:
            raise DataError(f"image {image_id!r} is not in the dataset index {self.index_dir}")
        return self._rows[image_id]

    def _path(self, stored: str) -> Path:
        return Path(stored) if os.path.isabs(stored) else Path(os.path.normpath(self.index_dir / stored))

    def image_path(self, image_id: str) -> Path:
        return self._path(self._row(image_id)[0])

    def mask_path(self, image_id: str) -> Path | None:
        mask = self._row(image_id)[1]
        return self._path(mask) if mask else None

    def has_mask(self, image_id: str) -> bool:
        return bool(self._row(image_id)[1])

    def tags(self, image_id: str) -> list[int] | None:
        """The image's foreground class ids as the kind gave them (None where labels come from masks)."""
        if self.labels_from != FROM_TAGS:
            return None
        return [int(c) for c in self._row(image_id)[2].split()]

    def split_ids(self, split: str) -> list[str]:
        """The image ids of a split, in the kind's order (empty for a split the data has no images of)."""
        path = self.index_dir / LISTS_DIR / f"{split}.txt"
        if not path.is_file():
            raise DataError(f"the dataset index {self.index_dir} has no split {split!r}")
        return path.read_text().split()

    def shard_ids(self, split: str, shard, num_shards: int) -> list[str]:
        """The ids of one shard of a split (every num_shards-th id of the sorted list)."""
        return shard_ids(self.split_ids(split), int(shard), num_shards)

    def masked_ids(self, split: str) -> list[str]:
        """The images of a split that have a mask: the ones a stage on that split is scored on."""
        return [image_id for image_id in self.split_ids(split) if self.has_mask(image_id)]


PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")


def image_files(folder) -> dict[str, Path]:
    """image id (the file name without its extension) -> file, for the photos of a folder: .jpg, .jpeg and .png
    in any case (the tagged kind's images, the photos a trained network segments). Two files of one id are an
    error naming both."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder of images")
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in PHOTO_SUFFIXES and path.is_file():
            if path.stem in files:
                raise DataError(f"two images of id {path.stem!r} in {folder}: {files[path.stem].name} and {path.name}")
            files[path.stem] = path
    return files
