"""Real-photo-like data: JPEGs of 300-640 px, grayscale, CMYK and EXIF-rotated, and inference at the long side
the networks train at (cam.long_side, segmentation.long_side), resized back to each image."""

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
import yaml
from PIL import Image
from snakemake.utils import validate

from tests.helpers import (
    config_with,
)
from tests.voc_data import index_voc, make_photo_tree
from tests.workflow_helpers import REPO
from wsss.data.labels import image_labels
from wsss.data.voc import VOC_CLASSES, DataError, read_image, read_mask, write_mask
from wsss.nets.hardware import autocast, memory_format
from wsss.nets.models import Classifier, segmentation_model
from wsss.nets.transforms import long_side_size, resize_image, to_tensor
from wsss.pipeline.experiments import Grid
from wsss.scoring.segments import gather_segmented
from wsss.seeds.cam import DEFAULT_SETTINGS, aligned_size, image_cams, method_maps, multiscale_cam, normalise, upsample
from wsss.training.segmentation import predict, predict_images

SCALES = [1.0, 0.5, 1.5, 2.0]  # the default config's


@pytest.fixture(scope="module")
def classifier():
    torch.manual_seed(0)
    return Classifier("resnet18", 20, 16).eval()


@pytest.fixture(scope="module")
def segmenter():
    torch.manual_seed(0)
    return segmentation_model("deeplabv3", "resnet18", 21, 16).eval()


def photo(height=375, width=500, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3)).astype(np.uint8)


class InputRecorder:
    """A classifier that records the (H, W) of every batch its CAMs are computed on."""

    def __init__(self, model):
        self.model, self.output_stride, self.sizes = model, model.output_stride, []

    def cam(self, batch, nwc=False):
        self.sizes.append(tuple(batch.shape[-2:]))
        return self.model.cam(batch, nwc)


def reference_multiscale_cam(model, image, class_ids, settings):
    """multiscale_cam as it was before long_side (commit 036a6a9), on CPU: each image at its own size."""
    height, width = image.shape[:2]
    indices = [c - 1 for c in sorted(class_ids)]
    method = settings["method"]
    size = (height, width) if method == "layer_fused" else aligned_size(height, width, model.output_stride)
    total = None
    for scale in settings["scales"]:
        scaled = (
            image
            if scale == 1
            else resize_image(image, max(1, round(height * scale)), max(1, round(width * scale)), Image.BICUBIC)
        )
        x = to_tensor(scaled)
        pair = torch.stack([x, x.flip(-1)])
        with torch.no_grad():
            cams = method_maps(model, pair, indices, settings, (height, width))
            if method == "cam":
                cams = cams[:, indices]
            cams = upsample((cams[0] + cams[1].flip(-1))[:, None], size)[:, 0]
            total = cams if total is None else total + cams
    return total[:, :height, :width].float()


@torch.no_grad()
def reference_predict(model, image):
    """segmentation.predict as it was before long_side (commit 036a6a9), on CPU."""
    device = torch.device("cpu")
    x = to_tensor(image)
    pair = torch.stack([x, x.flip(-1)]).to(device, memory_format=memory_format(device))
    with autocast(device):
        logits = model(pair)["out"].float()
    logits = logits[0] + logits[1].flip(-1)
    return logits.argmax(0).numpy().astype(np.uint8)


def test_long_side_size_keeps_the_aspect_and_enlarges_small_images():
    assert long_side_size(375, 500, 128) == (96, 128)
    assert long_side_size(640, 300, 128) == (128, 60)
    assert long_side_size(50, 40, 128) == (128, 102)  # smaller than long_side: enlarged, as training rescales it
    assert long_side_size(375, 500, None) == (375, 500) and long_side_size(375, 500, 500) == (375, 500)
    assert long_side_size(1, 900, 128) == (1, 128)  # never 0 px


def test_cams_at_long_side_have_the_image_size_and_the_network_sees_the_long_side(classifier):
    image = photo(375, 500)
    recorder = InputRecorder(classifier)
    settings = {**DEFAULT_SETTINGS, "scales": SCALES, "long_side": 128}
    cams = image_cams(recorder, image, [15, 3], settings, "cpu")
    assert cams.shape == (2, 375, 500) and cams.dtype == np.float16  # one channel per image-level class
    # the image at a 128 px long side (96 x 128), then each scale of it, with its flip in the same batch
    assert recorder.sizes == [(round(96 * s), round(128 * s)) for s in SCALES]
    assert [max(size) for size in recorder.sizes] == [round(128 * s) for s in SCALES]
    # = the multi-scale sum of the bicubic 96 x 128 image, resized bilinearly to 375 x 500, then normalised
    small = reference_multiscale_cam(classifier, resize_image(image, 96, 128, Image.BICUBIC), [3, 15], settings)
    expected = normalise(F.interpolate(small[:, None], size=(375, 500), mode="bilinear", align_corners=False)[:, 0])
    np.testing.assert_array_equal(cams, expected.numpy().astype(np.float16))
    for channel in cams.astype(np.float32):
        assert channel.min() >= 0 and channel.max() == pytest.approx(1.0, abs=1e-3)


def test_portrait_cams_use_the_height_as_long_side(classifier):
    recorder = InputRecorder(classifier)
    cams = multiscale_cam(recorder, photo(600, 320), [7], {**DEFAULT_SETTINGS, "scales": [1.0], "long_side": 64}, "cpu")
    assert cams.shape == (1, 600, 320) and recorder.sizes == [(64, 34)]


@pytest.mark.parametrize("method", ["cam", "gradcam", "layer_fused"])
def test_cams_without_long_side_are_bit_identical_to_before(classifier, method):
    image = photo(45, 61, seed=1)
    settings = {**DEFAULT_SETTINGS, "scales": [1.0, 0.5, 1.5], "method": method}
    reference = reference_multiscale_cam(classifier, image, [2, 9], settings)
    for long_side in (None, 61):  # null, or the image's own long side: the image as it is
        cams = multiscale_cam(classifier, image, [9, 2], {**settings, "long_side": long_side}, "cpu")
        assert torch.equal(cams, reference), long_side
        np.testing.assert_array_equal(
            image_cams(classifier, image, [2, 9], {**settings, "long_side": long_side}, "cpu"),
            normalise(reference).numpy().astype(np.float16),
        )


def test_predictions_at_long_side_have_the_image_size(segmenter):
    image = photo(375, 500, seed=2)
    sizes = []
    hook = segmenter.register_forward_pre_hook(lambda module, args: sizes.append(tuple(args[0].shape)))
    try:
        prediction = predict(segmenter, image, "cpu", long_side=128)
    finally:
        hook.remove()
    assert prediction.shape == (375, 500) and prediction.dtype == np.uint8 and prediction.max() < 21
    assert sizes == [(2, 3, 96, 128)]  # the image and its flip, at a 128 px long side
    # the summed logits of the bicubic 96 x 128 image and its flip, resized bilinearly to 375 x 500
    x = to_tensor(resize_image(image, 96, 128, Image.BICUBIC))
    with torch.no_grad():
        logits = segmenter(torch.stack([x, x.flip(-1)]))["out"]
    logits = F.interpolate(
        (logits[0] + logits[1].flip(-1))[None], size=(375, 500), mode="bilinear", align_corners=False
    )
    np.testing.assert_array_equal(prediction, logits[0].argmax(0).numpy().astype(np.uint8))


def test_new_photos_get_label_maps_overlays_and_a_table(segmenter, tmp_path):
    """Segmenting a folder of photos (results/segmented): a palette label map at each photo's size, its overlay,
    resumable shard by shard, gathered with a table of each photo's classes and their share of its pixels."""
    sizes = {"a": (61, 90), "b": (120, 47), "c": (33, 33)}
    paths = {}
    for image_id, (height, width) in sizes.items():
        paths[image_id] = tmp_path / "photos" / f"{image_id}.jpg"
        paths[image_id].parent.mkdir(exist_ok=True)
        Image.fromarray(photo(height, width, seed=len(paths))).save(paths[image_id])
    shards = [tmp_path / "shard0", tmp_path / "shard1"]
    predict_images(segmenter, {"a": paths["a"]}, shards[0] / "labels", "cpu", 64, overlay_dir=shards[0] / "overlays")
    first = (shards[0] / "labels" / "a.png").stat().st_mtime_ns
    shard0 = {"a": paths["a"], "b": paths["b"]}
    predict_images(segmenter, shard0, shards[0] / "labels", "cpu", 64, overlay_dir=shards[0] / "overlays")
    assert (shards[0] / "labels" / "a.png").stat().st_mtime_ns == first  # written once: a rerun resumes
    predict_images(segmenter, {"c": paths["c"]}, shards[1] / "labels", "cpu", 64, overlay_dir=shards[1] / "overlays")
    table = gather_segmented(shards, tmp_path / "segmented", list(VOC_CLASSES))
    for image_id, (height, width) in sizes.items():
        with Image.open(tmp_path / "segmented" / "labels" / f"{image_id}.png") as label:
            assert label.mode == "P" and label.size == (width, height)
            counts = np.bincount(np.asarray(label).ravel(), minlength=256)
        with Image.open(tmp_path / "segmented" / "overlays" / f"{image_id}.jpg") as overlay:
            assert overlay.format == "JPEG" and overlay.size == (width, height)
        own = table[table["image"] == image_id]
        assert own["pixels"].sum() == height * width and np.isclose(own["fraction"].sum(), 1)
        assert dict(zip(own["class_id"], own["pixels"])) == {c: n for c, n in enumerate(counts) if n}
        assert list(own["class"]) == [VOC_CLASSES[c] for c in own["class_id"]]
    assert table.equals(pd.read_parquet(tmp_path / "segmented" / "segments.parquet"))


def test_predictions_without_long_side_are_bit_identical_to_before(segmenter):
    image = photo(53, 70, seed=3)
    reference = reference_predict(segmenter, image)
    for long_side in (None, 70):
        np.testing.assert_array_equal(predict(segmenter, image, "cpu", long_side=long_side), reference)
    np.testing.assert_array_equal(predict(segmenter, image, "cpu"), reference)  # None by default


def test_grayscale_cmyk_palette_and_alpha_images_are_read_as_rgb(tmp_path):
    rgb = photo(20, 30, seed=4)
    gray = rgb[..., 0]
    Image.fromarray(gray).save(tmp_path / "gray.png")
    np.testing.assert_array_equal(read_image(tmp_path / "gray.png"), np.stack([gray] * 3, -1))
    palette = Image.fromarray(rgb).quantize(16)
    palette.save(tmp_path / "palette.png")
    np.testing.assert_array_equal(read_image(tmp_path / "palette.png"), np.asarray(palette.convert("RGB")))
    Image.fromarray(rgb).convert("RGBA").save(tmp_path / "alpha.png")
    np.testing.assert_array_equal(read_image(tmp_path / "alpha.png"), rgb)
    Image.new("CMYK", (30, 20), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg", quality=95)  # pure red in CMYK
    red = read_image(tmp_path / "cmyk.jpg")
    assert red.shape == (20, 30, 3) and red.dtype == np.uint8
    np.testing.assert_allclose(red.reshape(-1, 3).mean(0), [255, 0, 0], atol=3)
    for path in ("gray.png", "palette.png", "alpha.png", "cmyk.jpg"):
        image = read_image(tmp_path / path)
        assert image.dtype == np.uint8 and image.shape == (20, 30, 3) and image.flags.writeable, path


def test_photo_tree_images_are_rgb_at_their_stored_size(photo_tree):
    root, kinds = photo_tree
    tree = index_voc(root, root.parent / "photo-index")
    assert {"L", "CMYK", "exif6", "exif8"} <= set(kinds.values())
    for image_id, kind in kinds.items():
        with Image.open(tree.image_path(image_id)) as stored:
            assert stored.mode == ("RGB" if kind.startswith("exif") else kind)
            assert stored.getexif().get(0x0112) == (int(kind[4:]) if kind.startswith("exif") else None)
            width, height = stored.size
        image = read_image(tree.image_path(image_id))
        assert image.shape == (height, width, 3) and image.dtype == np.uint8  # EXIF orientation not applied
        assert 300 <= max(height, width) <= 640
        assert read_mask(tree.mask_path(image_id), 21).shape == (height, width)
    frame = image_labels(tree, sorted(kinds), 21).set_index("image_id")
    for image_id in kinds:
        mask = read_mask(tree.mask_path(image_id), 21)
        assert (frame.loc[image_id, "height"], frame.loc[image_id, "width"]) == mask.shape
        assert list(frame.loc[image_id, "class_ids"]) == sorted(set(np.unique(mask)) - {0, 255})


@pytest.mark.parametrize("orientation", [None, 6])
def test_a_mask_of_another_size_names_both_files(tmp_path, orientation):
    root = tmp_path / "VOC2012"
    make_photo_tree(root, num_train=1, num_val=0)
    tree = index_voc(root, tmp_path / "index", ["train"])
    image_path, mask_path = tree.image_path("train_000"), tree.mask_path("train_000")
    image = Image.open(image_path).convert("RGB")
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    image.save(image_path, exif=exif)
    # a mask drawn on the rotated view, as a viewer shows an EXIF-rotated photo
    write_mask(mask_path, np.ascontiguousarray(read_mask(mask_path, 21).T))
    with pytest.raises(DataError) as error:
        image_labels(tree, ["train_000"], 21)
    message = str(error.value)
    height, width = image.height, image.width
    assert f"mask {mask_path} is {width}x{height}" in message and f"image {image_path} is {height}x{width}" in message
    assert ("EXIF orientation 6" in message) == (orientation == 6)


def test_default_config_infers_at_128_and_voc2012_at_full_size():
    default = config_with()
    assert default["cam"]["long_side"] == 128 and default["segmentation"]["long_side"] == 128
    voc = config_with(yaml.safe_load((REPO / "config/voc2012.yaml").read_text()))
    assert voc["cam"]["long_side"] is None and voc["segmentation"]["long_side"] is None
    schema = str(REPO / "workflow/schemas/config.schema.yaml")
    validate(default, schema)
    validate(voc, schema)
    for bad in (0, 2.5, "128"):
        with pytest.raises(Exception, match="long_side"):
            validate(config_with({"cam": {"long_side": bad}}), schema)
        with pytest.raises(Exception, match="long_side"):
            validate(config_with({"segmentation": {"long_side": bad}}), schema)


def test_runs_with_another_long_side_share_the_networks_not_their_cams_or_predictions():
    grid = Grid(
        dict(
            config_with(),
            experiments={
                "a": {},
                "cam_full": {"cam": {"long_side": None}},
                "seg_full": {"segmentation": {"long_side": None}},
            },
        )
    )
    assert grid.owner("cam_full", "classifier", 0) == "a"
    assert grid.owner("cam_full", "cams", 0) == "cam_full" and grid.owner("cam_full", "cams", 1) == "cam_full"
    assert grid.owner("seg_full", "cams", 1) == "a" and grid.owner("seg_full", "pseudo_masks") == "a"
    for supervision in ("pseudo_mask", "ground_truth"):  # the same networks, predicting at another size
        assert grid.owner("seg_full", "segmentation", supervision) == "a"
        assert grid.owner("seg_full", "predictions", supervision) == "seg_full"


# The tiny config's training on the photo tree, one shard and one round (fewer jobs: each pays for its start);
# CAMs and predictions at a 56 px long side (resize_long's maximum).
