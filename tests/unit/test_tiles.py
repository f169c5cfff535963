"""Overlap-tile inference (segmentation.inference.tile): tiles of a fixed size on a grid, their logits blended with
weights that fall towards each tile's edges inside the overlap (wsss.training.segmentation.tiled_logits)."""

import math

import numpy as np
import pytest
import torch
from PIL import Image
from snakemake.utils import validate
from torch import nn

from tests.helpers import config_with
from tests.workflow_helpers import REPO
from wsss.nets.models import segmentation_model
from wsss.nets.transforms import to_tensor
from wsss.pipeline import registry
from wsss.pipeline.config_checks import config_errors
from wsss.pipeline.experiments import Grid
from wsss.training.segmentation import check_tile, predict, predict_images, predict_logits, tile_starts

SCHEMA = str(REPO / "workflow/schemas/config.schema.yaml")


class Conv(nn.Module):
    """A network of one seeded convolution (kernel 1: each pixel's logits from that pixel alone; kernel 3: from
    its 3x3 neighbourhood, zero-padded) with 3 classes."""

    def __init__(self, kernel: int):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 3, kernel, padding=kernel // 2)

    def forward(self, x):
        return {"out": self.conv(x)}


def photo(height, width, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3)).astype(np.uint8)


def windows(length: int, crop: int, stride: int) -> list[tuple[int, int]]:
    """mmsegmentation's slide_inference windows along one side (encoder_decoder.py): grids =
    max(length - crop + stride - 1, 0) // stride + 1, each window [max(end - crop, 0), end) with
    end = min(i * stride + crop, length)."""
    grids = max(length - crop + stride - 1, 0) // stride + 1
    out = []
    for i in range(grids):
        end = min(i * stride + crop, length)
        out.append((max(end - crop, 0), end))
    return out


def taper(position: int, length: int, overlap: int) -> float:
    """The weight of a tile's pixel along one side, as the docstring states it: 1 in the middle, linear inside the
    overlap down to 1 / (overlap + 1) at the border pixel."""
    to_edge = min(position, length - 1 - position)
    return min(1.0, (to_edge + 1) / (overlap + 1))


def blended_by_hand(model, image: np.ndarray, size: int, overlap: int, flip: bool) -> np.ndarray:
    """The tiled logits (C, H, W) of one image at its own size, pixel by pixel: Σ w·logits / Σ w over the tiles
    that hold the pixel, each tile's logits from the network on the tile (+ its flip's, flipped back)."""
    x = to_tensor(image)
    height, width = image.shape[:2]
    total = np.zeros((3, height, width))
    weights = np.zeros((height, width))
    for top, bottom in windows(height, size, size - overlap):
        for left, right in windows(width, size, size - overlap):
            crop = x[None, :, top:bottom, left:right]
            with torch.no_grad():
                logits = model(crop)["out"][0]
                if flip:
                    logits = logits + model(crop.flip(-1))["out"][0].flip(-1)
            logits = logits.double().numpy()
            for i in range(bottom - top):
                for j in range(right - left):
                    w = taper(i, bottom - top, overlap) * taper(j, right - left, overlap)
                    total[:, top + i, left + j] += w * logits[:, i, j]
                    weights[top + i, left + j] += w
    return total / weights


@pytest.fixture(scope="module")
def segmenter():
    torch.manual_seed(0)
    return segmentation_model("deeplabv3", "resnet18", 21, 16).eval()


def test_one_tile_over_the_whole_image_is_bit_identical_to_no_tiles(segmenter, tmp_path):
    """The long side at every scale (64 x 1.5 = 96) fits one tile: the old whole-image path, bit for bit, in the
    logits, the label maps and the files predict_images writes."""
    image = photo(75, 100)
    scales = [1.0, 0.5, 1.5]
    whole, count = predict_logits(segmenter, image, "cpu", 64, scales)
    for tile in ({"size": 96, "overlap": 32}, {"size": 500, "overlap": 0}):
        tiled, tiled_count = predict_logits(segmenter, image, "cpu", 64, scales, tile=tile)
        assert torch.equal(tiled, whole) and tiled_count == count == 6
    np.testing.assert_array_equal(
        predict(segmenter, image, "cpu", 64, scales, tile={"size": 96, "overlap": 95}),
        predict(segmenter, image, "cpu", 64, scales),
    )
    path = tmp_path / "a.png"
    Image.fromarray(image).save(path)
    predict_images(segmenter, {"a": path}, tmp_path / "none", "cpu", 64, {"scales": scales, "flip": True, "crf": None})
    inference = {"scales": scales, "flip": True, "crf": None, "tile": {"size": 96, "overlap": 8}}
    predict_images(segmenter, {"a": path}, tmp_path / "tiled", "cpu", 64, inference)
    assert (tmp_path / "none/a.png").read_bytes() == (tmp_path / "tiled/a.png").read_bytes()


@pytest.mark.parametrize("flip", [False, True])
def test_a_per_pixel_network_gives_the_same_logits_tiled_as_whole(flip):
    """Each pixel's logits depend on that pixel alone, so blending can only change them through its normalisation:
    Σ w·l / Σ w = l wherever the grid covers the pixel. Odd sizes, overlaps 0 (mmsegmentation's plain average), 5
    and 15 (one less than the tile)."""
    model = Conv(1).eval()
    image = photo(37, 53)
    whole, count = predict_logits(model, image, "cpu", None, flip=flip)
    for overlap in (0, 5, 15):
        tiled, tiled_count = predict_logits(model, image, "cpu", None, flip=flip, tile={"size": 16, "overlap": overlap})
        assert tiled_count == count == 1 + flip
        torch.testing.assert_close(tiled, whole, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("size, overlap, flip", [(16, 6, True), (20, 0, False), (24, 23, False)])
def test_blended_logits_are_the_weighted_mean_over_the_tiles(size, overlap, flip):
    """A 3x3 convolution (each tile's border logits see its zero padding, not the neighbour pixel): the library's
    blend against a pixel-by-pixel loop over mmsegmentation's window grid with the taper written out."""
    model = Conv(3).eval()
    image = photo(29, 45, seed=1)
    tiled, _ = predict_logits(model, image, "cpu", None, flip=flip, tile={"size": size, "overlap": overlap})
    np.testing.assert_allclose(tiled.double().numpy(), blended_by_hand(model, image, size, overlap, flip), atol=1e-5)


def test_a_context_network_differs_from_the_whole_image_only_at_inner_tile_borders():
    """A 3x3 convolution sees one pixel around: tiled and whole-image logits differ exactly where a tile's edge
    row or column lies inside the image (there the tile pads with zeros where the image has pixels)."""
    model = Conv(3).eval()
    image = photo(40, 57, seed=2)
    whole, _ = predict_logits(model, image, "cpu", None, flip=False)
    tiled, _ = predict_logits(model, image, "cpu", None, flip=False, tile={"size": 16, "overlap": 4})
    inner_edges = np.zeros((40, 57), bool)
    for top, bottom in windows(40, 16, 12):
        for left, right in windows(57, 16, 12):
            for row in {top, bottom - 1} - {0, 39}:
                inner_edges[row, left:right] = True
            for column in {left, right - 1} - {0, 56}:
                inner_edges[top:bottom, column] = True
    differs = (tiled - whole).abs().amax(0).numpy() > 1e-5
    assert differs.any()
    assert not (differs & ~inner_edges).any()


@pytest.mark.parametrize("length", [16, 17, 31, 33, 47, 97, 101])
@pytest.mark.parametrize("size, overlap", [(16, 0), (16, 3), (16, 15), (25, 7)])
def test_the_grid_covers_every_pixel_and_ends_at_the_edge(length, size, overlap):
    """Odd and even sides: tiles of min(size, side) from 0, stride size - overlap, the last one ending at the side's
    end, every pixel covered, no tile beyond the image; the same starts as mmsegmentation's windows."""
    tile_length = min(size, length)
    starts = tile_starts(length, tile_length, size - overlap)
    assert starts[0] == 0 and starts[-1] == length - tile_length
    assert all(0 < b - a <= size - overlap for a, b in zip(starts, starts[1:]))
    covered = np.zeros(length, int)
    for start in starts:
        covered[start : start + tile_length] += 1
    assert (covered > 0).all()
    assert starts == [top for top, _ in windows(length, tile_length, size - overlap)]
    assert len(starts) == max(math.ceil((length - tile_length) / (size - overlap)), 0) + 1


def test_a_side_shorter_than_the_tile_is_one_tile_its_length():
    """A 12 x 70 image under 16 px tiles: one row of tiles 12 px high; a constant network stays constant."""

    class Constant(nn.Module):
        def forward(self, x):
            return {"out": torch.ones(x.shape[0], 2, *x.shape[-2:]) * 3.0}

    logits, count = predict_logits(Constant(), photo(12, 70), "cpu", None, flip=False, tile={"size": 16, "overlap": 7})
    assert logits.shape == (2, 12, 70) and count == 1
    torch.testing.assert_close(logits, torch.full((2, 12, 70), 3.0))


@pytest.mark.parametrize(
    "tile, message",
    [
        ({"size": 8, "overlap": 0}, "8"),
        ({"size": 64, "overlap": -1}, "-1"),
        ({"size": 64}, "overlap"),
        ({"size": 64, "overlap": 8, "stride": 56}, "stride"),
        ({"size": 64.5, "overlap": 8}, "64.5"),
    ],
)
def test_the_schema_refuses_bad_tiles(tile, message):
    inference = {"scales": [1.0], "flip": True, "crf": None}
    validate(config_with({"segmentation": {"inference": {**inference, "tile": {"size": 64, "overlap": 63}}}}), SCHEMA)
    validate(config_with({"segmentation": {"inference": inference}}), SCHEMA)  # older configs without the key
    with pytest.raises(Exception, match=message):
        validate(config_with({"segmentation": {"inference": {**inference, "tile": tile}}}), SCHEMA)


@pytest.mark.parametrize("overlap", [64, 100])
def test_an_overlap_of_at_least_the_size_is_said_in_words(overlap):
    """JSON Schema cannot compare two values: the config checks (run before the schema) and the library say it."""
    schema = {"properties": {}}
    config = config_with({"segmentation": {"inference": {"tile": {"size": 64, "overlap": overlap}}}})
    assert config_errors(config, schema, "experiments.t: ") == [
        f"experiments.t: segmentation.inference.tile: overlap {overlap} needs to be less than size 64"
        " (the tiles move on by size - overlap)"
    ]
    assert config_errors(config_with({"segmentation": {"inference": {"tile": {"size": 64, "overlap": 63}}}}), {}) == []
    with pytest.raises(ValueError, match="overlap < size"):
        check_tile({"size": 64, "overlap": overlap})


def test_the_note_names_the_tiles_and_is_unchanged_without_them():
    config = config_with()
    assert config["segmentation"]["inference"]["tile"] is None
    assert registry.segmentation_note(config) == "deeplabv3 on efficientnet_lite0; scale 1 + flip"
    tiled = config_with({"segmentation": {"inference": {"tile": {"size": 256, "overlap": 64}}}})
    assert registry.segmentation_note(tiled) == "deeplabv3 on efficientnet_lite0; scale 1 + flip + tiles 256/64"


def test_tiles_re_predict_with_the_same_networks_and_null_keeps_the_old_params():
    """tile is a prediction key: an experiment that sets it shares the trained networks and predicts anew (val
    predictions and the segment step); null leaves the predictions' settings as they were before the key."""
    config = config_with({"segment": {"images": "photos"}})
    for step in ("predictions", "segment"):
        settings = registry.own_settings(config, step, "pseudo_mask")
        assert settings["segmentation"]["inference"] == {"scales": [1.0], "flip": True, "crf": None}
    tile = {"size": 96, "overlap": 16}
    tiled = config_with({"segment": {"images": "photos"}, "segmentation": {"inference": {"tile": tile}}})
    for step in ("predictions", "segment"):
        assert registry.own_settings(tiled, step, "pseudo_mask")["segmentation"]["inference"]["tile"] == tile
    grid = Grid(dict(config_with(), experiments={"a": {}, "tiles": {"segmentation": {"inference": {"tile": tile}}}}))
    for supervision in ("pseudo_mask", "ground_truth"):
        assert grid.owner("tiles", "segmentation", supervision) == "a"
        assert grid.owner("tiles", "predictions", supervision) == "tiles"
