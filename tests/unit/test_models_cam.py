import numpy as np
import pytest
import torch

from wsss.nets.models import Classifier, segmentation_model
from wsss.seeds.cam import DEFAULT_SETTINGS, image_cams, multiscale_cam, normalise


@pytest.mark.parametrize("arch", ["deeplabv3", "fcn"])
def test_segmentation_model_outputs_full_resolution_logits(arch):
    model = segmentation_model(arch, "resnet18", 21, 16).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 40, 56))["out"].shape == (1, 21, 40, 56)
    with pytest.raises(ValueError, match="arch"):
        segmentation_model("unet", "resnet18", 21)


def test_cam_is_the_pooled_classifier_before_pooling():
    torch.manual_seed(0)
    model = Classifier("resnet18", 20, 16).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        features = model.features(x)
        raw = model.classifier(features)
        # linearity: pooling the un-ReLU'd map equals the logits
        torch.testing.assert_close(raw.mean((2, 3)), model(x), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(model.cam(x), raw.clamp(min=0))


def settings(scales):
    return {**DEFAULT_SETTINGS, "scales": scales}


def test_image_cams_shape_order_and_normalisation(rng):
    torch.manual_seed(0)
    model = Classifier("resnet18", 20, 16).eval()
    image = rng.integers(0, 256, size=(37, 53, 3)).astype(np.uint8)
    full = multiscale_cam(model, image, list(range(1, 21)), settings([1.0, 0.5]), "cpu")
    assert full.shape == (20, 37, 53) and (full >= 0).all()
    cams = image_cams(model, image, [15, 8], settings([1.0, 0.5]), "cpu")  # unordered on purpose
    assert cams.dtype == np.float16 and cams.shape == (2, 37, 53)
    expected = normalise(full[[7, 14]]).numpy()  # ascending class id: 8 then 15
    np.testing.assert_allclose(cams, expected, atol=1e-3)
    for channel in cams:
        assert channel.min() >= 0 and channel.max() == pytest.approx(1.0, abs=1e-3) or channel.max() == 0
    assert image_cams(model, image, [], settings([1.0]), "cpu").shape == (0, 37, 53)


def test_flip_makes_cams_flip_equivariant(rng):
    torch.manual_seed(1)
    model = Classifier("resnet18", 20, 16).eval()
    image = rng.integers(0, 256, size=(32, 48, 3)).astype(np.uint8)
    a = multiscale_cam(model, image, list(range(1, 21)), settings([1.0]), "cpu")
    b = multiscale_cam(model, np.ascontiguousarray(image[:, ::-1]), list(range(1, 21)), settings([1.0]), "cpu")
    torch.testing.assert_close(a, b.flip(-1), rtol=1e-4, atol=1e-4)


def dilations(module: torch.nn.Module) -> set[int]:
    return {m.dilation[0] for m in module.modules() if isinstance(m, torch.nn.Conv2d)}


@pytest.mark.parametrize("output_stride", [8, 16])
def test_classifier_backbone_is_not_dilated_but_deeplabs_is(output_stride):
    """IRN's classifier: ResNet-50 with strides (2, 2, 2, 1) and no dilation; DeepLab keeps torchvision's."""
    model = Classifier("resnet50", 20, output_stride).eval()
    assert dilations(model.features) == {1} and model.output_stride == output_stride
    with torch.no_grad():
        assert model.features(torch.zeros(1, 3, 64, 64)).shape[-1] == 64 // output_stride
    assert dilations(segmentation_model("deeplabv3", "resnet50", 21, output_stride).backbone) > {1}


@pytest.mark.parametrize("output_stride, rates", [(8, (12, 24, 36)), (16, (6, 12, 18)), (32, (3, 6, 9))])
def test_aspp_rates_follow_the_output_stride(output_stride, rates):
    aspp = segmentation_model("deeplabv3", "resnet18", 21, output_stride).classifier[0]
    assert tuple(branch[0].dilation[0] for branch in aspp.convs[1:4]) == rates
