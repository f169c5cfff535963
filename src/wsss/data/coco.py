"""The coco dataset kind: COCO instances JSONs (one per split), image-level tags and masks made from them.

Each configured split has its own instances JSON (dataset.annotations.<split>) and image folder
(dataset.images). dataset.categories says which COCO categories are classes: "all" (COCO's categories in id
order are classes 1..N, the WSSS COCO-2014 setting) or a map {COCO category name: class name}, e.g. COCO to
VOC's 20 classes; other categories are background.

An image's tags are the classes of its non-crowd annotations. An image without one is left out, as the WSSS
COCO lists do (82,081 of train2014's 82,783 images): it has nothing to learn a class from.

Its mask is rasterised once with pycocotools, at the image record's size, and written as a palette PNG:

* background 0, and every category that is not a class stays background (it never erases a class);
* crowd regions (iscrowd=1) of the classes are 255, the ignore label, drawn first: a crowd region marks
  where a class is without saying which pixels, as in COCO-Stuff's and the COCO semantic-segmentation
  conventions; the coco340 development set (../shared/data/coco340-voc) does the same;
* the non-crowd instances, largest area first, so a smaller instance ends up on top of a larger one it
  overlaps (a person on a sofa, a cup on a table).

ReCAM's mscoco/annToMask.py instead draws the non-crowd instances in annotation-id order (where two
instances overlap, the later annotation's label wins, whichever is on top in the photo) and leaves crowd
regions as background. With annotation-id order, coco340's masks agree with its PNGs on as little as 85 %
of an image's pixels; with largest area first, on at least 99 % (its README).

At COCO 2014's scale (instances_train2014.json: ~450 MB, 82,783 images, ~605k annotations) json's lists of
floats would hold the polygons in about four times their size: each annotation is made compact while the
file is read (json's object_hook: polygons as float64 arrays, RLE counts as uint32 arrays), and only the
annotations of the classes are kept, grouped by image.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections import defaultdict
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path
from typing import NamedTuple

import numpy as np
from tqdm import tqdm

from wsss.data.datasets import FROM_TAGS, BuiltIndex, IndexedImage, IndexRequest
from wsss.data.voc import IGNORE, DataError, pending_ids, write_mask

log = logging.getLogger(__name__)

NO_CLASS = "no non-crowd annotation of a class (coco)"
TOP_LEVEL_KEYS = ("images", "annotations", "categories")
ANNOTATION_KEYS = ("id", "image_id", "category_id", "area")
IMAGE_KEYS = ("id", "file_name", "height", "width")
# pycocotools reads a list of 4 numbers as a box, not a polygon: a polygon needs 3 points (6 numbers)
MIN_POLYGON_NUMBERS = 6


class Annotation(NamedTuple):
    """What the tags and the mask need of one COCO annotation. segmentation: a list of polygons (float64
    arrays of x, y pairs), or an RLE dict whose counts are a uint32 array (uncompressed) or a string."""

    annotation_id: int
    image_id: int
    category_id: int
    crowd: bool
    area: float
    segmentation: list | dict


class ImageRecord(NamedTuple):
    file_name: str
    height: int
    width: int


@dataclass(frozen=True)
class CocoSplit:
    """One instances JSON as the index needs it: its images by COCO id, the class id of each category that
    is a class, and the annotations of those categories grouped by image (in the file's order)."""

    path: Path
    images: dict[int, ImageRecord]
    class_of_category: dict[int, int]
    annotations_of: dict[int, list[Annotation]]


def coco_inputs(settings: dict) -> dict:
    """The files the dataset_index rule declares: every split's JSON, and the image folder (or folders)."""
    images = settings["images"]
    folders = [images] if isinstance(images, str) else list(dict.fromkeys(images.values()))
    return {"annotations": list(dict.fromkeys(settings["annotations"].values())), "images": folders}


def split_setting(settings: dict, key: str, split: str, splits: list[str]) -> str:
    """settings[key][split]: a split the mapping does not give is an error naming the key and the splits."""
    mapping = settings.get(key)
    if not isinstance(mapping, dict) or split not in mapping:
        given = ", ".join(mapping) if isinstance(mapping, dict) and mapping else "none"
        raise DataError(
            f"dataset.{key}.{split} is not set: dataset.{key} needs an entry for each configured split "
            f"({', '.join(splits)}); it has {given}"
        )
    return mapping[split]


def images_folder(settings: dict, split: str, splits: list[str]) -> Path:
    """A split's image folder: dataset.images, one folder for every split or one per split."""
    if isinstance(settings.get("images"), str):
        return Path(settings["images"])
    return Path(split_setting(settings, "images", split, splits))


def compact_segmentation(segmentation, annotation_id, path: Path) -> list | dict:
    """Polygons as float64 arrays (a quarter of json's lists of floats; those under 3 points dropped: they
    have no area), uncompressed RLE counts as a uint32 array, compressed RLE as it is."""
    try:
        if isinstance(segmentation, list):
            return [np.asarray(p, dtype=np.float64) for p in segmentation if len(p) >= MIN_POLYGON_NUMBERS]
        if isinstance(segmentation, dict) and {"counts", "size"} <= segmentation.keys():
            counts = segmentation["counts"]
            if isinstance(counts, str):
                return segmentation
            return {"size": list(segmentation["size"]), "counts": np.asarray(counts, dtype=np.uint32)}
    except (TypeError, ValueError, OverflowError) as error:
        raise DataError(f"{path}: annotation {annotation_id} has a malformed segmentation: {error}") from error
    raise DataError(f"{path}: annotation {annotation_id} has a segmentation that is neither polygons nor RLE")


def compact_annotation(record: dict, path: Path) -> Annotation:
    missing = [key for key in ANNOTATION_KEYS if key not in record]
    if missing:
        raise DataError(f"{path}: annotation {record.get('id', '?')} has no {', '.join(missing)}")
    annotation_id = record["id"]
    return Annotation(
        annotation_id,
        record["image_id"],
        record["category_id"],
        bool(record.get("iscrowd", 0)),
        float(record["area"]),
        compact_segmentation(record["segmentation"], annotation_id, path),
    )


def load_instances(path: Path) -> dict:
    """The JSON, each annotation (a record with a segmentation) made an Annotation as soon as json has read
    it, so that json's lists of floats never all exist at once."""

    def compact(record: dict):
        return compact_annotation(record, path) if "segmentation" in record else record

    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle, object_hook=compact)
    except json.JSONDecodeError as error:
        raise DataError(f"cannot read COCO annotations {path}: not valid JSON ({error})") from error
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read COCO annotations {path}: {error}") from error
    missing = [key for key in TOP_LEVEL_KEYS if not isinstance(data, dict) or key not in data]
    if missing:
        raise DataError(
            f"{path} has no {', '.join(missing)}: a COCO instances file has images, annotations and categories"
        )
    return data


def image_records(path: Path, images: list) -> dict[int, ImageRecord]:
    """COCO image id -> file name and size, each record checked (its size is the mask's)."""
    records: dict[int, ImageRecord] = {}
    for image in images:
        if not isinstance(image, dict):
            raise DataError(f"{path}: an image record that is not an object: {image!r}")
        missing = [key for key in IMAGE_KEYS if key not in image]
        if missing:
            raise DataError(f"{path}: image {image.get('id', '?')} has no {', '.join(missing)}")
        if image["id"] in records:
            raise DataError(f"{path}: image id {image['id']} appears twice ({image['file_name']})")
        height, width = image["height"], image["width"]
        if not (isinstance(height, int) and isinstance(width, int) and height > 0 and width > 0):
            raise DataError(f"{path}: image {image['id']} has height {height!r} and width {width!r}")
        records[image["id"]] = ImageRecord(image["file_name"], height, width)
    return records


def category_names(path: Path, categories: list) -> dict[int, str]:
    """category id -> name, in id order."""
    names: dict[int, str] = {}
    for category in categories:
        if not isinstance(category, dict) or "id" not in category or "name" not in category:
            raise DataError(f"{path}: a category without id or name: {category!r}")
        if category["id"] in names:
            raise DataError(f"{path}: category id {category['id']} appears twice")
        names[category["id"]] = category["name"]
    return dict(sorted(names.items()))


def all_categories(path: Path, names: dict[int, str], classes: list[str]) -> dict[int, int]:
    """categories "all": COCO's categories in id order are classes 1..N, so classes must list them so."""
    for class_id, (category, class_name) in enumerate(zip_longest(names.items(), classes[1:]), start=1):
        name = category[1] if category else None
        if name != class_name:
            where = f"category {name!r} (id {category[0]})" if category else "no category"
            raise DataError(
                f"dataset.categories is 'all', but class {class_id} is {class_name!r} where {path} has {where} "
                f"({len(names)} categories for {len(classes) - 1} classes): classes must list COCO's categories "
                f"in id order after background: {', '.join(names.values())}"
            )
    return {category_id: class_id for class_id, category_id in enumerate(names, start=1)}


def mapped_categories(path: Path, names: dict[int, str], mapping: dict, classes: list[str]) -> dict[int, int]:
    """categories {COCO name: class name}: the named categories are those classes, the others background."""
    ids_of_name: dict[str, list[int]] = defaultdict(list)
    for category_id, name in names.items():
        ids_of_name[name].append(category_id)
    class_ids = {name: class_id for class_id, name in enumerate(classes) if class_id > 0}
    class_of_category = {}
    for name, class_name in mapping.items():
        if name not in ids_of_name:
            raise DataError(
                f"dataset.categories names {name!r}, which {path} does not have; its categories are "
                f"{', '.join(names.values())}"
            )
        if class_name not in class_ids:
            raise DataError(
                f"dataset.categories maps {name!r} to {class_name!r}, which is not one of the classes "
                f"{', '.join(classes[1:])} (a category left out of the map is background)"
            )
        class_of_category.update(dict.fromkeys(ids_of_name[name], class_ids[class_name]))
    return class_of_category


def class_map(path: Path, names: dict[int, str], categories, classes: list[str]) -> dict[int, int]:
    """COCO category id -> class id, for the categories that are classes (dataset.categories)."""
    if categories == "all":
        return all_categories(path, names, classes)
    if isinstance(categories, dict):
        return mapped_categories(path, names, categories, classes)
    raise DataError(
        f"dataset.categories is {categories!r}: expected 'all' or a map from COCO category names to classes"
    )


def check_rle(path: Path, annotation: Annotation, image: ImageRecord) -> None:
    """An RLE must cover its image exactly: pycocotools would decode a wrong size into a wrong-sized mask
    (and uncompressed counts that sum past it past the end of the array)."""
    segmentation = annotation.segmentation
    if not isinstance(segmentation, dict):
        return
    size = [image.height, image.width]
    if list(segmentation["size"]) != size:
        raise DataError(
            f"{path}: annotation {annotation.annotation_id} has an RLE of size {segmentation['size']} on image "
            f"{annotation.image_id} of size {size}"
        )
    counts = segmentation["counts"]
    if not isinstance(counts, str) and int(counts.sum(dtype=np.uint64)) != image.height * image.width:
        raise DataError(
            f"{path}: annotation {annotation.annotation_id}'s RLE counts sum to {int(counts.sum(dtype=np.uint64))}, "
            f"not the {image.height * image.width} pixels of image {annotation.image_id}"
        )


def group_by_image(
    path: Path, annotations: list, images: dict[int, ImageRecord], categories: dict[int, str], keep: dict[int, int]
) -> dict[int, list[Annotation]]:
    """The annotations of the kept categories by image id; every annotation's image and category checked."""
    annotations_of: dict[int, list[Annotation]] = defaultdict(list)
    for annotation in annotations:
        if not isinstance(annotation, Annotation):
            identity = annotation.get("id", "?") if isinstance(annotation, dict) else repr(annotation)
            raise DataError(f"{path}: annotation {identity} has no segmentation")
        if annotation.image_id not in images:
            raise DataError(
                f"{path}: annotation {annotation.annotation_id} names image id {annotation.image_id!r}, "
                f"which {path.name} does not have"
            )
        if annotation.category_id not in categories:
            raise DataError(
                f"{path}: annotation {annotation.annotation_id} names category id {annotation.category_id!r}, "
                f"which {path.name} does not have"
            )
        if annotation.category_id in keep:
            check_rle(path, annotation, images[annotation.image_id])
            annotations_of[annotation.image_id].append(annotation)
    return dict(annotations_of)


def read_coco(path, categories, classes: list[str]) -> CocoSplit:
    """An instances JSON, checked, with only what the index needs: image records, the class of each category
    that is one (dataset.categories, classes: background first), and those categories' annotations by image."""
    path = Path(path)
    data = load_instances(path)
    images = image_records(path, data["images"])
    names = category_names(path, data["categories"])
    class_of_category = class_map(path, names, categories, classes)
    annotations_of = group_by_image(path, data["annotations"], images, names, class_of_category)
    return CocoSplit(path, images, class_of_category, annotations_of)


def binary_mask(segmentation, height: int, width: int) -> np.ndarray | None:
    """An annotation's pixels (uint8 H x W, 1 inside) as pycocotools' annToMask has them; None: no polygon."""
    from pycocotools import mask as coco_mask  # here: the workflow imports the dataset kinds when it plans

    if isinstance(segmentation, list):
        if not segmentation:
            return None
        rle = coco_mask.merge(coco_mask.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation["counts"], str):
        rle = segmentation
    else:
        rle = coco_mask.frPyObjects(segmentation, height, width)
    return coco_mask.decode(rle)


def rasterise(annotations, height: int, width: int, class_of_category: dict[int, int]) -> np.ndarray:
    """One image's class mask (uint8 H x W): background 0, the crowd regions of classes 255 (ignore), then
    the non-crowd instances of classes, largest area first, so smaller ones end up on top; categories that
    are not classes are never drawn."""
    mask = np.zeros((height, width), np.uint8)
    drawn = [annotation for annotation in annotations if annotation.category_id in class_of_category]
    crowds = [annotation for annotation in drawn if annotation.crowd]
    instances = sorted((a for a in drawn if not a.crowd), key=lambda annotation: annotation.area, reverse=True)
    with warnings.catch_warnings():
        # pycocotools' decode under numpy 2 warns at every call that its __array__ takes no copy argument
        warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
        for annotation in crowds + instances:
            pixels = binary_mask(annotation.segmentation, height, width)
            if pixels is not None:
                mask[pixels == 1] = IGNORE if annotation.crowd else class_of_category[annotation.category_id]
    return mask


def image_labels(annotations: list[Annotation], class_of_category: dict[int, int]) -> tuple[int, ...]:
    """The image's tags: the classes of its non-crowd annotations (a crowd region names no instance)."""
    return tuple(sorted({class_of_category[a.category_id] for a in annotations if not a.crowd}))


def split_images(coco: CocoSplit, folder: Path, masks_dir: Path) -> tuple[list[IndexedImage], dict[str, int]]:
    """The split's images with a class, sorted by id (the file name's stem), and each one's COCO image id."""
    indexed, coco_id_of = [], {}
    for coco_id, record in coco.images.items():
        class_ids = image_labels(coco.annotations_of.get(coco_id, []), coco.class_of_category)
        if not class_ids:
            continue
        image_id = Path(record.file_name).stem
        if image_id in coco_id_of:
            other = coco.images[coco_id_of[image_id]].file_name
            raise DataError(f"{coco.path}: images {other} and {record.file_name} have one image id {image_id!r}")
        coco_id_of[image_id] = coco_id
        indexed.append(IndexedImage(image_id, folder / record.file_name, masks_dir / f"{image_id}.png", class_ids))
    indexed.sort(key=lambda image: image.image_id)
    return indexed, coco_id_of


def check_image_files(indexed: list[IndexedImage], split: str, folder: Path) -> None:
    """Every image file there before any mask is made (write_index checks again, after)."""
    missing = [image.image for image in indexed if not image.image.is_file()]
    if missing:
        raise DataError(
            f"{len(missing)} of the {len(indexed)} images of split {split!r} have no file in {folder}, "
            f"e.g. {missing[0]}"
        )


def write_masks(coco: CocoSplit, coco_id_of: dict[str, int], masks_dir: Path, split: str) -> None:
    """Rasterise the masks not written yet (a killed job resumes where it stopped: voc.pending_ids)."""
    masks_dir.mkdir(parents=True, exist_ok=True)
    for image_id in tqdm(pending_ids(list(coco_id_of), masks_dir, ".png"), desc=f"COCO masks {split}", mininterval=2):
        record = coco.images[coco_id_of[image_id]]
        annotations = coco.annotations_of[coco_id_of[image_id]]
        mask = rasterise(annotations, record.height, record.width, coco.class_of_category)
        write_mask(masks_dir / f"{image_id}.png", mask)


def index_split(request: IndexRequest, split: str) -> tuple[list[IndexedImage], int]:
    """One split: its JSON read, its images with a class indexed and their masks written; the number left
    out. Its own function, so one split's annotations are freed before the next is read."""
    settings = request.settings
    path = Path(split_setting(settings, "annotations", split, request.splits))
    folder = images_folder(settings, split, request.splits)
    categories = settings.get("categories")
    coco = read_coco(path, "all" if categories is None else categories, list(request.classes))
    indexed, coco_id_of = split_images(coco, folder, request.masks_dir)
    check_image_files(indexed, split, folder)
    left_out = len(coco.images) - len(indexed)
    log.info("split %s (%s): %d images, %d left out: %s", split, path, len(indexed), left_out, NO_CLASS)
    write_masks(coco, coco_id_of, request.masks_dir, split)
    return indexed, left_out


def build_coco(request: IndexRequest) -> BuiltIndex:
    """The coco kind: each configured split from its instances JSON, tags from the annotations, masks
    rasterised to request.masks_dir (see the module's docstring)."""
    splits, left_out = {}, 0
    for split in request.splits:
        splits[split], split_left_out = index_split(request, split)
        left_out += split_left_out
    return BuiltIndex(splits, FROM_TAGS, {NO_CLASS: left_out})
