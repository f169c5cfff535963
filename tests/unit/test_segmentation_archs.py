"""The segmentation networks (segmentation.arch) and their test-time inference (segmentation.inference)."""

import logging
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from snakemake.utils import validate
from torch import nn

from tests.helpers import SETTINGS as TRAINING_SETTINGS
from tests.helpers import Killed, assert_same_weights, config_with, cpu_job, killing_after
from tests.workflow_helpers import REPO
from wsss.data.voc import read_image
from wsss.nets import models
from wsss.nets.backbones import ARCHS
from wsss.nets.models import RESTRICTED_STRIDES, SEGMENTATION_ARCHS, UPSAMPLINGS, segmentation_model
from wsss.nets.transforms import resize_long_side, to_tensor
from wsss.pipeline import resources
from wsss.seeds.masks import crf_inference_prob
from wsss.training.datasets import TrainingImages
from wsss.training.segmentation import load_segmentation, predict, predict_logits, train_segmentation

HEIGHT, WIDTH = 97, 131  # odd: every stride-2 step rounds


def stride_of(arch):
    return RESTRICTED_STRIDES.get(arch, (16,))[-1]


@pytest.mark.parametrize("backbone", ["resnet18", "efficientnet_lite0"])
@pytest.mark.parametrize("arch", SEGMENTATION_ARCHS)
def test_every_arch_gives_logits_at_the_input_size_on_odd_sizes(arch, backbone):
    torch.manual_seed(0)
    model = segmentation_model(arch, backbone, 5, stride_of(arch)).eval()
    x = torch.randn(2, 3, HEIGHT, WIDTH)
    with torch.no_grad():
        logits = model(x)["out"]
    assert logits.shape == (2, 5, HEIGHT, WIDTH)
    assert torch.isfinite(logits).all() and not torch.equal(logits[0], logits[1])  # it reads the image


@pytest.mark.parametrize("output_stride", [32, 16, 8])
def test_the_feature_pyramid_has_the_backbones_strides(output_stride):
    """The skips smp's decoders read: strides 2, 4, 8, 16, 32, capped at the output stride (dilated)."""
    net = segmentation_model("fcn", "resnet50", 3, output_stride).backbone.net
    with torch.no_grad():
        features = net.pyramid(torch.randn(1, 3, 96, 128))
    strides = [min(2**k, output_stride) for k in range(1, 6)]
    assert [tuple(f.shape[-2:]) for f in features] == [(96 // s, 128 // s) for s in strides]
    assert [f.shape[1] for f in features] == net.pyramid_channels


@pytest.mark.parametrize("output_stride, rates", [(8, (6, 12, 18, 24)), (16, (3, 6, 9, 12))])
def test_deeplabv2_is_four_dilated_branches_summed_at_its_output_stride(output_stride, rates):
    """DeepLab v2's ASPP on an odd-sized input: the backbone's map is ceil(size / output stride) (ResNet's
    stride-2 steps round up), every branch is a 3x3 conv at its rate straight to the classes, keeping that size,
    and the head's output is their sum (no pooling branch, no batch norm, no decoder), resized to the input."""
    torch.manual_seed(0)
    model = segmentation_model("deeplabv2", "resnet50", 5, output_stride).eval()
    head = model.classifier
    assert [(c.kernel_size, c.dilation, c.out_channels) for c in head.branches] == [((3, 3), (r, r), 5) for r in rates]
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.AdaptiveAvgPool2d, nn.ReLU)) for m in head.modules())
    x = torch.randn(1, 3, HEIGHT, WIDTH)
    with torch.no_grad():
        features = model.backbone(x)["out"]
        assert features.shape == (1, 2048, math.ceil(HEIGHT / output_stride), math.ceil(WIDTH / output_stride))
        branch_outputs = [branch(features) for branch in head.branches]
        assert all(out.shape == (1, 5, *features.shape[-2:]) for out in branch_outputs)
        summed = branch_outputs[0] + branch_outputs[1] + branch_outputs[2] + branch_outputs[3]
        torch.testing.assert_close(head(features), summed)
        expected = F.interpolate(summed, size=(HEIGHT, WIDTH), mode="bilinear", align_corners=False)
        torch.testing.assert_close(model(x)["out"], expected)
    with pytest.raises(ValueError, match="segmentation.output_stride in \\[8, 16\\], got 32"):
        segmentation_model("deeplabv2", "resnet18", 3, 32)


def decoder_inputs(model, x) -> list[torch.Tensor]:
    """What each U-Net decoder block's first conv sees: the upsampled map, then the skip."""
    seen = []
    blocks = model.classifier["decoder"].blocks
    convs = [getattr(block, "block", block).conv1 for block in blocks]
    hooks = [conv.register_forward_pre_hook(lambda module, args: seen.append(args[0])) for conv in convs]
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    return seen


@pytest.mark.parametrize("upsampling", UPSAMPLINGS)
def test_unet_upsampling_modes(upsampling):
    """transpose: a learned 2x2 transposed convolution per block; nearest: each upsampled value fills a 2x2
    cell; bilinear: it does not. Every mode gives logits at the (odd) input size."""
    torch.manual_seed(0)
    model = segmentation_model("unet", "resnet18", 4, 32, upsampling=upsampling).eval()
    transposed = [m for m in model.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert len(transposed) == (5 if upsampling == "transpose" else 0)
    x = torch.randn(1, 3, HEIGHT, WIDTH)
    assert model(x)["out"].shape == (1, 4, HEIGHT, WIDTH)
    top = decoder_inputs(model, x)[0][:, :512]  # block 1: the stride-32 map (512 channels) doubled, then skip
    cells_equal = torch.equal(top[..., ::2, ::2], top[..., 1::2, 1::2])
    assert cells_equal == (upsampling == "nearest")
    assert top.shape[-2:] == (math.ceil(HEIGHT / 32) * 2, math.ceil(WIDTH / 32) * 2)  # padded to 32


def test_encoder_decoders_refuse_a_dilated_backbone_and_unknown_modes():
    with pytest.raises(ValueError, match="segmentation.output_stride in \\[32\\], got 16"):
        segmentation_model("unet", "resnet18", 3, 16)
    with pytest.raises(ValueError, match="segmentation.output_stride in \\[8, 16\\], got 32"):
        segmentation_model("deeplabv3plus", "resnet18", 3, 32)
    with pytest.raises(ValueError, match="segmentation.upsampling .* got 'bicubic'"):
        segmentation_model("unet", "resnet18", 3, 32, upsampling="bicubic")
    with pytest.raises(ValueError, match="segmentation.arch must be one of"):
        segmentation_model("pspnet", "resnet18", 3, 16)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return segmentation_model("deeplabv3", "resnet18", 4, 16).eval()


def test_one_scale_is_the_image_and_its_flip(model):
    """scales [1.0] + flip: the logits of the image at long_side plus those of its flip, flipped back, resized
    to the image (what predictions always were)."""
    image = np.random.default_rng(0).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    x = to_tensor(resize_long_side(image, 64))
    with torch.no_grad():
        out = model(torch.stack([x, x.flip(-1)]))["out"]
    expected = F.interpolate((out[0] + out[1].flip(-1))[None], size=(HEIGHT, WIDTH), mode="bilinear")[0]
    logits, count = predict_logits(model, image, "cpu", 64, scales=[1.0], flip=True)
    assert count == 2 and torch.equal(logits, expected)
    np.testing.assert_array_equal(predict(model, image, "cpu", 64), expected.argmax(0).numpy())


def test_scales_and_flip_sum_their_logits(model):
    image = np.random.default_rng(1).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    single = {s: predict_logits(model, image, "cpu", 64, scales=[s], flip=False)[0] for s in (0.5, 1.0, 1.5)}
    logits, count = predict_logits(model, image, "cpu", 64, scales=[0.5, 1.0, 1.5], flip=False)
    assert count == 3 and torch.allclose(logits, single[0.5] + single[1.0] + single[1.5], atol=1e-5)
    assert not torch.allclose(single[0.5], single[1.0], atol=1e-3)  # the scales do see different images
    flipped, count = predict_logits(model, image, "cpu", 64, scales=[1.0], flip=True)
    assert count == 2 and not torch.allclose(flipped, 2 * single[1.0], atol=1e-3)


CRF = {"iterations": 10, "gaussian": {"sxy": 1, "compat": 3}, "bilateral": {"sxy": 67, "srgb": 3, "compat": 4}}


class Blurry(nn.Module):
    """A network whose class-1 logit rises smoothly across the image, crossing class 0 at column `cross`."""

    def __init__(self, cross: float):
        super().__init__()
        self.cross = cross

    def forward(self, x):
        width = x.shape[-1]
        ramp = (torch.arange(width, dtype=torch.float32) - self.cross * width) / width * 4
        one = ramp.expand(x.shape[0], 1, x.shape[-2], width)
        return {"out": torch.cat([-one, one], 1)}


def test_crf_snaps_a_blurry_prediction_to_the_image_edge():
    """Dark left half, bright right half (edge at column 32); the network's boundary is at column 40. Without a
    CRF the prediction keeps it there; the CRF moves it to the edge."""
    image = np.zeros((48, 64, 3), np.uint8)
    image[:, 32:] = 220
    plain = predict(Blurry(40.5 / 64), image, "cpu", None, flip=False)
    assert (plain[:, :41] == 0).all() and (plain[:, 41:] == 1).all()
    refined = predict(Blurry(40.5 / 64), image, "cpu", None, flip=False, crf=CRF)
    assert (refined[:, :32] == 0).all() and (refined[:, 32:] == 1).all()
    probs = np.stack([np.full((48, 64), 0.9, np.float32), np.full((48, 64), 0.1, np.float32)])
    assert (crf_inference_prob(image, probs, CRF) == 0).all()  # a confident uniform map stays as it is


SEGMENTATION = {**TRAINING_SETTINGS, "backbone": "resnet18", "epochs": 3, "resize_long": [40, 56], "crop_size": 40}


@pytest.mark.parametrize(
    "arch, options",
    [("unet", {"upsampling": "transpose"}), ("fpn", {}), ("deeplabv3plus", {"output_stride": 16})],
)
def test_killed_segmentation_training_resumes_bit_identical(demo_data, tmp_path, monkeypatch, caplog, arch, options):
    """The encoder-decoders (their dropout included) resume from the checkpoint to the same weights."""
    settings = {**SEGMENTATION, "arch": arch, "output_stride": 32, **options}
    ids = demo_data.split_ids("train")[:12]
    masks = {i: demo_data.mask_path(i) for i in ids}

    def train(name):
        job = cpu_job(tmp_path, name, 3, tmp_path / "checkpoint.pt", fingerprint="job")
        return train_segmentation(TrainingImages(demo_data, ids, masks, 21), settings, job, desc="test")

    straight = train("straight")
    with monkeypatch.context() as patch:  # killed in epoch 3, after the checkpoint of epoch 2 (3 batches/epoch)
        patch.setattr(F, "cross_entropy", killing_after(7, F.cross_entropy))
        with pytest.raises(Killed):
            train("resumed")
    torch.manual_seed(99)
    with caplog.at_level(logging.INFO):
        resumed = train("resumed")
    assert "resumed from checkpoint" in caplog.text
    np.testing.assert_array_equal(resumed["loss"], straight["loss"])
    assert_same_weights(
        torch.load(tmp_path / "resumed.pt", weights_only=True)["state_dict"],
        torch.load(tmp_path / "straight.pt", weights_only=True)["state_dict"],
    )
    image = read_image(demo_data.image_path(ids[0]))
    prediction = predict(load_segmentation(tmp_path / "resumed.pt"), image, "cpu", scales=[0.75, 1.0])
    assert prediction.shape == image.shape[:2] and prediction.max() < 21


SCHEMA = str(REPO / "workflow/schemas/config.schema.yaml")


@pytest.mark.parametrize(
    "override, message",
    [
        ({"arch": "unet", "output_stride": 16}, "output_stride"),
        ({"arch": "fpn", "output_stride": 8}, "output_stride"),
        ({"arch": "deeplabv3plus", "output_stride": 32}, "output_stride"),
        ({"arch": "unet", "output_stride": 32, "upsampling": "bicubic"}, "bicubic"),
        ({"inference": {"scales": [], "flip": True, "crf": None}}, "scales"),
        ({"inference": {"scales": [1.0], "flip": True, "crf": {"iterations": 5}}}, "crf"),
    ],
)
def test_the_schema_refuses_what_the_networks_cannot_do(override, message):
    """Config errors surface before any job runs, naming the key or value."""
    for arch in ("unet", "fpn", "fcn8s", "deeplabv3plus"):
        strides = RESTRICTED_STRIDES[arch]
        validate(config_with({"segmentation": {"arch": arch, "output_stride": strides[-1]}}), SCHEMA)
    for experiment in yaml.safe_load((REPO / "config/demo-archs.yaml").read_text())["experiments"].values():
        validate(config_with(experiment), SCHEMA)
    with pytest.raises(Exception, match=message):
        validate(config_with({"segmentation": override}), SCHEMA)


def test_every_network_and_backbone_has_a_memory_figure():
    """train_segmentation's mem_mb (wsss.pipeline.resources) grows with the batch's pixels and output stride 8,
    and a network or backbone added without a measured figure fails here."""
    assert set(resources.STEP_MB) == set(SEGMENTATION_ARCHS)
    for arch, figures in resources.STEP_MB.items():
        assert set(figures) == set(ARCHS), arch
    voc = {"arch": "deeplabv3", "backbone": "resnet101", "batch_size": 16, "crop_size": 512, "output_stride": 16}
    demo = {**voc, "backbone": "efficientnet_lite0", "batch_size": 8, "crop_size": 96}
    assert resources.segmentation_train_mem_mb(demo) < resources.segmentation_train_mem_mb(voc) == 26200
    assert resources.segmentation_train_mem_mb({**voc, "output_stride": 8}) > 26200
    assert resources.segmentation_train_mem_mb({**voc, "arch": "unet", "output_stride": 32}) > 26200


def test_a_network_is_one_registered_entry(monkeypatch):
    """A segmentation network is its builder registered under its name (wsss.nets.models.SEGMENTATION_NETWORKS):
    segmentation_model then builds it, on any backbone, with its output strides checked. (The schema's enum,
    its stride rules and the memory table are checked against the entries: tests/unit/test_registry.py and
    test_every_network_has_a_memory_figure below.)"""
    monkeypatch.setattr(models, "SEGMENTATION_NETWORKS", dict(models.SEGMENTATION_NETWORKS))

    @models.register_segmentation_network("linear", output_strides=(16,))
    def linear(net, num_classes, output_stride, upsampling):  # a 1x1 class conv on the last features
        return models.EncoderDecoder(net, LastFeatures(), nn.Conv2d(net.out_channels, num_classes, 1))

    model = segmentation_model("linear", "resnet18", 5, 16).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, HEIGHT, WIDTH))["out"].shape == (1, 5, HEIGHT, WIDTH)
    with pytest.raises(ValueError, match=r"linear needs segmentation.output_stride in \[16\], got 32"):
        segmentation_model("linear", "resnet18", 5, 32)
    with pytest.raises(ValueError, match="segmentation.arch must be one of"):
        segmentation_model("linear2", "resnet18", 5, 16)


class LastFeatures(nn.Module):
    def forward(self, features):
        return features[-1]
