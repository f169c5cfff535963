import numpy as np
import pytest

from wsss.data.voc import DataError, save_npy
from wsss.seeds.erasing import Eraser, erase, mined_region


def test_erase_fills_exactly_the_mined_pixels(rng):
    image = rng.integers(0, 256, size=(6, 7, 3)).astype(np.uint8)
    round0 = np.zeros((2, 6, 7), np.float16)
    round0[0, 1, 1] = 0.9
    round0[1, 4, 5] = 0.51
    round0[1, 2, 2] = 0.5  # exactly at the threshold: not mined
    round1 = np.zeros((1, 6, 7), np.float16)
    round1[0, 5, 0] = 0.7
    region = mined_region([round0, round1, np.zeros((0, 6, 7))], 0.5, (6, 7))
    assert set(zip(*np.nonzero(region))) == {(1, 1), (4, 5), (5, 0)}
    erased = erase(image, region, (10.2, 20.6, 30.0))
    np.testing.assert_array_equal(erased[region], [[10, 21, 30]] * 3)
    np.testing.assert_array_equal(erased[~region], image[~region])
    assert image[1, 1].tolist() != [10, 21, 30]  # the input is left untouched


def test_eraser_reads_earlier_rounds_from_shard_dirs(tmp_path):
    for round_, value in (("r0", 0.9), ("r1", 0.0)):
        shard = tmp_path / round_ / "shard0"
        shard.mkdir(parents=True)
        cams = np.zeros((1, 3, 3), np.float16)
        cams[0, 0, 0] = value
        save_npy(shard / "img.npy", cams)
    eraser = Eraser.from_shard_dirs([tmp_path / "r0" / "shard0", tmp_path / "r1" / "shard0"], 0.5, (0, 0, 0))
    assert len(eraser.cam_indexes) == 2
    out = eraser("img", np.full((3, 3, 3), 200, np.uint8))
    assert out[0, 0].tolist() == [0, 0, 0] and (out.reshape(-1, 3)[1:] == 200).all()
    with pytest.raises(DataError, match="other"):
        eraser("other", np.zeros((3, 3, 3), np.uint8))


def test_eraser_for_round_is_none_for_round_zero_and_fills_the_mean_colour(tmp_path):
    import pandas as pd

    from wsss.seeds.erasing import eraser_for_round

    labels = tmp_path / "labels.parquet"
    pd.DataFrame(
        {
            "image_id": ["a", "b"],
            "class_ids": [[8], [15]],
            "height": [2, 2],
            "width": [1, 3],
            "mean_r": [10.0, 30.0],
            "mean_g": [0.0, 0.0],
            "mean_b": [100.0, 100.0],
        }
    ).to_parquet(labels)
    assert eraser_for_round([], 0.5, labels, ["a", "b"]) is None
    shard = tmp_path / "r0" / "shard0"
    shard.mkdir(parents=True)
    cams = np.zeros((1, 2, 3), np.float16)
    cams[0, 1, 2] = 0.9
    save_npy(shard / "b.npy", cams)
    eraser = eraser_for_round([shard], 0.5, labels, ["a", "b"])
    out = eraser("b", np.full((2, 3, 3), 200, np.uint8))
    assert out[1, 2].tolist() == [25, 0, 100]  # pixel-weighted mean: (10*2 + 30*6) / 8 = 25
    assert (out.reshape(-1, 3)[:-1] == 200).all()
