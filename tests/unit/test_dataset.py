"""The dataset index of the voc kind: train_aug as in the literature, SBD masks, and clear errors for broken
trees; the index's own form (paths relative to it, masks, tags)."""

import os
import shutil

import pytest

from tests.voc_data import index_voc, make_voc_and_sbd, voc_request
from wsss.data.datasets import (
    FROM_TAGS,
    BuiltIndex,
    Dataset,
    IndexedImage,
    IndexRequest,
    image_files,
    stored_path,
    write_index,
)
from wsss.data.kinds import index_dataset
from wsss.data.voc import DataError
from wsss.data.voc_sbd import train_aug_ids


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_voc_and_sbd(tmp_path_factory.mktemp("voc"), voc_train=4, sbd_only=4, val=3)


def test_train_aug_is_sbd_and_voc_train_minus_voc_val():
    assert train_aug_ids(["a", "b"], ["v", "w"], ["b", "c", "v"], ["d", "w"]) == ["a", "b", "c", "d"]


def test_index_lists_train_aug_with_sbd_masks(data, tmp_path):
    voc, sbd, train_aug = data
    request = voc_request(voc, tmp_path / "index", ["train_aug", "train", "val"], sbd_root=sbd, expected_train_aug=8)
    assert index_dataset(request) == {"train_aug": 8, "train": 4, "val": 3}
    dataset = Dataset.open(tmp_path / "index")
    assert dataset.split_ids("train_aug") == train_aug and dataset.masked_ids("train_aug") == train_aug
    assert dataset.tags(train_aug[0]) is None  # the voc kind's labels come from its masks
    voc_masks = {p.stem for p in (voc / "SegmentationClass").glob("*.png")}
    for image_id in train_aug:  # VOC's own mask where it has one, the converted SBD mask otherwise
        expected_dir = voc / "SegmentationClass" if image_id in voc_masks else tmp_path / "index" / "masks"
        assert dataset.mask_path(image_id) == expected_dir / f"{image_id}.png" and dataset.mask_path(image_id).is_file()
        assert dataset.image_path(image_id) == voc / "JPEGImages" / f"{image_id}.jpg"


def test_unexpected_train_aug_size_names_the_key(data, tmp_path):
    voc, sbd, _ = data
    with pytest.raises(DataError, match="has 8 images, expected 10582 \\(key expected_train_aug\\)"):
        index_voc(voc, tmp_path / "index", ["train_aug"], sbd_root=sbd, expected_train_aug=10582)


def test_missing_image_and_missing_split_name_the_file(data, tmp_path):
    voc, _, _ = data
    with pytest.raises(DataError, match="split 'train_aug' has no image list"):
        index_voc(voc, tmp_path / "a", ["train_aug"])
    broken = tmp_path / "VOC2012"
    shutil.copytree(voc, broken)
    victim = sorted((broken / "JPEGImages").glob("*.jpg"))[0]
    victim.unlink()
    with pytest.raises(DataError, match=f"has no file {victim}"):
        index_voc(broken, tmp_path / "b", ["train", "val"])


def test_not_a_voc_tree_and_no_index_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="missing JPEGImages, SegmentationClass"):
        index_voc(tmp_path, tmp_path / "index", ["train"])
    with pytest.raises(DataError, match="cannot read dataset index"):
        Dataset.open(tmp_path)


def test_paths_inside_the_project_are_relative_to_the_index(data, tmp_path, monkeypatch):
    """The project (the working directory) can move with its data: paths inside it are stored relative to the
    index; data outside it keeps its absolute path."""
    voc, _, _ = data
    project = tmp_path / "project"
    shutil.copytree(voc, project / "resources" / "VOC2012")
    monkeypatch.chdir(project)
    index_voc("resources/VOC2012", "results/data", ["train", "val"])
    table = (project / "results/data/images.tsv").read_text()
    assert "\t../../resources/VOC2012/JPEGImages/" in table and str(project) not in table
    assert stored_path(voc / "x.jpg", project / "results/data") == os.path.abspath(voc / "x.jpg")
    moved = tmp_path / "moved"
    shutil.move(project, moved)
    dataset = Dataset.open(moved / "results/data")
    first = dataset.split_ids("train")[0]
    assert dataset.image_path(first) == moved / "resources/VOC2012/JPEGImages" / f"{first}.jpg"
    assert dataset.image_path(first).is_file()


def test_tags_empty_splits_and_masks_of_a_subset(data, tmp_path):
    """A tags kind's index: tags per image (an empty set too), a split without images, masks for a subset."""
    voc, _, _ = data
    ids = sorted(p.stem for p in (voc / "JPEGImages").glob("*.jpg"))[:3]
    images = [
        IndexedImage(ids[0], voc / "JPEGImages" / f"{ids[0]}.jpg", None, (3, 15)),
        IndexedImage(ids[1], voc / "JPEGImages" / f"{ids[1]}.jpg", voc / "SegmentationClass" / f"{ids[1]}.png", ()),
    ]
    request = IndexRequest({"kind": "tagged"}, {}, ["train", "val"], "train", ["background", "a"], tmp_path / "i")
    counts = write_index(BuiltIndex({"train": images, "val": []}, FROM_TAGS, {"reason": 1}), request, "tagged")
    assert counts == {"train": 2, "val": 0}
    dataset = Dataset.open(tmp_path / "i")
    assert dataset.kind == "tagged" and dataset.manifest["left_out"] == {"reason": 1}
    assert dataset.tags(ids[0]) == [3, 15] and dataset.tags(ids[1]) == []
    assert dataset.mask_path(ids[0]) is None and dataset.masked_ids("train") == [ids[1]]
    assert dataset.split_ids("val") == [] and dataset.manifest["masked_images"] == {"train": 1, "val": 0}
    with pytest.raises(DataError, match="has no split 'test'"):
        dataset.split_ids("test")
    with pytest.raises(DataError, match="the training split 'val' has no images"):
        write_index(
            BuiltIndex({"train": images, "val": []}, FROM_TAGS),
            IndexRequest({}, {}, ["train", "val"], "val", [], tmp_path / "j"),
            "tagged",
        )


def test_image_files_of_a_folder(tmp_path):
    for name in ("a.jpg", "b.JPEG", "c.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert image_files(tmp_path) == {"a": tmp_path / "a.jpg", "b": tmp_path / "b.JPEG", "c": tmp_path / "c.png"}
    (tmp_path / "a.PNG").write_bytes(b"x")
    with pytest.raises(DataError, match="two images of id 'a'"):
        image_files(tmp_path)
    with pytest.raises(DataError, match="is not a folder of images"):
        image_files(tmp_path / "none")
