import numpy as np
import pytest
from PIL import Image

from wsss.data.voc import DataError, VOCTree, index_files, read_image, read_mask, shard_ids, voc_palette, write_mask


def test_palette_matches_voc_colours():
    palette = voc_palette()
    assert len(palette) == 768
    assert palette[0:3] == [0, 0, 0]
    assert palette[3:6] == [128, 0, 0]  # aeroplane
    assert palette[15 * 3 : 16 * 3] == [192, 128, 128]  # person
    assert palette[255 * 3 :] == [224, 224, 192]  # the ignore band's cream colour


def test_mask_round_trip_is_a_palette_png(tmp_path):
    mask = np.array([[0, 1, 255], [15, 20, 0]], np.uint8)
    write_mask(tmp_path / "m.png", mask)
    with Image.open(tmp_path / "m.png") as image:
        assert image.mode == "P"
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png", 21), mask)


def test_mask_with_class_id_beyond_class_list_names_file_and_value(tmp_path):
    write_mask(tmp_path / "bad.png", np.array([[0, 7]], np.uint8))
    with pytest.raises(DataError, match=r"bad\.png.*class id 7"):
        read_mask(tmp_path / "bad.png", 5)


def test_rgb_mask_is_rejected(tmp_path):
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(DataError, match="rgb.png.*mode RGB"):
        read_mask(tmp_path / "rgb.png", 21)


def test_unreadable_image_names_the_file(tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="broken.jpg"):
        read_image(tmp_path / "broken.jpg")


def test_missing_split_list_names_the_file(tmp_path):
    with pytest.raises(DataError, match="train.txt"):
        VOCTree(tmp_path).split_ids("train")


def test_shards_partition_the_ids():
    ids = [f"img{i}" for i in range(11)]
    shards = [shard_ids(ids, k, 3) for k in range(3)]
    assert sorted(sum(shards, [])) == sorted(ids)
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    with pytest.raises(ValueError):
        shard_ids(ids, 3, 3)


def test_index_files_spans_shard_directories(tmp_path):
    for shard, name in ((0, "a"), (1, "b")):
        (tmp_path / f"s{shard}").mkdir()
        (tmp_path / f"s{shard}" / f"{name}.npy").write_bytes(b"")
    index = index_files([tmp_path / "s0", tmp_path / "s1"], ".npy")
    assert index == {"a": tmp_path / "s0" / "a.npy", "b": tmp_path / "s1" / "b.npy"}


def test_read_image_is_writable_for_crf_and_erasing(tmp_path):
    Image.fromarray(np.full((5, 6, 3), 90, np.uint8)).save(tmp_path / "x.jpg")
    image = read_image(tmp_path / "x.jpg")
    assert image.shape == (5, 6, 3) and image.dtype == np.uint8 and image.flags.writeable


def test_tree_shard_ids_split_the_list_file(tmp_path):
    (tmp_path / "ImageSets" / "Segmentation").mkdir(parents=True)
    (tmp_path / "ImageSets" / "Segmentation" / "train.txt").write_text("c\na\nb\n")
    tree = VOCTree(tmp_path)
    assert tree.shard_ids("train", "0", 2) == ["a", "c"] and tree.shard_ids("train", 1, 2) == ["b"]
