"""The tagged dataset kind: a folder of photos and a CSV of their image-level tags, with masks for any subset.

Weakly-supervised segmentation is for people who have tags and no masks: this kind reads exactly that. The
dataset keys: ``images`` (a folder of .jpg, .jpeg and .png photos, in any case), ``tags`` (the CSV below) and
``masks`` (optional: a folder of ``<image>.png`` masks, palette or grey class ids, 255 = ignore, for any subset
of the images; the stages are scored on those only).

The CSV has the header ``image,classes`` or ``image,classes,split``; ``image`` is the file name without its
extension, ``classes`` the config's class names separated by spaces (empty: a photo with no class), ``split``
one of the configured splits (without the column every image is in the training split)::

    image,classes,split
    beach_004,person boat,train
    empty_road,,val

Line numbers in the errors are an editor's (the header is line 1).
"""

from __future__ import annotations

import csv
import functools
import logging
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from wsss.data.datasets import FROM_TAGS, PHOTO_SUFFIXES, BuiltIndex, IndexedImage, IndexRequest, image_files
from wsss.data.labels import size_mismatch
from wsss.data.voc import DataError, read_mask

log = logging.getLogger(__name__)

HEADERS = (("image", "classes"), ("image", "classes", "split"))
MASK_SUFFIX = ".png"
NAMES_SHOWN = 5  # the names a warning shows of the files it counts


@dataclass(frozen=True)
class TagRow:
    """One row of the tags CSV: its line (1-based, the header is line 1), the image id, its foreground class
    ids (ascending; they index the config's classes, so background 0 is never among them) and its split."""

    line: int
    image_id: str
    class_ids: tuple[int, ...]
    split: str


def tagged_inputs(settings: dict) -> dict:
    """The files the dataset_index rule declares: a change to the CSV, the photos or the masks rebuilds the index."""
    return {
        "images": settings["images"],
        "tags": settings["tags"],
        **({"masks": settings["masks"]} if settings.get("masks") else {}),
    }


def csv_records(path: Path) -> list[tuple[int, list[str]]]:
    """The CSV's rows with their line numbers, fields stripped; blank rows (and rows of empty fields, as
    spreadsheets export) are skipped, a BOM at the start is dropped."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            try:
                records = [(reader.line_num, [field.strip() for field in row]) for row in reader]
            except csv.Error as error:
                raise DataError(f"tags CSV {path}, line {reader.line_num}: {error}") from error
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read tags CSV {path}: {error}") from error
    return [(line, fields) for line, fields in records if any(fields)]


def check_header(path: Path, records: list[tuple[int, list[str]]]) -> tuple[str, ...]:
    expected = " or ".join(repr(",".join(header)) for header in HEADERS)
    if not records:
        raise DataError(f"tags CSV {path} is empty; expected the header {expected}")
    line, header = records[0]
    if tuple(header) not in HEADERS:
        raise DataError(f"tags CSV {path}, line {line}: the header is {','.join(header)!r}; expected {expected}")
    return tuple(header)


def tag_ids(names: str, classes: list[str], where: str) -> tuple[int, ...]:
    """The class ids of a row's space-separated class names, ascending."""
    ids = set()
    for name in names.split():
        if name == classes[0]:
            raise DataError(
                f"{where}: {name!r} is not a tag: the classes of a row are the photo's foreground classes "
                "(leave them empty for a photo with none)"
            )
        if name not in classes:
            raise DataError(f"{where}: unknown class {name!r}; the classes are {', '.join(classes[1:])}")
        ids.add(classes.index(name))
    return tuple(sorted(ids))


def read_tags(path, classes: list[str], splits: list[str], train_split: str) -> list[TagRow]:
    """The rows of a tags CSV (see the module's docstring), checked: an error names the file and the line."""
    path = Path(path)
    records = csv_records(path)
    header = check_header(path, records)
    rows, line_of = [], {}
    for line, fields in records[1:]:
        where = f"tags CSV {path}, line {line}"
        if len(fields) != len(header):
            raise DataError(f"{where}: {len(fields)} fields, but the header {','.join(header)} has {len(header)}")
        image_id = fields[0]
        if not image_id:
            raise DataError(f"{where}: the image field is empty")
        if image_id in line_of:
            raise DataError(f"tags CSV {path}: image {image_id!r} is on two rows, lines {line_of[image_id]} and {line}")
        line_of[image_id] = line
        split = fields[2] if len(header) == 3 else train_split
        if split not in splits:
            raise DataError(f"{where}: split {split!r} is not a configured split ({', '.join(splits)})")
        rows.append(TagRow(line, image_id, tag_ids(fields[1], classes, where), split))
    return rows


def mask_files(folder) -> dict[str, Path]:
    """image id -> mask PNG of the masks folder, from the names alone (nothing is opened). A JPEG there is an
    error: its compression would change the class ids."""
    if not Path(folder).is_dir():
        raise DataError(f"the masks folder {folder} (dataset key masks) is not a folder")
    files = image_files(folder)
    not_png = sorted(path.name for path in files.values() if path.suffix.lower() != MASK_SUFFIX)
    if not_png:
        raise DataError(
            f"masks {', '.join(not_png)} in {folder} are not PNGs: a mask holds class ids, which JPEG changes"
        )
    return files


@functools.lru_cache(maxsize=64)
def cached_masked_splits(
    tags: str, masks: str, splits: tuple[str, ...], classes: tuple[str, ...], train_split: str
) -> frozenset:
    masked = mask_files(masks)
    rows = read_tags(tags, list(classes), list(splits), train_split)
    return frozenset(row.split for row in rows if row.image_id in masked)


def masked_splits(settings: dict, splits: list[str], classes: list[str], train_split: str) -> frozenset:
    """The configured splits with at least one image that has a mask. The workflow asks when it plans, many
    times: so the CSV is read and the masks folder listed (no image or mask is opened), once per process."""
    if not settings.get("masks"):
        return frozenset()
    return cached_masked_splits(
        str(settings["tags"]), str(settings["masks"]), tuple(splits), tuple(classes), train_split
    )


def image_size(path: Path, where: str) -> tuple[int, int]:
    """An image's (height, width), decoded once so a truncated file is found now rather than in a training
    epoch; a JPEG at an eighth of its size (draft mode), which reads all of it at a fraction of the cost."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            image.draft(None, (1, 1))
            image.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise DataError(f"{where}: cannot read image {path}: {error}") from error
    return height, width


def indexed_image(row: TagRow, image: Path, mask: Path | None, where: str, num_classes: int) -> IndexedImage:
    """A row as the index holds it, its image readable and its mask (if any) of class ids and the image's size."""
    size = image_size(image, where)
    if mask is not None:
        mask_shape = read_mask(mask, num_classes).shape
        if mask_shape != size:
            raise size_mismatch(image, size, mask, mask_shape)
    return IndexedImage(row.image_id, image, mask, row.class_ids)


def leave_out(files: dict[str, Path], kept: set[str], what: str) -> dict[str, int]:
    """Count the files no row names and say so once (a folder of many photos may hold some with no tags)."""
    names = sorted(files[image_id].name for image_id in set(files) - kept)
    if not names:
        return {}
    more = ", ..." if len(names) > NAMES_SHOWN else ""
    log.warning("left out %d files %s: %s%s", len(names), what, ", ".join(names[:NAMES_SHOWN]), more)
    return {what: len(names)}


def build_tagged(request: IndexRequest) -> BuiltIndex:
    """The tagged kind: every row of the CSV (inputs "tags") with its photo (inputs "images") and, where one
    exists, its mask (inputs "masks"); each configured split's images sorted by id. Photos and masks with no
    row are left out, counted."""
    tags_csv, images_dir = Path(request.inputs["tags"]), Path(request.inputs["images"])
    masks_dir = request.inputs.get("masks") or None
    rows = read_tags(tags_csv, request.classes, request.splits, request.train_split)
    images = image_files(images_dir)
    masks = mask_files(masks_dir) if masks_dir else {}
    tagged_ids = {row.image_id for row in rows}
    left_out = {
        **leave_out(images, tagged_ids, f"in the images folder with no row in {tags_csv.name}"),
        **leave_out(masks, tagged_ids, f"in the masks folder with no row in {tags_csv.name}"),
    }
    splits = {split: [] for split in request.splits}
    for row in sorted(rows, key=lambda row: row.image_id):
        where = f"tags CSV {tags_csv}, line {row.line}"
        if row.image_id not in images:
            raise DataError(
                f"{where}: image {row.image_id!r} has no file in {images_dir} (looked for "
                f"{', '.join(PHOTO_SUFFIXES)}, in any case)"
            )
        image = indexed_image(row, images[row.image_id], masks.get(row.image_id), where, len(request.classes))
        splits[row.split].append(image)
    return BuiltIndex(splits, FROM_TAGS, left_out)
