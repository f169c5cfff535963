"""Networks: a ResNet multi-label classifier with a CAM head, and torchvision DeepLabV3 / FCN."""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.segmentation.deeplabv3 import DeepLabHead, DeepLabV3
from torchvision.models.segmentation.fcn import FCN, FCNHead

from .download import mirror_urls

ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101")
DILATABLE = ("resnet50", "resnet101")  # Bottleneck blocks; BasicBlock cannot dilate


def weights_source(arch: str, tag: str, mirrors: list[str] = ()) -> tuple[list[str], str]:
    """Download URLs (mirrors first, then torchvision's own) and the sha256 prefix of ImageNet weights.

    torchvision names its weight files ``<arch>-<first hex digits of their sha256>.pth``.
    """
    url = torchvision.models.get_weight(f"{arch.replace('resnet', 'ResNet')}_Weights.{tag}").url
    file = url.rsplit("/", 1)[1]
    match = re.search(r"-([0-9a-f]{8,})\.pth$", file)
    if match is None:
        raise ValueError(f"cannot find a checksum in the weight file name {file}")
    return mirror_urls(mirrors, file) + [url], match.group(1)


def load_pretrained(net: nn.Module, path) -> None:
    """ImageNet weights into a torchvision ResNet; its fc layer is not used, so it may be missing."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("fc.")]
    if missing or unexpected:
        raise ValueError(f"{path} does not fit {type(net).__name__}: missing {missing[:3]}, unexpected {unexpected[:3]}")


def resnet_backbone(arch: str, output_stride: int, weights=None, dilate: bool = True) -> nn.Module:
    """A torchvision ResNet whose last stages keep resolution so features have the given output stride.

    dilate: ResNet-50/101 dilate the kept stages (as torchvision's segmentation models and DeepLab do);
    without it, or for ResNet-18/34 (whose BasicBlock cannot dilate), the kept stages' strides are simply
    removed, as IRN does for its classifier (net/resnet50_cam.py: strides (2, 2, 2, 1), no dilation).
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown backbone {arch!r}; choose one of {ARCHS}")
    keep = {32: [False, False, False], 16: [False, False, True], 8: [False, True, True]}
    if output_stride not in keep:
        raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
    kept = keep[output_stride]
    factory = getattr(torchvision.models, arch)
    dilated = dilate and arch in DILATABLE
    net = factory(replace_stride_with_dilation=kept) if dilated else factory()
    if weights:  # a local file from the pretrained_weights rule: training never downloads
        load_pretrained(net, weights)
    if dilated:
        return net
    for layer, keep_resolution in zip((net.layer2, net.layer3, net.layer4), kept):
        if keep_resolution:
            for module in layer[0].modules():
                if isinstance(module, nn.Conv2d) and module.stride == (2, 2):
                    module.stride = (1, 1)
    return net


# conv1, bn1, relu, maxpool come before layer1 in Classifier.features
STEM_MODULES = 4


def feature_channels(arch: str) -> int:
    return 512 if arch in ("resnet18", "resnet34") else 2048


POOLINGS = ("gap", "tap")


def tap(features: torch.Tensor, threshold: float) -> torch.Tensor:
    """Thresholded average pooling (Bae et al., "Rethinking CAM", ECCV 2020): (N, K, 1, 1).

    Per sample and channel, the mean over the positions with A >= threshold * max(A). GAP rewards a
    classifier for spreading evidence thinly over the background; TAP only averages the strong positions.
    ">=" keeps every position of non-negative features at threshold 0 (TAP is GAP then), and the max
    position always stays, so the count is never 0. The mask is a constant for autograd. Sums run in
    float32: fp16 sums over large crops could overflow.
    """
    values = features.float()
    peak = values.amax((2, 3), keepdim=True)
    kept = ((values >= threshold * peak) | (values == peak)).detach().float()
    pooled = (values * kept).sum((2, 3), keepdim=True) / kept.sum((2, 3), keepdim=True)
    return pooled.to(features.dtype)


class Classifier(nn.Module):
    """ResNet features -> global (or thresholded, TAP) average pooling -> 1x1 conv: one logit per
    foreground class.

    The same 1x1 weights applied before pooling give the class activation maps. The pooling is a plain
    attribute, not a buffer, so the state_dict keys stay those of every model saved before TAP existed.

    The backbone is not dilated (dilated=False): the stages that keep resolution only lose their stride,
    as IRN's classifier (ResNet-50 with strides (2, 2, 2, 1)). dilated=True is how ResNet-50/101
    classifiers were built before; load_classifier uses it for models saved then.

    frozen_bn: every BatchNorm layer stays in eval mode, also under model.train(): its running statistics
    are never updated (IRN's FixedBatchNorm); its weight and bias still train where their stage trains.
    frozen_stages (mmdetection's convention): -1 nothing frozen, 0 the stem (conv1 + bn1), k >= 1 the stem
    and layer1..layer<k>. Frozen parameters get no gradient (requires_grad False) and are left out of
    param_groups, so the optimiser never touches them (not even weight decay); frozen stages are kept in
    eval mode too, so their BatchNorm statistics do not move either. IRN = 2 (net/resnet50_cam.py: conv1
    and bn1 do not require grad, and layer2's output is detached).
    """

    def __init__(self, arch: str, num_foreground: int, output_stride: int = 16, weights=None,
                 pooling: str = "gap", tap_threshold: float = 0.0, frozen_bn: bool = False, frozen_stages: int = -1,
                 dilated: bool = False):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if not 0 <= tap_threshold < 1:
            raise ValueError(f"tap_threshold must be in [0, 1), got {tap_threshold}")
        if not -1 <= frozen_stages <= 4:
            raise ValueError(f"frozen_stages must be in -1..4, got {frozen_stages}")
        net = resnet_backbone(arch, output_stride, weights, dilate=dilated)
        self.features = nn.Sequential(
            net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4
        )
        self.classifier = nn.Conv2d(feature_channels(arch), num_foreground, 1, bias=False)
        self.pooling, self.tap_threshold = pooling, tap_threshold
        self.output_stride = output_stride  # CAMs align their upsampling to it (wsss.cam)
        self.frozen_bn, self.frozen_stages = frozen_bn, frozen_stages
        for module in self.frozen_modules():
            module.requires_grad_(False)

    def frozen_modules(self) -> list[nn.Module]:
        """The stem (conv1, bn1, relu, maxpool) and layer1..layer<frozen_stages>; none at -1."""
        if self.frozen_stages < 0:
            return []
        return list(self.features[: STEM_MODULES + self.frozen_stages])

    def train(self, mode: bool = True):
        """nn.Module.train, but frozen stages, and with frozen_bn every BatchNorm, stay in eval mode."""
        super().train(mode)
        if mode:
            for module in self.frozen_modules():
                module.eval()
            if self.frozen_bn:
                for module in self.modules():
                    if isinstance(module, nn.modules.batchnorm._BatchNorm):
                        module.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(self.features(x))

    def pool(self, features: torch.Tensor) -> torch.Tensor:
        if self.pooling == "tap":
            return tap(features, self.tap_threshold)
        return F.adaptive_avg_pool2d(features, 1)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """(N, num_foreground) from layer4's output: what gradient CAMs differentiate."""
        return self.classifier(self.pool(features)).flatten(1)

    def cam(self, x: torch.Tensor, nwc: bool = False) -> torch.Tensor:
        """ReLU'd class activation maps at feature resolution, (N, num_foreground, h, w).

        nwc (negative weight clamping, Bae et al.): drop the head's negative weights, so features that
        speak against a class cannot carve holes into its map.
        """
        features = self.features(x)
        if nwc:
            return F.relu(F.conv2d(features, self.classifier.weight.clamp(min=0)))
        return F.relu(self.classifier(features))

    def stage_outputs(self, x: torch.Tensor, stages) -> list[torch.Tensor]:
        """The outputs of the given ResNet stages (1-4 = layer1..layer4), in the order asked for."""
        if not stages or not set(stages) <= {1, 2, 3, 4}:
            raise ValueError(f"stages must be ResNet stages 1-4, got {stages}")
        outputs = {}
        for index, module in enumerate(self.features[: STEM_MODULES + max(stages)]):
            x = module(x)
            if index >= STEM_MODULES:
                outputs[index - STEM_MODULES + 1] = x
        return [outputs[stage] for stage in stages]

    def param_groups(self):
        """The trainable backbone parameters and the freshly initialised classifier head, so the head can
        take a larger lr (IRN). Frozen parameters are left out."""
        return [[p for p in self.features.parameters() if p.requires_grad], list(self.classifier.parameters())]


# DeepLabV3's ASPP rates scale with the output stride: (6, 12, 18) at 16 (Chen et al. 2017), doubled at 8
# (torchvision's DeepLabHead default, (12, 24, 36), is the output-stride-8 setting), halved at 32.
ASPP_RATES = {8: (12, 24, 36), 16: (6, 12, 18), 32: (3, 6, 9)}


def segmentation_model(arch: str, backbone: str, num_classes: int, output_stride: int = 8, weights=None,
                       atrous_rates=None) -> nn.Module:
    """torchvision DeepLabV3 (ASPP head) or FCN on a ResNet backbone of the given output stride (dilated
    ResNet-50/101). DeepLabV3's ASPP rates follow the output stride (ASPP_RATES) unless atrous_rates is given.
    """
    net = resnet_backbone(backbone, output_stride, weights)
    body = IntermediateLayerGetter(net, return_layers={"layer4": "out"})
    channels = feature_channels(backbone)
    if arch == "deeplabv3":
        rates = tuple(atrous_rates) if atrous_rates is not None else ASPP_RATES[output_stride]
        return DeepLabV3(body, DeepLabHead(channels, num_classes, rates))
    if arch == "fcn":
        return FCN(body, FCNHead(channels, num_classes))
    raise ValueError(f"segmentation.arch must be 'deeplabv3' or 'fcn', got {arch!r}")


def save_checkpoint(path, checkpoint: dict) -> None:
    """torch.save to a temporary name, then rename: a kill never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(checkpoint, tmp)
    os.replace(tmp, path)


def save_model(path, model: nn.Module, **meta) -> None:
    """Weights plus plain metadata, loadable with torch.load(weights_only=True)."""
    save_checkpoint(path, {"state_dict": model.state_dict(), "meta": meta})


def load_checkpoint(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)
