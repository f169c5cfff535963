"""CAM expansion inside the classifier (classifier.method): each method's defining property on tiny inputs."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from snakemake.utils import validate

from tests.helpers import SETTINGS, assert_same_weights, config_with, train
from tests.workflow_helpers import REPO
from wsss.data.labels import image_labels, load_labels
from wsss.data.voc import VOC_CLASSES
from wsss.nets.checkpoints import save_model
from wsss.nets.expansion import (
    CLASSES,
    ACoLClassifier,
    PixelCorrelation,
    acol_erase_mask,
    make_classifier,
    max_norm,
    pcm_input,
    seam_losses,
)
from wsss.nets.models import Classifier
from wsss.pipeline.registry import CLASSIFIER_METHODS
from wsss.seeds.cam import DEFAULT_SETTINGS, image_cams, multiscale_cam
from wsss.training.classifier import load_classifier

SCHEMA = str(REPO / "workflow/schemas/config.schema.yaml")
METHOD_SETTINGS = {
    "cam": None,
    "seam": {"scale": 0.5, "er_weight": 1.0, "ecr_weight": 1.0, "min_pool_weight": 1.0},
    "acol": {"threshold": 0.6},
    "multi_dilation": {"rates": [1, 2, 3]},
}


def model_of(method, arch="resnet18", classes=20, seed=0, **settings):
    torch.manual_seed(seed)
    return make_classifier(method, arch, classes, 16, method_settings={**(METHOD_SETTINGS[method] or {}), **settings})


def ramp(size, slopes):
    """(1, K, size, size) maps a*i + b*j + c, one (a, b, c) per class: bilinear resizing with aligned corners is
    exact on them and keeps their extrema (at the corners)."""
    steps = torch.arange(size, dtype=torch.float32)
    i, j = torch.meshgrid(steps, steps, indexing="ij")
    return torch.stack([a * i + b * j + c for a, b, c in slopes])[None]


def branch(raw, size):
    """A SEAM branch's outputs with the raw CAM given and PCM the identity on pcm_input."""
    return {"raw": raw, "pcm": pcm_input(raw), "logits": raw.mean((2, 3)), "size": (size, size)}


# --- SEAM


def test_seam_equivariance_loss_is_zero_for_an_equivariant_map_and_positive_otherwise():
    slopes = [(1.0, 2.0, 0.5), (3.0, 0.5, 1.0), (0.2, 0.1, 0.0)]
    full = ramp(9, slopes)  # 9 px, 5 px at scale ~0.5: the corners kept
    small = F.interpolate(full, size=(5, 5), mode="bilinear", align_corners=True)
    targets = torch.tensor([[1.0, 1.0, 0.0]])
    equivariant = seam_losses(branch(full, 9), branch(small, 5), targets)["er"]
    assert equivariant < 1e-5
    # not equivariant: the small image's map of class 1 peaks elsewhere
    other = small.clone()
    other[:, 0] = small[:, 0].flip(-1)
    assert seam_losses(branch(full, 9), branch(other, 5), targets)["er"] > 0.05
    # a class absent from the image is zeroed before the loss, whatever its maps
    absent = small.clone()
    absent[:, 2] = small[:, 2].flip(-1, -2) * 7
    assert seam_losses(branch(full, 9), branch(absent, 5), targets)["er"] < 1e-5


def test_max_norm_is_seams():
    maps = torch.tensor([[[[-1.0, 0.0], [2.0, 4.0]]]])
    expected = F.relu(F.relu(maps) - 0 - 1e-5) / (4 + 1e-5)
    torch.testing.assert_close(max_norm(maps), expected)


def test_pcm_input_keeps_the_winning_foreground_class_and_derives_the_background():
    raw = torch.randn(2, 4, 5, 6)
    maps = pcm_input(raw)
    assert maps.shape == (2, 5, 5, 6)
    foreground = maps[:, 1:]
    assert (foreground <= 1).all() and (foreground >= 0).all()
    assert ((foreground > 0).sum(1) <= 1).all()  # one foreground class per pixel at most
    normalised = F.relu(F.relu(raw) - 1e-5) / (F.relu(raw).amax((2, 3), keepdim=True) + 1e-5)
    torch.testing.assert_close(maps[:, 0], 1 - normalised.amax(1))
    torch.testing.assert_close(foreground.amax(1), normalised.amax(1))


def test_pcm_keeps_shape_normalisation_and_channels_apart():
    torch.manual_seed(0)
    pcm = PixelCorrelation(8, 16)
    image, f2, f3 = torch.randn(2, 3, 20, 24), torch.randn(2, 8, 10, 12), torch.randn(2, 16, 5, 6)
    maps = torch.rand(2, 4, 5, 6)
    out = pcm(maps, image, f2, f3)
    assert out.shape == maps.shape
    # every output pixel is a convex combination of its channel's input pixels
    low, high = maps.amin((2, 3), keepdim=True), maps.amax((2, 3), keepdim=True)
    assert (out >= low - 1e-5).all() and (out <= high + 1e-5).all()
    constant = torch.full_like(maps, 0.7)
    torch.testing.assert_close(pcm(constant, image, f2, f3), constant, atol=1e-4, rtol=0)
    # channels do not mix: the background channel changes nothing in the foreground ones
    torch.testing.assert_close(pcm(maps[:, 1:], image, f2, f3), out[:, 1:])
    # orthogonal embeddings (one per position): the affinity is the identity and PCM changes nothing
    identity = torch.eye(30).view(1, 30, 5, 6).expand(2, -1, -1, -1)
    torch.testing.assert_close(pcm.propagate(maps, identity), maps, atol=1e-4, rtol=0)


def test_seam_pcm_losses_train_only_the_pcm():
    model = model_of("seam").train()
    x, targets = torch.randn(2, 3, 64, 64), torch.tensor([[1.0] + [0.0] * 19, [0.0, 1.0] + [0.0] * 18])
    outputs = model(x)
    assert set(outputs) >= {"logits", "raw", "pcm", "small"} and outputs["small"]["raw"].shape[-1] == 2
    losses = seam_losses(outputs, outputs["small"], targets)
    head, backbone, pcm = model.classifier.weight, model.features.stages[-1][0].conv1.weight, model.pcm.mix.weight
    for name in ("ecr", "min_pool"):
        gradients = torch.autograd.grad(losses[name], [head, backbone, pcm], retain_graph=True, allow_unused=True)
        assert gradients[0] is None and gradients[1] is None, name
        assert gradients[2] is not None and gradients[2].abs().sum() > 0, name
    for name in ("cls", "er"):
        gradients = torch.autograd.grad(losses[name], [head, backbone], retain_graph=True)
        assert all(g.abs().sum() > 0 for g in gradients), name
    total = losses["cls"] + losses["er"] + losses["ecr"] + losses["min_pool"]
    torch.testing.assert_close(model.loss(outputs, targets), total)
    assert "small" not in model.eval()(x)  # the second pass is for training only


def test_seam_trains_under_autocast():
    """On a GPU the backbone runs under autocast (float16) and hands the PCM half-precision features; the PCM turns
    autocast off and must take them as float32 (CPU's bfloat16 autocast shows it here, with no GPU)."""
    model = model_of("seam").train()
    x, targets = torch.randn(2, 3, 64, 64), torch.tensor([[1.0] + [0.0] * 19, [0.0, 1.0] + [0.0] * 18])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outputs = model(x)
        loss = model.loss(outputs, targets)
    assert outputs["pcm"].dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()


def test_seam_cam_is_the_pcm_foreground_less_its_floor():
    model = model_of("seam").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        pcm = model.branch(x)["pcm"][:, 1:]
        cam = model.cam(x)
    # min-max normalised after the pipeline's peak division, as infer_SEAM.py: each map's lowest pixel is 0
    torch.testing.assert_close(cam, pcm - pcm.amin((2, 3), keepdim=True))
    assert (cam.amin((2, 3)) == 0).all() and (pcm.amin((2, 3)) > 0).any()


# --- ACoL


def test_acol_erases_exactly_the_ground_truth_regions_at_the_threshold():
    maps = torch.tensor([[[[0.0, 0.5, 0.6, 1.0]], [[1.0, 0.0, 0.2, 0.3]], [[2.0, 4.0, 6.0, 8.0]]]])  # (1, 3, 1, 4)
    targets = torch.tensor([[1.0, 1.0, 0.0]])
    mask = acol_erase_mask(maps, targets, 0.6)
    # class 1: min-max normalised 0, .5, .6, 1 -> the last two erased (a pixel at the threshold is erased);
    # class 2 its own peak; class 3 absent: nothing erased
    expected = torch.tensor([[[[1.0, 1.0, 0.0, 0.0]], [[0.0, 1.0, 1.0, 1.0]], [[1.0, 1.0, 1.0, 1.0]]]])
    torch.testing.assert_close(mask, expected)
    assert (acol_erase_mask(maps, None, 0.6)[0, 2] == torch.tensor([1.0, 1.0, 0.0, 0.0])).all()  # 0, 1/3, 2/3, 1


def test_acols_second_head_sees_the_features_with_the_first_heads_region_erased():
    model = model_of("acol", classes=3).train()
    x, targets = torch.randn(2, 3, 64, 64), torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    outputs = model(x)
    features = model.features(x)
    mask = acol_erase_mask(model.classifier(features), targets, model.threshold)
    # head B of class c on the features with c's region erased (every channel), pooled
    logits_b = torch.stack([model.classifier_b(features * mask[:, c : c + 1]).mean((2, 3))[:, c] for c in range(3)], 1)
    expected = F.multilabel_soft_margin_loss(model.classifier(features).mean((2, 3)), targets)
    expected = expected + F.multilabel_soft_margin_loss(logits_b, targets)
    torch.testing.assert_close(model.loss(outputs, targets), expected)
    assert mask.min() == 0  # something was erased
    # head A learns from its own loss only: B's term gives it no gradient
    b_term = model.loss(outputs, targets) - F.multilabel_soft_margin_loss(outputs["logits"], targets)
    (gradient,) = torch.autograd.grad(b_term, [model.classifier.weight])
    assert not gradient.any()


def test_acol_cam_is_the_max_of_both_heads_normalised():
    model = model_of("acol", classes=3).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        features = model.features(x)
        a = model.classifier(features)
        b = model.classifier_b(features) * acol_erase_mask(a, None, model.threshold)
        cam = model.cam(x)

    def peak(m):
        return F.relu(m) / (F.relu(m).amax((2, 3), keepdim=True) + 1e-5)

    torch.testing.assert_close(cam, torch.maximum(peak(a), peak(b)))
    assert cam.max() <= 1


# --- multi-dilation


def test_multi_dilation_with_rate_one_is_the_plain_classifier():
    plain, single = Classifier("resnet18", 20, 16).eval(), model_of("multi_dilation", rates=[1]).eval()
    assert single.state_dict().keys() == plain.state_dict().keys()
    single.load_state_dict(plain.state_dict())
    x, targets = torch.randn(2, 3, 64, 64), (torch.rand(2, 20) < 0.3).float()
    with torch.no_grad():
        assert torch.equal(single.cam(x), plain.cam(x)) and torch.equal(single(x), plain(x))
        assert torch.equal(single.loss(single(x), targets), plain.loss(plain(x), targets))


def test_multi_dilation_cam_adds_the_mean_of_the_dilated_maps():
    model = model_of("multi_dilation", rates=[1, 3, 2]).eval()
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        features = model.features(x)
        dilated = [F.conv2d(features, conv.weight, padding=d, dilation=d) for conv, d in zip(model.dilated, (3, 2))]
        assert all(m.shape[-2:] == features.shape[-2:] for m in dilated)
        expected = F.relu(model.classifier(features)) + (F.relu(dilated[0]) + F.relu(dilated[1])) / 2
        torch.testing.assert_close(model.cam(x), expected)
        outputs = model.train()(x)
    targets = (torch.rand(1, 20) < 0.3).float()
    branches = [outputs["logits"], *outputs["dilated_logits"]]
    expected_loss = sum(F.multilabel_soft_margin_loss(logits, targets) for logits in branches)
    torch.testing.assert_close(model.loss(outputs, targets), expected_loss)


# --- every method


def test_the_methods_are_the_schemas():
    schema = yaml.safe_load(open(SCHEMA))
    assert tuple(schema["properties"]["classifier"]["properties"]["method"]["enum"]) == CLASSIFIER_METHODS
    assert tuple(CLASSES) == CLASSIFIER_METHODS
    assert set(CLASSIFIER_METHODS[1:]) <= set(schema["properties"]["classifier"]["properties"])


@pytest.mark.parametrize("arch", ["resnet18", "efficientnet_lite0"])
@pytest.mark.parametrize("method", CLASSIFIER_METHODS[1:])
def test_every_method_writes_cams_in_the_usual_format(method, arch):
    model = model_of(method, arch).eval()
    image = np.random.default_rng(0).integers(0, 256, (37, 53, 3)).astype(np.uint8)
    settings = {**DEFAULT_SETTINGS, "scales": [1.0, 0.5]}
    cams = image_cams(model, image, [9, 2], settings, "cpu")
    assert cams.shape == (2, 37, 53) and cams.dtype == np.float16 and np.isfinite(cams).all() and cams.min() >= 0
    # 0 where SEAM's PCM input gives every pixel to another class (its argmax runs over all classes, as SEAM's)
    assert all(channel.max() == pytest.approx(1.0, abs=1e-3) or channel.max() == 0 for channel in cams)
    even = image[:32, :48]  # sizes that halve evenly down to the last stage: the flip is exact
    flipped = multiscale_cam(model, np.ascontiguousarray(even[:, ::-1]), [2, 9], {**settings, "scales": [1.0]}, "cpu")
    straight = multiscale_cam(model, even, [2, 9], {**settings, "scales": [1.0]}, "cpu")
    torch.testing.assert_close(straight, flipped.flip(-1), rtol=1e-4, atol=1e-4)
    assert image_cams(model, image, [9, 2], {**settings, "nwc": True}, "cpu").max() == pytest.approx(1.0, abs=1e-3)
    with pytest.raises(ValueError, match="classifier.method"):
        image_cams(model, image, [9], {**settings, "method": "gradcam"}, "cpu")


@pytest.mark.parametrize("method", CLASSIFIER_METHODS[1:])
def test_saved_models_keep_their_method(method, tmp_path):
    model = model_of(method).eval()
    meta = dict(arch="resnet18", output_stride=16, num_foreground=20, pooling="gap", tap_threshold=0.0)
    save_model(tmp_path / "m.pt", model, **meta, method=method, method_settings=model.method_settings())
    loaded = load_classifier(tmp_path / "m.pt")
    assert type(loaded) is type(model) and loaded.method_settings() == model.method_settings()
    assert_same_weights(loaded.state_dict(), model.state_dict())
    save_model(tmp_path / "old.pt", Classifier("resnet18", 20, 16), **meta)  # saved before classifier.method
    assert type(load_classifier(tmp_path / "old.pt")) is Classifier


def test_bad_method_settings_name_their_key():
    with pytest.raises(ValueError, match="classifier.method"):
        make_classifier("seem", "resnet18", 20)
    with pytest.raises(ValueError, match="classifier.seam.scale"):
        make_classifier("seam", "resnet18", 20, method_settings={"scale": 1.5})
    with pytest.raises(ValueError, match="classifier.acol.threshold"):
        make_classifier("acol", "resnet18", 20, method_settings={"threshold": 0})
    with pytest.raises(ValueError, match="classifier.multi_dilation.rates"):
        make_classifier("multi_dilation", "resnet18", 20, method_settings={"rates": [3, 6]})
    with pytest.raises(ValueError, match="classifier.pooling"):
        make_classifier("seam", "resnet18", 20, pooling="tap")


@pytest.mark.parametrize(
    "override, message",
    [
        ({"classifier": {"method": "seam"}, "cam": {"method": "gradcampp"}}, "cam"),
        ({"classifier": {"method": "multi_dilation", "pooling": "tap"}}, "gap"),
        ({"classifier": {"method": "acol", "acol": {"threshold": 0}}}, "0"),
        ({"classifier": {"method": "multi_dilation", "multi_dilation": {"rates": [3, 6]}}}, "contain"),
        ({"classifier": {"method": "seam", "seam": {"scale": 1}}}, "1"),
    ],
)
def test_the_schema_refuses_what_the_methods_cannot_do(override, message):
    validate(config_with({"classifier": {"method": "acol"}, "cam": {"nwc": True}}), SCHEMA)
    grid = yaml.safe_load((REPO / "config/demo-expansion.yaml").read_text())
    assert {"cam", "cam_erasing", "hide_and_seek", *CLASSIFIER_METHODS} <= set(grid["experiments"])
    for experiment in grid["experiments"].values():
        validate(config_with(experiment), SCHEMA)
    with pytest.raises(Exception, match=message):
        validate(config_with(override), SCHEMA)


@pytest.fixture(scope="module")
def labels(demo_data, tmp_path_factory):
    path = tmp_path_factory.mktemp("labels") / "labels.parquet"
    image_labels(demo_data, demo_data.split_ids("train"), len(VOC_CLASSES)).to_parquet(path)
    return load_labels(path)


@pytest.mark.parametrize("method", CLASSIFIER_METHODS[1:])
def test_every_method_trains_and_is_deterministic(method, demo_data, labels, tmp_path):
    settings = {
        **SETTINGS,
        "epochs": 1,
        "resize_long": [40, 56],
        "crop_size": 48,
        "method": method,
        method: METHOD_SETTINGS[method],
    }
    ids = demo_data.split_ids("train")[:12]
    first = train(demo_data, ids, labels, settings, 3, tmp_path, "a")
    second = train(demo_data, ids, labels, settings, 3, tmp_path, "b")
    assert np.isfinite(first["loss"]).all() and 0 <= first["mAP"][0] <= 1
    np.testing.assert_array_equal(first["loss"], second["loss"])
    a, b = load_classifier(tmp_path / "a.pt"), load_classifier(tmp_path / "b.pt")
    assert isinstance(a, ACoLClassifier) == (method == "acol") and a.method == method
    assert_same_weights(a.state_dict(), b.state_dict())
