"""CAM methods (Grad-CAM, Grad-CAM++, layer-fused) and "Rethinking CAM" options (TAP, NWC, PaS) against
hand-computed values on networks with known weights, and Hide-and-Seek patches."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import wsss.nets.hardware
import wsss.seeds.cam
from tests import irn_reference as irn
from wsss.nets.checkpoints import save_model
from wsss.nets.models import Classifier, tap
from wsss.nets.transforms import hide_patches, normalised_colour, to_tensor
from wsss.seeds import cam
from wsss.seeds.cam import (
    DEFAULT_SETTINGS,
    gradcampp_weights,
    image_and_grid_cams,
    image_cams,
    method_maps,
    normalise,
    upsample,
    weighted_map,
)
from wsss.training.classifier import load_classifier

HEAD = torch.tensor([[1.0, -2.0, 0.5, 0.0], [-1.0, 0.25, 2.0, -0.5]])  # 2 classes x 4 channels, mixed signs


def settings(**overrides):
    return {**DEFAULT_SETTINGS, "scales": [1.0], **overrides}


def head_only(pooling="gap", tap_threshold=0.0) -> Classifier:
    """A Classifier whose features are its input: CAM methods then see exactly the activations they are given."""
    model = Classifier("resnet18", 2, 16, pooling=pooling, tap_threshold=tap_threshold).eval()
    model.features = nn.Identity()
    model.classifier = nn.Conv2d(4, 2, 1, bias=False)
    with torch.no_grad():
        model.classifier.weight.copy_(HEAD[:, :, None, None])
    return model


def activations(seed=0, shape=(1, 4, 5, 6)) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 3


def resnet(seed=0) -> Classifier:
    torch.manual_seed(seed)
    return Classifier("resnet18", 20, 16).eval()


@pytest.mark.parametrize("size", [(37, 53), (50, 31)])
def test_default_cams_are_irns(rng, size):
    """Bicubic rescale, flip sum, upsampling to the stride-aligned size, crop, scale sum, max normalisation:
    equal to IRN's up to the float16 the files store (and float rounding)."""
    model = resnet()
    image = rng.integers(0, 256, size=(*size, 3)).astype(np.uint8)  # sides not multiples of 16
    scales = [1.0, 0.5, 1.5, 2.0]
    reference, _ = irn.make_cam(model, image, [15, 3, 8], scales)
    cams = image_cams(model, image, [8, 15, 3], settings(scales=scales), "cpu")
    assert cams.dtype == np.float16 and cams.shape == (3, *size)
    np.testing.assert_allclose(cams.astype(np.float32), reference, rtol=0, atol=2.5e-4)  # float16: <= 2^-12
    # the alignment stride is the classifier's output stride
    model.output_stride = 8
    np.testing.assert_allclose(
        image_cams(model, image, [3], settings(scales=scales), "cpu").astype(np.float32),
        irn.make_cam(model, image, [3], scales, stride=8)[0],
        rtol=0,
        atol=2.5e-4,
    )


@pytest.mark.parametrize("size", [(37, 53), (50, 31), (64, 48)])
def test_grid_cams_are_irns_strided_cams(rng, size):
    """The stride-4 CAMs the random walk reads: each scale's flip sum resized straight to ceil(H / 4) x
    ceil(W / 4), summed over scales, each class max-normalised on the grid (IRN's "cam" of make_cam.py)."""
    model = resnet()
    image = rng.integers(0, 256, size=(*size, 3)).astype(np.uint8)
    scales = [1.0, 0.5, 1.5, 2.0]
    high_res, strided = irn.make_cam(model, image, [15, 3, 8], scales)
    cams, grid_cams = image_and_grid_cams(model, image, [8, 15, 3], settings(scales=scales), "cpu")
    assert grid_cams.dtype == np.float16 and grid_cams.shape == (3, -(-size[0] // 4), -(-size[1] // 4))
    np.testing.assert_allclose(grid_cams.astype(np.float32), strided, rtol=0, atol=2.5e-4)
    np.testing.assert_allclose(cams.astype(np.float32), high_res, rtol=0, atol=2.5e-4)
    # at a cam.long_side, the grid is that of the resized image (where the walk at the same long side is)
    _, resized = image_and_grid_cams(model, image, [3], settings(scales=scales, long_side=80), "cpu")
    long = max(size)
    assert resized.shape[1:] == tuple(-(-round(side * 80 / long) // 4) for side in size)
    empty = image_and_grid_cams(model, image, [], settings(scales=scales), "cpu")
    assert empty[0].shape == (0, *size) and empty[1].shape == (0, *grid_cams.shape[1:])


def test_gradcam_equals_cam_for_gap_and_a_linear_head(rng):
    model = resnet(1)
    image = rng.integers(0, 256, size=(40, 56, 3)).astype(np.uint8)
    x = to_tensor(image)[None]
    cam = method_maps(model, x, [4, 11], settings(), None)[:, [4, 11]]
    gradcam = method_maps(model, x, [4, 11], settings(method="gradcam"), None)
    # GAP's gradient is w_ck / (h w) everywhere; summed over the map, the weight is w_ck itself
    torch.testing.assert_close(gradcam, cam, rtol=1e-4, atol=1e-5)
    two_scales = {"scales": [1.0, 0.5]}  # so the scales also weigh alike
    np.testing.assert_allclose(
        image_cams(model, image, [5, 12], settings(method="gradcam", **two_scales), "cpu"),
        image_cams(model, image, [5, 12], settings(**two_scales), "cpu"),
        atol=2e-3,
    )


def test_gradcampp_weights_follow_the_closed_form():
    model = head_only()
    a = activations()
    hw = a.shape[-2] * a.shape[-1]
    for c in (0, 1):
        w = HEAD[c]
        expected = F.relu(w) / (2 + a.sum((2, 3))[0] * w / hw)
        torch.testing.assert_close(gradcampp_weights(a, (w / hw).view(1, 4, 1, 1).expand_as(a)), expected[None])
        maps = method_maps(model, a, [c], settings(method="gradcampp"), None)
        torch.testing.assert_close(maps[:, 0], weighted_map(a, expected[None]))


def test_gradcampp_weight_is_zero_where_there_is_no_gradient():
    a, g = activations(), torch.zeros(1, 4, 5, 6)
    assert torch.equal(gradcampp_weights(a, g), torch.zeros(1, 4))


def test_nwc_drops_exactly_the_negative_weights():
    model = head_only()
    a = activations(2)
    plain = method_maps(model, a, [0, 1], settings(), None)
    clamped = method_maps(model, a, [0, 1], settings(nwc=True), None)  # classic CAM: every class
    torch.testing.assert_close(clamped, F.relu(F.conv2d(a, HEAD.clamp(min=0)[:, :, None, None])))
    torch.testing.assert_close(plain, F.relu(F.conv2d(a, HEAD[:, :, None, None])))
    assert (clamped > plain + 0.1).any()  # where negative weights matter, the maps differ
    gradcam = method_maps(model, a, [0, 1], settings(method="gradcam", nwc=True), None)
    torch.testing.assert_close(gradcam, clamped)


def test_nwc_changes_neither_gradcampp_nor_layer_fused(rng):
    a, model = activations(3), head_only()
    torch.testing.assert_close(
        method_maps(model, a, [0, 1], settings(method="gradcampp", nwc=True), None),
        method_maps(model, a, [0, 1], settings(method="gradcampp"), None),
    )
    model = resnet(2)
    image = rng.integers(0, 256, size=(32, 40, 3)).astype(np.uint8)
    fused = settings(method="layer_fused")
    np.testing.assert_array_equal(
        image_cams(model, image, [2], {**fused, "nwc": True}, "cpu"), image_cams(model, image, [2], fused, "cpu")
    )


def test_layer_fused_on_the_last_stage_alone_is_the_nwc_cam(rng):
    model = resnet(3)
    x = to_tensor(rng.integers(0, 256, size=(48, 64, 3)).astype(np.uint8))[None]
    size = (48, 64)
    fused = method_maps(model, x, [6, 13], settings(method="layer_fused", fused_stages=[4]), size)
    nwc = upsample(method_maps(model, x, [6, 13], settings(nwc=True), size)[:, [6, 13]], size)
    assert fused.shape == (1, 2, 48, 64)
    torch.testing.assert_close(fused, nwc / nwc.amax((2, 3), keepdim=True), rtol=1e-4, atol=1e-4)


def test_layer_fused_cams_are_normalised_per_class(rng):
    model = resnet(4)
    image = rng.integers(0, 256, size=(37, 53, 3)).astype(np.uint8)
    cams = image_cams(model, image, [9, 1], settings(method="layer_fused", scales=[1.0, 0.5]), "cpu")
    assert cams.shape == (2, 37, 53) and cams.dtype == np.float16
    assert cams.min() >= 0 and np.allclose(cams.max((1, 2)), 1, atol=1e-3)


def test_stage_outputs_are_the_resnet_stages():
    model = resnet()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        outputs = model.stage_outputs(x, [4, 2, 3, 1])
        assert [o.shape[1] for o in outputs] == [512, 128, 256, 64]
        assert [o.shape[-1] for o in outputs] == [4, 8, 4, 16]  # output stride 16: layer4 keeps layer3's size
        assert torch.equal(outputs[0], model.features(x))
    with pytest.raises(ValueError, match="stages"):
        model.stage_outputs(x, [5])


def test_tap_equals_gap_at_threshold_zero():
    features = F.relu(torch.randn(3, 8, 5, 7, generator=torch.Generator().manual_seed(0)))
    torch.testing.assert_close(tap(features, 0.0), F.adaptive_avg_pool2d(features, 1))


def test_tap_averages_the_strong_positions_and_its_gradient_ignores_the_mask():
    features = torch.tensor([[[[0.0, 1.0], [2.0, 4.0]], [[3.0, 3.0], [0.0, 1.0]]]], requires_grad=True)
    pooled = tap(features, 0.5)  # keeps >= 2 in channel 0, >= 1.5 in channel 1
    torch.testing.assert_close(pooled.flatten(), torch.tensor([3.0, 3.0]))
    pooled.sum().backward()
    torch.testing.assert_close(features.grad, torch.tensor([[[[0.0, 0.0], [0.5, 0.5]], [[0.5, 0.5], [0.0, 0.0]]]]))
    torch.testing.assert_close(tap(features.detach(), 0.0).flatten(), torch.tensor([7 / 4, 7 / 4]))


def test_tap_keeps_the_peak_of_negative_features():
    features = -torch.arange(1.0, 5.0).view(1, 1, 2, 2)
    torch.testing.assert_close(tap(features, 0.5).flatten(), torch.tensor([-1.0]))


def test_tap_model_pools_with_tap_and_keeps_the_state_dict_keys():
    torch.manual_seed(0)
    model = Classifier("resnet18", 3, 16, pooling="tap", tap_threshold=0.4).eval()
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        expected = model.classifier(tap(model.features(x), 0.4)).flatten(1)
        torch.testing.assert_close(model(x), expected)
    assert model.state_dict().keys() == Classifier("resnet18", 3, 16).state_dict().keys()
    with pytest.raises(ValueError, match="tap_threshold"):
        Classifier("resnet18", 3, 16, pooling="tap", tap_threshold=1.0)
    with pytest.raises(ValueError, match="pooling"):
        Classifier("resnet18", 3, 16, pooling="max")


def test_tap_model_round_trips_and_older_models_are_refused_by_name(tmp_path):
    torch.manual_seed(0)
    model = Classifier("resnet18", 3, 16, pooling="tap", tap_threshold=0.3).eval()
    save_model(
        tmp_path / "tap.pt",
        model,
        arch="resnet18",
        output_stride=16,
        num_foreground=3,
        pooling="tap",
        tap_threshold=0.3,
    )
    loaded = load_classifier(tmp_path / "tap.pt")
    assert (loaded.pooling, loaded.tap_threshold) == ("tap", 0.3)
    x = torch.randn(1, 3, 40, 40)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    # a model.pt from before the backbone registry: ResNet modules straight under features
    old = {
        k.replace("features.stages.", "features.").replace("features.stem.", "features."): v
        for k, v in model.state_dict().items()
    }
    torch.save(
        {
            "state_dict": old,
            "meta": {
                "arch": "resnet18",
                "output_stride": 16,
                "num_foreground": 3,
                "pooling": "gap",
                "tap_threshold": 0.0,
            },
        },
        tmp_path / "old.pt",
    )
    with pytest.raises(ValueError, match="old.pt.*older version"):
        load_classifier(tmp_path / "old.pt")


def test_pas_divides_by_the_percentile_and_clips():
    cams = torch.rand(2, 10, 12, generator=torch.Generator().manual_seed(0)) * torch.tensor([1.0, 5.0]).view(2, 1, 1)
    result = normalise(cams, 80).numpy()
    for channel, values in zip(result, cams.numpy()):
        expected = np.clip(values / (np.percentile(values, 80) + 1e-5), 0, 1)
        np.testing.assert_allclose(channel, expected, rtol=1e-5, atol=1e-6)
        assert channel.max() == 1 and np.isclose((channel == 1).mean(), 0.2, atol=0.02)
    torch.testing.assert_close(normalise(cams, 100), normalise(cams))


def test_pas_falls_back_to_the_max_where_the_percentile_is_zero():
    cams = torch.zeros(1, 10, 10)
    cams[0, 0, :3] = torch.tensor([1.0, 2.0, 4.0])  # the 50th percentile is 0
    torch.testing.assert_close(normalise(cams, 50), normalise(cams))


def test_pas_cams_stay_in_the_unit_interval(rng):
    image = rng.integers(0, 256, size=(30, 40, 3)).astype(np.uint8)
    cams = image_cams(resnet(5), image, [3, 4], settings(pas_percentile=90.0), "cpu")
    assert cams.min() >= 0 and cams.max() == 1 and ((cams == 1).mean((1, 2)) >= 0.09).all()


def test_unknown_method_is_an_error(rng):
    image = rng.integers(0, 256, size=(20, 20, 3)).astype(np.uint8)
    with pytest.raises(ValueError, match="unknown CAM method"):
        image_cams(resnet(), image, [1], settings(method="scorecam"), "cpu")


FILL = normalised_colour([120.4, 110.0, 99.6])


def crop(seed=0, height=37, width=45):
    return torch.randn(3, height, width, generator=torch.Generator().manual_seed(seed)) + 10  # never the fill


def test_hide_prob_zero_leaves_the_crop_and_the_random_stream_alone():
    x = crop()
    state = torch.get_rng_state()
    assert hide_patches(x, 0.0, 16, FILL) is x
    assert torch.equal(torch.get_rng_state(), state)


def test_hide_prob_one_hides_everything():
    assert torch.equal(hide_patches(crop(), 1.0, 16, FILL), FILL.expand(3, 37, 45))


def test_hidden_patches_are_grid_aligned_and_filled_exactly():
    x = crop()
    torch.manual_seed(1)
    hidden = hide_patches(x, 0.5, 16, FILL)
    is_fill = (hidden == FILL).all(0)
    assert torch.equal(hidden[:, ~is_fill], x[:, ~is_fill])
    for top in range(0, 37, 16):
        for left in range(0, 45, 16):
            patch = is_fill[top : top + 16, left : left + 16]  # the last row and column are partial
            assert patch.all() or not patch.any()
    assert 0 < is_fill.float().mean() < 1


def test_hidden_fraction_is_near_hide_prob_and_seeded_draws_repeat():
    torch.manual_seed(0)
    fractions = [(hide_patches(crop(), 0.3, 16, FILL) == FILL).all(0)[::16, ::16].float().mean() for _ in range(500)]
    assert abs(float(torch.stack(fractions).mean()) - 0.3) < 0.02
    draws = []
    for _ in range(2):
        torch.manual_seed(7)
        draws.append(hide_patches(crop(), 0.5, 8, FILL))
    assert torch.equal(*draws)


def test_fill_colour_is_normalised_like_the_image():
    colour = np.array([[[12, 200, 77]]], np.uint8)
    assert torch.equal(normalised_colour(colour[0, 0]), to_tensor(colour))


@pytest.mark.parametrize("method", ["cam", "gradcam", "gradcampp", "layer_fused"])
def test_methods_run_under_autocast_and_channels_last(rng, monkeypatch, method):
    """CUDA's float16 autocast + channels_last path, run on CPU with bfloat16: same maps up to rounding."""
    model = resnet(6)
    image = rng.integers(0, 256, size=(40, 48, 3)).astype(np.uint8)
    exact = image_cams(model, image, [3, 9], settings(method=method, scales=[1.0, 0.5]), "cpu")
    monkeypatch.setattr(wsss.seeds.cam, "autocast", lambda device: torch.autocast("cpu", dtype=torch.bfloat16))
    # flipped_pair reads the memory format from its own module
    monkeypatch.setattr(wsss.nets.hardware, "memory_format", lambda device: torch.channels_last)
    model = model.to(memory_format=torch.channels_last)
    mixed = image_cams(model, image, [3, 9], settings(method=method, scales=[1.0, 0.5]), "cpu")
    assert mixed.dtype == np.float16 and np.isfinite(mixed).all()
    np.testing.assert_allclose(mixed, exact, atol=0.03)


def test_a_cam_method_is_one_registered_entry(monkeypatch):
    """A CAM method is its entry in wsss.seeds.cam.CAM_METHODS (its maps and facts): the multi-scale CAM then
    computes it like the others (here: CAM with every map doubled gives exactly twice CAM's figures)."""
    monkeypatch.setitem(
        cam.CAM_METHODS,
        "doubled",
        cam.CamMethod(lambda *args: 2 * cam.CAM_METHODS["cam"].maps(*args), all_classes=True, any_classifier=True),
    )
    model, image = resnet(), np.random.default_rng(0).integers(0, 256, (37, 45, 3), dtype=np.uint8)
    plain = cam.multiscale_cam(model, image, [3, 7], settings(scales=[1.0, 0.5]), "cpu")
    doubled = cam.multiscale_cam(model, image, [3, 7], settings(method="doubled", scales=[1.0, 0.5]), "cpu")
    torch.testing.assert_close(doubled, 2 * plain)
    with pytest.raises(ValueError, match="unknown CAM method 'tripled'"):
        cam.multiscale_cam(model, image, [3], settings(method="tripled"), "cpu")
