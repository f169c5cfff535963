"""The tagged dataset kind: photos, a tags CSV and masks for a subset read into the index; clear errors."""

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wsss.data import kinds
from wsss.data.datasets import FROM_TAGS, Dataset, IndexRequest, write_index
from wsss.data.tagged import TagRow, build_tagged, masked_splits, read_tags, tagged_inputs
from wsss.data.voc import VOC_CLASSES, DataError, voc_palette

REPO = Path(__file__).resolve().parents[2]
COCO340 = REPO.parent / "shared" / "data" / "coco340-voc"
CLASSES = ["background", "cat", "dog", "person"]
SPLITS = ["train", "val"]
HEIGHT, WIDTH = 24, 32
# One photo of each extension the kind reads (in any case)
PHOTOS = {"b_cat": ".jpg", "a_dog": ".JPEG", "c_none": ".png", "d_both": ".jpeg"}
TAGS = """\ufeffimage,classes,split
d_both , person cat , val

b_cat,cat,train
a_dog,dog,train
c_none,,val
"""


def write_photos(folder: Path, photos: dict[str, str] = PHOTOS, size=(HEIGHT, WIDTH)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for image_id, suffix in photos.items():
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / f"{image_id}{suffix}")
    return folder


def write_mask(path: Path, values: list[int], mode: str = "P", size=(HEIGHT, WIDTH)) -> Path:
    """A mask of the given class ids in horizontal bands, as a palette ('P') or plain grey ('L') PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mask = np.repeat(np.array(values, dtype=np.uint8), -(-size[0] // len(values)))[: size[0]]
    image = Image.fromarray(np.repeat(mask[:, None], size[1], axis=1))
    if mode == "P":
        image.putpalette(voc_palette())  # the same values, now palette indices
    assert image.mode == mode
    image.save(path)
    return path


def settings_for(tmp_path: Path, tags: str = TAGS, masks: bool = False, **photos) -> dict:
    """The dataset section of a tagged project in tmp_path: the photos, the CSV text, a masks folder or none."""
    (tmp_path / "tags.csv").write_text(tags, encoding="utf-8")
    return {
        "kind": "tagged",
        "images": str(write_photos(tmp_path / "photos", photos or PHOTOS)),
        "tags": str(tmp_path / "tags.csv"),
        "masks": str(tmp_path / "masks") if masks else None,
    }


def request_for(settings: dict, out_dir: Path) -> IndexRequest:
    return IndexRequest(settings, tagged_inputs(settings), SPLITS, "train", CLASSES, out_dir)


def build(tmp_path: Path, tags: str = TAGS, masks: bool = False):
    return build_tagged(request_for(settings_for(tmp_path, tags, masks), tmp_path / "index"))


def test_inputs_name_the_masks_only_when_set(tmp_path):
    settings = settings_for(tmp_path)
    assert tagged_inputs(settings) == {"images": settings["images"], "tags": settings["tags"]}
    assert tagged_inputs({**settings, "masks": "m"})["masks"] == "m"


def test_read_tags_strips_fields_skips_blank_lines_and_a_bom(tmp_path):
    (tmp_path / "tags.csv").write_text(TAGS + ",,\n", encoding="utf-8")
    rows = read_tags(tmp_path / "tags.csv", CLASSES, SPLITS, "train")
    assert rows == [
        TagRow(2, "d_both", (1, 3), "val"),
        TagRow(4, "b_cat", (1,), "train"),
        TagRow(5, "a_dog", (2,), "train"),
        TagRow(6, "c_none", (), "val"),
    ]


def test_tags_splits_and_masks_for_a_subset(tmp_path):
    (tmp_path / "masks").mkdir()
    write_mask(tmp_path / "masks" / "d_both.png", [0, 1, 3, 255], mode="P")
    write_mask(tmp_path / "masks" / "b_cat.png", [0, 1], mode="L")
    write_mask(tmp_path / "masks" / "no_row.png", [0])
    write_photos(tmp_path / "photos", {"e_untagged": ".jpg"})
    built = build(tmp_path, masks=True)
    assert built.labels_from == FROM_TAGS
    assert {split: [i.image_id for i in images] for split, images in built.splits.items()} == {
        "train": ["a_dog", "b_cat"],
        "val": ["c_none", "d_both"],
    }
    images = {image.image_id: image for split in built.splits.values() for image in split}
    assert {image_id: image.class_ids for image_id, image in images.items()} == {
        "a_dog": (2,),
        "b_cat": (1,),
        "c_none": (),
        "d_both": (1, 3),
    }
    assert {image_id: image.image.name for image_id, image in images.items()} == {
        image_id: image_id + suffix for image_id, suffix in PHOTOS.items()
    }
    assert {image_id: image.mask for image_id, image in images.items() if image.mask} == {
        "b_cat": tmp_path / "masks" / "b_cat.png",
        "d_both": tmp_path / "masks" / "d_both.png",
    }
    assert built.left_out == {
        "in the images folder with no row in tags.csv": 1,
        "in the masks folder with no row in tags.csv": 1,
    }


def test_without_a_split_column_every_image_is_in_the_train_split(tmp_path):
    built = build(tmp_path, "image,classes\nd_both,cat person\nc_none,\nb_cat,cat\na_dog,dog\n")
    assert [image.image_id for image in built.splits["train"]] == ["a_dog", "b_cat", "c_none", "d_both"]
    assert built.splits["val"] == [] and built.left_out == {}
    assert all(image.mask is None for image in built.splits["train"])


def test_the_index_reads_back_tags_masks_and_splits(tmp_path):
    write_mask(tmp_path / "masks" / "d_both.png", [0, 3])
    settings = settings_for(tmp_path, masks=True)
    request = request_for(settings, tmp_path / "index")
    assert write_index(build_tagged(request), request, "tagged") == {"train": 2, "val": 2}
    dataset = Dataset.open(tmp_path / "index")
    assert dataset.split_ids("train") == ["a_dog", "b_cat"] and dataset.split_ids("val") == ["c_none", "d_both"]
    assert dataset.tags("d_both") == [1, 3] and dataset.tags("c_none") == []
    assert dataset.mask_path("d_both") == tmp_path / "masks" / "d_both.png" and dataset.mask_path("a_dog") is None
    assert dataset.masked_ids("val") == ["d_both"] and dataset.masked_ids("train") == []
    assert dataset.image_path("a_dog") == tmp_path / "photos" / "a_dog.JPEG"


def test_masked_splits_lists_the_splits_with_a_mask(tmp_path):
    settings = settings_for(tmp_path, masks=True)
    write_mask(tmp_path / "masks" / "c_none.png", [0])
    assert masked_splits(settings, SPLITS, CLASSES, "train") == {"val"}
    assert masked_splits({**settings, "masks": None}, SPLITS, CLASSES, "train") == frozenset()
    config = {"dataset": settings, "splits": {"train": "train", "seed_eval": "train", "val": "val"}, "classes": CLASSES}
    assert kinds.masked_splits(config) == {"val"}


def test_masked_splits_without_a_split_column_is_the_train_split(tmp_path):
    settings = settings_for(tmp_path, "image,classes\na_dog,dog\nb_cat,cat\n", masks=True)
    write_mask(tmp_path / "masks" / "b_cat.png", [0])
    assert masked_splits(settings, ["train_aug", "val"], CLASSES, "train_aug") == {"train_aug"}


def test_masked_splits_opens_no_image_or_mask(tmp_path):
    """The workflow asks when it plans: it reads the CSV and lists the masks folder, nothing else."""
    settings = settings_for(tmp_path, masks=True)
    (tmp_path / "masks").mkdir()
    for path in [*Path(settings["images"]).iterdir(), tmp_path / "masks" / "a_dog.png"]:
        path.write_bytes(b"not an image")
    assert masked_splits(settings, SPLITS, CLASSES, "train") == {"train"}


def test_unknown_class_names_the_file_the_line_and_the_classes(tmp_path):
    with pytest.raises(DataError, match=r"tags.csv, line 3: unknown class 'horse'; the classes are cat, dog, person"):
        build(tmp_path, "image,classes,split\na_dog,dog,train\nb_cat,cat horse,train\n")


def test_background_is_not_a_tag(tmp_path):
    with pytest.raises(DataError, match=r"line 2: 'background' is not a tag: .* foreground classes"):
        build(tmp_path, "image,classes\na_dog,background dog\n")


def test_an_image_with_no_file_names_the_line_and_the_extensions(tmp_path):
    with pytest.raises(DataError, match=r"line 3: image 'gone' has no file in .*photos \(looked for .jpg, .jpeg, .png"):
        build(tmp_path, "image,classes\na_dog,dog\ngone,cat\n")


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_an_unreadable_image_names_the_file_and_the_line(tmp_path, damage):
    settings = settings_for(tmp_path)
    photo = Path(settings["images"]) / "b_cat.jpg"
    photo.write_bytes(b"not a jpeg" if damage == "garbage" else photo.read_bytes()[: photo.stat().st_size * 2 // 3])
    with pytest.raises(DataError, match=rf"tags.csv, line 4: cannot read image {photo}"):
        build_tagged(request_for(settings, tmp_path / "index"))


def test_photos_with_no_row_are_left_out_and_said_once(tmp_path, caplog):
    write_photos(tmp_path / "photos", {f"extra_{i}": ".jpg" for i in range(7)})
    with caplog.at_level(logging.WARNING, logger="wsss.data.tagged"):
        built = build(tmp_path)
    assert built.left_out == {"in the images folder with no row in tags.csv": 7}
    warnings = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "left out 7 files" in warnings[0] and "extra_0.jpg" in warnings[0]
    assert "extra_6.jpg" not in warnings[0] and warnings[0].endswith(", ...")


def test_an_image_on_two_rows_names_both_lines(tmp_path):
    with pytest.raises(DataError, match=r"image 'a_dog' is on two rows, lines 2 and 4"):
        build(tmp_path, "image,classes\na_dog,dog\nb_cat,cat\na_dog,cat\n")


def test_a_split_not_configured_names_the_value_and_the_splits(tmp_path):
    with pytest.raises(DataError, match=r"line 3: split 'test' is not a configured split \(train, val\)"):
        build(tmp_path, "image,classes,split\na_dog,dog,train\nb_cat,cat,test\n")


def test_a_bad_header_says_what_it_found_and_expects(tmp_path):
    with pytest.raises(DataError, match=r"line 1: the header is 'id,tags'; expected 'image,classes' or 'image,cl"):
        build(tmp_path, "id,tags\na_dog,dog\n")


def test_a_row_with_the_wrong_number_of_fields(tmp_path):
    with pytest.raises(DataError, match=r"line 3: 3 fields, but the header image,classes has 2"):
        build(tmp_path, "image,classes\na_dog,dog\nb_cat,cat,train\n")


def test_an_empty_image_field(tmp_path):
    with pytest.raises(DataError, match=r"line 2: the image field is empty"):
        build(tmp_path, "image,classes\n,dog\n")


def test_a_mask_of_another_size_names_both_files(tmp_path):
    mask = write_mask(tmp_path / "masks" / "a_dog.png", [0, 2], size=(WIDTH, HEIGHT))
    with pytest.raises(DataError, match=rf"mask {mask} is 32x24 \(HxW\) but its image .*a_dog.JPEG is 24x32"):
        build(tmp_path, masks=True)


def test_a_mask_value_beyond_the_classes_names_the_file(tmp_path):
    mask = write_mask(tmp_path / "masks" / "a_dog.png", [0, 7], mode="L")
    with pytest.raises(DataError, match=rf"mask {mask} has class id 7, but the class list has 4 classes"):
        build(tmp_path, masks=True)


def test_two_files_of_one_id_are_named(tmp_path):
    write_photos(tmp_path / "photos", {"a_dog": ".png"})
    with pytest.raises(DataError, match=r"two images of id 'a_dog' in .*photos: a_dog.JPEG and a_dog.png"):
        build(tmp_path)


@pytest.mark.skipif(not COCO340.is_dir(), reason=f"the coco340-voc development set is not at {COCO340}")
def test_coco340_as_tags_with_masks_for_val_only(tmp_path):
    """Real photos: the VOC PNGs' class sets as tags, the val masks only; train has no masks, val all of them."""
    voc = COCO340 / "VOC2012"
    split_ids = {split: (voc / f"ImageSets/Segmentation/{split}.txt").read_text().split() for split in SPLITS}
    class_ids = {}
    for image_id in split_ids["train"] + split_ids["val"]:
        with Image.open(voc / "SegmentationClass" / f"{image_id}.png") as mask:
            class_ids[image_id] = tuple(int(c) for c in np.unique(np.asarray(mask)) if c not in (0, 255))
    lines = [f"{i},{' '.join(VOC_CLASSES[c] for c in class_ids[i])},{s}" for s in SPLITS for i in split_ids[s]]
    (tmp_path / "tags.csv").write_text("\n".join(["image,classes,split", *lines]) + "\n")
    (tmp_path / "masks").mkdir()
    for image_id in split_ids["val"]:
        (tmp_path / "masks" / f"{image_id}.png").symlink_to(voc / "SegmentationClass" / f"{image_id}.png")
    settings = {"images": str(voc / "JPEGImages"), "tags": str(tmp_path / "tags.csv"), "masks": str(tmp_path / "masks")}
    request = IndexRequest(settings, tagged_inputs(settings), SPLITS, "train", list(VOC_CLASSES), tmp_path / "index")
    built = build_tagged(request)
    assert {split: [i.image_id for i in images] for split, images in built.splits.items()} == {
        split: sorted(ids) for split, ids in split_ids.items()
    }
    assert all(image.mask is None for image in built.splits["train"])
    assert all(image.mask == tmp_path / "masks" / f"{image.image_id}.png" for image in built.splits["val"])
    assert {image.image_id: image.class_ids for images in built.splits.values() for image in images} == class_ids
    assert built.left_out == {}
    assert masked_splits(settings, SPLITS, list(VOC_CLASSES), "train") == {"val"}


def test_a_jpeg_in_the_masks_folder_is_named(tmp_path):
    write_photos(tmp_path / "masks", {"a_dog": ".jpg"})
    with pytest.raises(DataError, match=r"masks a_dog.jpg in .*masks are not PNGs"):
        build(tmp_path, masks=True)
