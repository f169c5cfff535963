"""Networks: a multi-label classifier with a CAM head, and torchvision DeepLabV3 / FCN, on any backbone of
wsss.nets.backbones."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.segmentation.deeplabv3 import DeepLabHead, DeepLabV3
from torchvision.models.segmentation.fcn import FCN, FCNHead

from wsss.files import atomic_write
from wsss.nets.backbones import Backbone, backbone

POOLINGS = ("gap", "tap")
SEGMENTATION_ARCHS = ("deeplabv3", "fcn")


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
    """Backbone features -> global (or thresholded, TAP) average pooling -> 1x1 conv: one logit per
    foreground class.

    The same 1x1 weights applied before pooling give the class activation maps. The pooling is a plain
    attribute, not a buffer, so it is not part of the state_dict.

    The backbone (wsss.nets.backbones) is not dilated: ResNet stages that keep resolution only lose their
    stride, as IRN's classifier (ResNet-50 with strides (2, 2, 2, 1)); EfficientNet-Lite0 dilates (timm).

    frozen_bn: every BatchNorm layer stays in eval mode, also under model.train(): its running statistics
    are never updated (IRN's FixedBatchNorm); its weight and bias still train where their stage trains.
    frozen_stages (mmdetection's convention): -1 nothing frozen, 0 the stem, k >= 1 the stem and stages
    1..k. Frozen parameters get no gradient (requires_grad False) and are left out of param_groups, so the
    optimiser never touches them (not even weight decay); frozen stages are kept in eval mode too, so their
    BatchNorm statistics do not move either. IRN = 2 (net/resnet50_cam.py: conv1 and bn1 do not require
    grad, and layer2's output is detached).
    """

    def __init__(
        self,
        arch: str,
        num_foreground: int,
        output_stride: int = 16,
        weights=None,
        pooling: str = "gap",
        tap_threshold: float = 0.0,
        frozen_bn: bool = False,
        frozen_stages: int = -1,
    ):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if not 0 <= tap_threshold < 1:
            raise ValueError(f"tap_threshold must be in [0, 1), got {tap_threshold}")
        self.features: Backbone = backbone(arch, output_stride, weights)
        self.classifier = nn.Conv2d(self.features.out_channels, num_foreground, 1, bias=False)
        self.pooling, self.tap_threshold = pooling, tap_threshold
        self.output_stride = output_stride  # CAMs align their upsampling to it (wsss.seeds.cam)
        self.frozen_bn, self.frozen_stages = frozen_bn, frozen_stages
        for module in self.frozen_modules():
            module.requires_grad_(False)

    def frozen_modules(self) -> list[nn.Module]:
        """The stem and stages 1..frozen_stages; none at -1."""
        return self.features.frozen_modules(self.frozen_stages)

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
        """(N, num_foreground) from the last stage's output: what gradient CAMs differentiate."""
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
        """The outputs of the given backbone stages (1-4), in the order asked for."""
        return self.features.stage_outputs(x, stages)

    def param_groups(self):
        """The trainable backbone parameters and the freshly initialised classifier head, so the head can
        take a larger lr (IRN). Frozen parameters are left out."""
        return [[p for p in self.features.parameters() if p.requires_grad], list(self.classifier.parameters())]


# DeepLabV3's ASPP rates scale with the output stride: (6, 12, 18) at 16 (Chen et al. 2017), doubled at 8
# (torchvision's DeepLabHead default, (12, 24, 36), is the output-stride-8 setting), halved at 32.
ASPP_RATES = {8: (12, 24, 36), 16: (6, 12, 18), 32: (3, 6, 9)}


class Encoder(nn.Module):
    """A backbone as torchvision's segmentation models expect it: a dict with the last feature map."""

    def __init__(self, net: Backbone):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> OrderedDict:
        return OrderedDict(out=self.net(x))


def segmentation_model(
    arch: str, backbone_arch: str, num_classes: int, output_stride: int = 8, weights=None
) -> nn.Module:
    """torchvision DeepLabV3 (ASPP head, rates following the output stride: ASPP_RATES) or FCN on a
    backbone of the given output stride (dilated, as DeepLab: ResNet-50/101 and EfficientNet-Lite0)."""
    if arch not in SEGMENTATION_ARCHS:
        raise ValueError(f"segmentation.arch must be one of {', '.join(SEGMENTATION_ARCHS)}, got {arch!r}")
    net = backbone(backbone_arch, output_stride, weights, dilate=True)
    if arch == "deeplabv3":
        return DeepLabV3(Encoder(net), DeepLabHead(net.out_channels, num_classes, ASPP_RATES[output_stride]))
    return FCN(Encoder(net), FCNHead(net.out_channels, num_classes))


def save_checkpoint(path, checkpoint: dict) -> None:
    """torch.save to a temporary name, then rename: a kill never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp:
        torch.save(checkpoint, tmp)


def save_model(path, model: nn.Module, **meta) -> None:
    """Weights plus plain metadata, loadable with torch.load(weights_only=True)."""
    save_checkpoint(path, {"state_dict": model.state_dict(), "meta": meta})


def load_checkpoint(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def load_state(model: nn.Module, checkpoint: dict, path) -> nn.Module:
    """The checkpoint's weights into model; a model.pt whose weights do not fit (saved by an older version of
    this package, before the backbone registry) gets an error naming the file, not a key dump."""
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as error:
        raise ValueError(
            f"{path} does not fit the network its metadata describes ({checkpoint['meta']}); it was "
            f"probably saved by an older version of wsss: delete it and rerun its step"
        ) from error
    return model
