"""The dataset index: train_aug as in the literature, SBD masks, and clear errors for broken trees."""

import shutil

import pytest

from tests.voc_data import make_voc_and_sbd
from wsss.data.index import train_aug_ids, write_index
from wsss.data.voc import DataError, VOCTree


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_voc_and_sbd(tmp_path_factory.mktemp("voc"), voc_train=4, sbd_only=4, val=3)


def test_train_aug_is_sbd_and_voc_train_minus_voc_val():
    assert train_aug_ids(["a", "b"], ["v", "w"], ["b", "c", "v"], ["d", "w"]) == ["a", "b", "c", "d"]


def test_index_opens_as_a_tree_with_sbd_masks(data, tmp_path):
    voc, sbd, train_aug = data
    counts = write_index(voc, tmp_path / "index", ["train_aug", "train", "val"], 21, sbd_root=sbd, expected_train_aug=8)
    assert counts == {"train": 4, "val": 3, "train_aug": 8}
    tree = VOCTree.open(tmp_path / "index")
    assert tree.split_ids("train_aug") == train_aug
    voc_masks = {p.stem for p in (voc / "SegmentationClass").glob("*.png")}
    for image_id in train_aug:  # VOC's own mask where it has one, the converted SBD mask otherwise
        expected_dir = (
            voc / "SegmentationClass" if image_id in voc_masks else tmp_path / "index" / "SegmentationClassAug"
        )
        assert tree.mask_path(image_id) == expected_dir / f"{image_id}.png" and tree.mask_path(image_id).is_file()


def test_unexpected_train_aug_size_names_the_key(data, tmp_path):
    voc, sbd, _ = data
    with pytest.raises(DataError, match="has 8 images, expected 10582 \\(key expected_train_aug\\)"):
        write_index(voc, tmp_path / "index", ["train_aug"], 21, sbd_root=sbd, expected_train_aug=10582)


def test_missing_image_and_missing_split_name_the_file(data, tmp_path):
    voc, _, _ = data
    with pytest.raises(DataError, match="split 'train_aug' has no image list"):
        write_index(voc, tmp_path / "a", ["train_aug"], 21)
    broken = tmp_path / "VOC2012"
    shutil.copytree(voc, broken)
    victim = sorted((broken / "JPEGImages").glob("*.jpg"))[0]
    victim.unlink()
    with pytest.raises(DataError, match=f"has no file {victim}"):
        write_index(broken, tmp_path / "b", ["train", "val"], 21)


def test_not_a_voc_tree_and_no_index_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="missing JPEGImages, SegmentationClass"):
        write_index(tmp_path, tmp_path / "index", ["train"], 21)
    with pytest.raises(DataError, match="cannot read dataset index"):
        VOCTree.open(tmp_path)
