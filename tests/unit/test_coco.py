"""The coco dataset kind: coco340's masks and tags as its VOC PNGs have them, the drawing order, resuming, and a
clear error for each broken input."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wsss.data import coco
from wsss.data.datasets import FROM_TAGS, Dataset, IndexRequest, write_index
from wsss.data.voc import IGNORE, VOC_CLASSES, DataError, read_list, read_mask

REPO = Path(__file__).resolve().parents[2]
COCO340 = REPO.parent / "shared" / "data" / "coco340-voc"
VOC_MAP = {
    "airplane": "aeroplane",
    "bicycle": "bicycle",
    "bird": "bird",
    "boat": "boat",
    "bottle": "bottle",
    "bus": "bus",
    "car": "car",
    "cat": "cat",
    "chair": "chair",
    "cow": "cow",
    "dining table": "diningtable",
    "dog": "dog",
    "horse": "horse",
    "motorcycle": "motorbike",
    "person": "person",
    "potted plant": "pottedplant",
    "sheep": "sheep",
    "couch": "sofa",
    "train": "train",
    "tv": "tvmonitor",
}


def request(settings: dict, out_dir: Path, classes=VOC_CLASSES, splits=("train", "val")) -> IndexRequest:
    return IndexRequest(settings, {}, list(splits), splits[0], list(classes), out_dir)


# coco340: COCO's own annotations of 340 photos, and their VOC-layout masks drawn by the same rules


@pytest.fixture(scope="module")
def coco340(tmp_path_factory):
    if not COCO340.is_dir():
        pytest.skip(f"the coco340 development set is not at {COCO340} (../shared/data/coco340-voc, outside the repo)")
    settings = {
        "kind": "coco",
        "images": str(COCO340 / "VOC2012" / "JPEGImages"),
        "annotations": {split: str(COCO340 / "coco" / f"instances_{split}.json") for split in ("train", "val")},
        "categories": VOC_MAP,
    }
    return coco.build_coco(request(settings, tmp_path_factory.mktemp("coco340")))


def voc_mask(image_id: str) -> np.ndarray:
    return read_mask(COCO340 / "VOC2012" / "SegmentationClass" / f"{image_id}.png", len(VOC_CLASSES))


def test_coco340_splits_are_its_voc_lists(coco340):
    assert coco340.labels_from == FROM_TAGS
    assert coco340.left_out == {coco.NO_CLASS: 0}
    for split in ("train", "val"):
        expected = sorted(read_list(COCO340 / "VOC2012" / "ImageSets" / "Segmentation" / f"{split}.txt"))
        assert [image.image_id for image in coco340.splits[split]] == expected
        for image in coco340.splits[split]:
            assert image.image == COCO340 / "VOC2012" / "JPEGImages" / f"{image.image_id}.jpg"


def test_coco340_tags_are_the_classes_of_its_voc_masks(coco340):
    for images in coco340.splits.values():
        for image in images:
            classes = set(np.unique(voc_mask(image.image_id)).tolist()) - {0, IGNORE}
            assert image.class_ids == tuple(sorted(classes)), image.image_id


def test_coco340_masks_agree_with_its_voc_pngs(coco340):
    """The PNGs were drawn with PIL (polygon outlines included: about 1 px fatter), by the same rules: the
    pixels agree to 99.7 % (its README), the crowd regions (255) almost exactly."""
    agreeing = pixels = crowd_both = crowd_either = 0
    for images in coco340.splits.values():
        for image in images:
            ours, theirs = read_mask(image.mask, len(VOC_CLASSES)), voc_mask(image.image_id)
            assert ours.shape == theirs.shape, image.image_id
            agreeing += int((ours == theirs).sum())
            pixels += ours.size
            crowd_both += int(((ours == IGNORE) & (theirs == IGNORE)).sum())
            crowd_either += int(((ours == IGNORE) | (theirs == IGNORE)).sum())
    assert agreeing / pixels >= 0.99
    assert crowd_both > 100_000 and crowd_both / crowd_either >= 0.95


# Synthetic instances files: three categories (dog is no class in CLASSES' map), tiny images

CLASSES = ("background", "person", "cat")
CATEGORIES = [{"id": 1, "name": "person"}, {"id": 17, "name": "cat"}, {"id": 18, "name": "dog"}]
MAP = {"person": "person", "cat": "cat"}


def box(x0, y0, x1, y1) -> list:
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def uncompressed_rle(region: np.ndarray) -> dict:
    """COCO's uncompressed RLE of a boolean mask: run lengths in column-major order, starting with 0s."""
    flat = region.flatten(order="F").astype(np.int8)
    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    return {"size": list(region.shape), "counts": np.diff(np.concatenate([[0], changes])).tolist()}


def annotation(annotation_id, image_id, category_id, segmentation, area, iscrowd=0) -> dict:
    return {
        "id": annotation_id,
        "image_id": image_id,
        "category_id": category_id,
        "segmentation": segmentation,
        "area": area,
        "iscrowd": iscrowd,
        "bbox": [0, 0, 1, 1],
    }


def crowd_region(height, width, rows) -> dict:
    region = np.zeros((height, width), bool)
    region[rows] = True
    return uncompressed_rle(region)


def train_instances() -> dict:
    """a: a cat (annotated first) on a person, a dog, a crowd of people; b: a cat; c: a dog and a crowd
    of people only (left out: no non-crowd annotation of a class)."""
    return {
        "info": {},
        "images": [
            {"id": 7, "file_name": "a.jpg", "height": 30, "width": 40},
            {"id": 3, "file_name": "b.png", "height": 20, "width": 20},
            {"id": 9, "file_name": "c.jpg", "height": 20, "width": 20},
        ],
        "annotations": [
            annotation(1, 7, 17, box(10, 5, 20, 15), 100.0),
            annotation(2, 7, 1, box(0, 0, 30, 20), 600.0),
            annotation(3, 7, 18, box(25, 10, 38, 28), 234.0),
            annotation(4, 7, 1, crowd_region(30, 40, slice(18, 30)), 480, iscrowd=1),
            annotation(5, 3, 17, box(2, 2, 12, 12), 100.0),
            annotation(6, 9, 18, box(2, 2, 12, 12), 100.0),
            annotation(7, 9, 1, crowd_region(20, 20, slice(15, 20)), 100, iscrowd=1),
        ],
        "categories": CATEGORIES,
    }


def val_instances() -> dict:
    return {
        "images": [
            {"id": 11, "file_name": "d.jpg", "height": 20, "width": 20},
            {"id": 12, "file_name": "e.jpg", "height": 20, "width": 20},
        ],
        "annotations": [annotation(8, 11, 1, box(0, 0, 10, 10), 100.0)],
        "categories": CATEGORIES,
    }


def write_images(folder: Path, instances: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for image in instances["images"]:
        Image.new("RGB", (image["width"], image["height"]), (90, 120, 30)).save(folder / image["file_name"])


def coco_tree(root: Path, train=None, val=None, categories=MAP) -> dict:
    """Two instances files and one image folder under root; the dataset section that names them."""
    settings = {"kind": "coco", "images": str(root / "images"), "annotations": {}, "categories": categories}
    for split, instances in (("train", train or train_instances()), ("val", val or val_instances())):
        path = root / f"instances_{split}.json"
        path.write_text(instances if isinstance(instances, str) else json.dumps(instances))
        settings["annotations"][split] = str(path)
        write_images(root / "images", train_instances() if isinstance(instances, str) else instances)
    return settings


def build(tmp_path: Path, classes=CLASSES, **tree) -> tuple:
    settings = coco_tree(tmp_path, **tree)
    index_request = request(settings, tmp_path / "index", classes)
    return coco.build_coco(index_request), index_request


def test_rasterise_draws_crowds_first_then_the_largest_instances_first():
    instances = train_instances()
    annotations = [coco.compact_annotation(record, Path("x.json")) for record in instances["annotations"][:4]]
    mask = coco.rasterise(annotations, 30, 40, {1: 1, 17: 2})
    assert mask.shape == (30, 40) and mask.dtype == np.uint8
    assert mask[10, 15] == 2  # the cat, annotated first, on top of the larger person
    assert mask[2, 2] == 1 and mask[19, 5] == 1  # the person, over the crowd it overlaps
    assert mask[25, 5] == IGNORE and mask[29, 39] == IGNORE  # the crowd of people elsewhere
    assert mask[12, 35] == 0  # the dog: no class, never drawn
    assert mask[15, 28] == 1  # nor over the person


def test_compressed_and_uncompressed_rle_draw_the_same_crowd():
    from pycocotools import mask as coco_mask

    region = np.zeros((30, 40), bool)
    region[5:12, 3:30] = True
    compressed = coco_mask.encode(np.asfortranarray(region.astype(np.uint8)))
    compressed["counts"] = compressed["counts"].decode()  # as a JSON file holds it
    masks = [
        coco.rasterise([coco.compact_annotation(annotation(1, 1, 1, rle, 189, 1), Path("x.json"))], 30, 40, {1: 1})
        for rle in (compressed, uncompressed_rle(region))
    ]
    np.testing.assert_array_equal(masks[0], np.where(region, IGNORE, 0))
    np.testing.assert_array_equal(masks[1], masks[0])


def test_tags_masks_and_left_out_images(tmp_path):
    built, index_request = build(tmp_path)
    assert {split: [image.image_id for image in images] for split, images in built.splits.items()} == {
        "train": ["a", "b"],
        "val": ["d"],
    }
    assert [image.class_ids for image in built.splits["train"]] == [(1, 2), (2,)]
    assert built.left_out == {"no non-crowd annotation of a class (coco)": 2}  # c (a crowd only) and e (nothing)
    a = built.splits["train"][0]
    assert a.image == tmp_path / "images" / "a.jpg" and a.mask == index_request.masks_dir / "a.png"
    mask = read_mask(a.mask, len(CLASSES))
    assert mask[10, 15] == 2 and mask[2, 2] == 1 and mask[25, 5] == IGNORE and mask[12, 35] == 0
    assert sorted(path.name for path in index_request.masks_dir.iterdir()) == ["a.png", "b.png", "d.png"]


def test_all_categories_are_classes_in_id_order(tmp_path):
    built, _ = build(tmp_path, classes=("background", "person", "cat", "dog"), categories="all")
    assert [image.class_ids for image in built.splits["train"]] == [(1, 2, 3), (2,), (3,)]
    assert read_mask(built.splits["train"][0].mask, 4)[12, 35] == 3  # the dog is a class now


def test_a_second_build_skips_the_masks_written(tmp_path):
    built, index_request = build(tmp_path)
    masks = {image.image_id: image.mask for images in built.splits.values() for image in images}
    written = {image_id: mask.stat().st_mtime_ns for image_id, mask in masks.items()}
    masks["b"].unlink()  # as if the job had been killed before writing it
    again = coco.build_coco(index_request)
    assert again == built
    assert {image_id: mask.stat().st_mtime_ns for image_id, mask in masks.items() if image_id != "b"} == {
        image_id: mtime for image_id, mtime in written.items() if image_id != "b"
    }
    assert read_mask(masks["b"], len(CLASSES))[5, 5] == 2


def test_the_index_round_trips_through_write_index(tmp_path):
    built, index_request = build(tmp_path)
    assert write_index(built, index_request, "coco") == {"train": 2, "val": 1}
    dataset = Dataset.open(index_request.out_dir)
    assert dataset.kind == "coco" and dataset.labels_from == FROM_TAGS
    assert dataset.split_ids("train") == ["a", "b"] and dataset.split_ids("val") == ["d"]
    assert dataset.masked_ids("train") == ["a", "b"]
    assert dataset.mask_path("a") == index_request.masks_dir / "a.png"
    assert dataset.image_path("b") == tmp_path / "images" / "b.png"
    assert dataset.tags("a") == [1, 2] and dataset.tags("d") == [1]
    assert dataset.manifest["left_out"] == {coco.NO_CLASS: 2}


def test_inputs_are_every_json_and_image_folder():
    settings = {"images": "photos", "annotations": {"train": "t.json", "val": "v.json"}}
    assert coco.coco_inputs(settings) == {"annotations": ["t.json", "v.json"], "images": ["photos"]}
    settings["images"] = {"train": "train2014", "val": "val2014"}
    assert coco.coco_inputs(settings)["images"] == ["train2014", "val2014"]


def test_images_per_split_come_from_their_folders(tmp_path):
    settings = coco_tree(tmp_path)
    settings["images"] = {"train": str(tmp_path / "images"), "val": str(tmp_path / "val_images")}
    write_images(tmp_path / "val_images", val_instances())
    built = coco.build_coco(request(settings, tmp_path / "index", CLASSES))
    assert built.splits["val"][0].image == tmp_path / "val_images" / "d.jpg"


# Broken inputs: each a DataError naming the file, key or value


def test_malformed_json_names_the_file_line_and_column(tmp_path):
    with pytest.raises(DataError, match=r"instances_train\.json: not valid JSON .*line 2 column 12"):
        build(tmp_path, train='{"images": [],\n "images": }')


def test_truncated_json_names_the_file(tmp_path):
    text = json.dumps(train_instances())
    with pytest.raises(DataError, match=r"instances_train\.json: not valid JSON .*line 1 column \d+"):
        build(tmp_path, train=text[: len(text) // 2])


def test_missing_annotations_key_names_the_file(tmp_path):
    instances = train_instances()
    del instances["annotations"]
    with pytest.raises(DataError, match=r"instances_train\.json has no annotations"):
        build(tmp_path, train=instances)


def test_unknown_category_names_the_annotation_and_the_id(tmp_path):
    instances = train_instances()
    instances["annotations"][4]["category_id"] = 99
    with pytest.raises(DataError, match=r"instances_train\.json: annotation 5 names category id 99"):
        build(tmp_path, train=instances)


def test_unknown_image_names_the_annotation_and_the_id(tmp_path):
    instances = val_instances()
    instances["annotations"][0]["image_id"] = 404
    with pytest.raises(DataError, match=r"instances_val\.json: annotation 8 names image id 404"):
        build(tmp_path, val=instances)


def test_duplicate_image_ids_name_the_file(tmp_path):
    instances = val_instances()
    instances["images"][1]["id"] = 11
    with pytest.raises(DataError, match=r"instances_val\.json: image id 11 appears twice \(e\.jpg\)"):
        build(tmp_path, val=instances)


def test_a_category_the_file_does_not_have_names_it(tmp_path):
    with pytest.raises(
        DataError,
        match=r"dataset\.categories names 'kitten', which .*instances_train\.json does not have; "
        r"its categories are person, cat, dog",
    ):
        build(tmp_path, categories={"kitten": "cat"})


def test_a_map_to_no_class_names_the_class(tmp_path):
    with pytest.raises(DataError, match=r"dataset\.categories maps 'dog' to 'hound', which is not one of the classes"):
        build(tmp_path, categories={**MAP, "dog": "hound"})


def test_all_with_classes_out_of_coco_order_names_the_first_mismatch(tmp_path):
    with pytest.raises(
        DataError,
        match=re.escape("class 2 is 'dog' where")
        + r".*instances_train\.json has category 'cat' \(id 17\).*classes must list COCO's categories in id order",
    ):
        build(tmp_path, classes=("background", "person", "dog", "cat"), categories="all")
    with pytest.raises(DataError, match=r"class 3 is None where .* has category 'dog' \(id 18\)"):
        build(tmp_path, classes=CLASSES, categories="all")


def test_a_split_missing_from_annotations_names_the_key_and_the_splits(tmp_path):
    settings = coco_tree(tmp_path)
    del settings["annotations"]["val"]
    with pytest.raises(DataError, match=r"dataset\.annotations\.val is not set: .*\(train, val\); it has train"):
        coco.build_coco(request(settings, tmp_path / "index", CLASSES))
    settings = coco_tree(tmp_path)
    settings["images"] = {"train": str(tmp_path / "images")}
    with pytest.raises(DataError, match=r"dataset\.images\.val is not set"):
        coco.build_coco(request(settings, tmp_path / "index", CLASSES))


def test_a_missing_image_file_names_the_split_and_the_file(tmp_path):
    settings = coco_tree(tmp_path)
    (tmp_path / "images" / "b.png").unlink()
    with pytest.raises(DataError, match=r"1 of the 2 images of split 'train' have no file .*b\.png"):
        coco.build_coco(request(settings, tmp_path / "index", CLASSES))


def test_an_rle_of_another_size_names_the_annotation(tmp_path):
    instances = train_instances()
    instances["annotations"][3]["segmentation"] = crowd_region(20, 40, slice(15, 20))
    with pytest.raises(DataError, match=r"annotation 4 has an RLE of size \[20, 40\] on image 7 of size \[30, 40\]"):
        build(tmp_path, train=instances)
