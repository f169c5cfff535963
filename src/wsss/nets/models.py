"""Networks: a multi-label classifier with a CAM head, and the segmentation networks (torchvision's DeepLabV3 and
FCN, FCN-8s, smp's DeepLabV3+, U-Net and FPN decoders), on any backbone of wsss.nets.backbones."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.segmentation.deeplabv3 import DeepLabHead, DeepLabV3
from torchvision.models.segmentation.fcn import FCN, FCNHead

from wsss.nets.backbones import Backbone, backbone

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


def head_weight(conv: nn.Conv2d, nwc: bool) -> torch.Tensor:
    """A CAM head's weights, with negative weight clamping (nwc) their negative entries set to 0."""
    return conv.weight.clamp(min=0) if nwc else conv.weight


class Classifier(nn.Module):
    """Backbone features -> global (or thresholded, TAP) average pooling -> 1x1 conv: one logit per
    foreground class.

    The same 1x1 weights applied before pooling give the class activation maps. The pooling is a plain
    attribute, not a buffer, so it is not part of the state_dict.

    The backbone (wsss.nets.backbones) is not dilated: ResNet stages that keep resolution only lose their
    stride, as IRN's classifier (ResNet-50 with strides (2, 2, 2, 1)); EfficientNet-Lite0 dilates (timm).

    frozen_bn, frozen_stages: the backbone's (Backbone.freeze); the head has no BatchNorm. IRN: frozen_bn and
    frozen_stages 2 (net/resnet50_cam.py: conv1 and bn1 do not require grad, and layer2's output is detached).

    Subclasses (wsss.nets.expansion) expand the CAM inside the classifier: their forward may return a dict
    (with "logits") that their loss() reads.
    """

    method = "cam"  # classifier.method (wsss.nets.expansion.CLASSIFIER_METHODS)
    # forward also returns the CAM head's maps ({"logits", "maps"}): set by a training whose loss reads them
    # (Mixup-CAM's concentration term, wsss.training.mixup); a plain attribute, not saved with the model
    returns_maps = False

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
        self.features.freeze(frozen_stages, frozen_bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict:
        features = self.features(x)
        logits = self.logits(features)
        if self.returns_maps:
            return {"logits": logits, "maps": self.classifier(features)}
        return logits

    def loss(self, outputs, targets: torch.Tensor) -> torch.Tensor:
        """The training loss of forward's outputs: multi-label soft margin (targets multi-hot, or soft: mixup's)."""
        return F.multilabel_soft_margin_loss(self.batch_logits(outputs), targets)

    @staticmethod
    def batch_logits(outputs) -> torch.Tensor:
        """(N, num_foreground) image-level scores from forward's outputs (the epoch mAP's)."""
        return outputs["logits"] if isinstance(outputs, dict) else outputs

    @staticmethod
    def training_maps(outputs: dict) -> torch.Tensor:
        """The CAM head's (N, num_foreground, h, w) maps, before ReLU, from forward's outputs in training (with
        returns_maps, or a method's own dict): what Mixup-CAM's concentration term reads."""
        return outputs["maps"]

    def method_settings(self) -> dict:
        """The method's own settings (classifier.<method>), saved with the model; none for classic CAM."""
        return {}

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
        return F.relu(F.conv2d(self.features(x), head_weight(self.classifier, nwc)))

    def stage_outputs(self, x: torch.Tensor, stages) -> list[torch.Tensor]:
        """The outputs of the given backbone stages (1-4), in the order asked for."""
        return self.features.stage_outputs(x, stages)

    def param_groups(self):
        """The trainable backbone parameters and the freshly initialised head (the CAM head and whatever a
        method adds: SEAM's PCM, ACoL's second head, the dilated heads), so the head can take a larger lr
        (IRN; SEAM's and ACoL's new layers too). Frozen parameters are left out."""
        head = [p for name, p in self.named_parameters() if not name.startswith("features.")]
        return [[p for p in self.features.parameters() if p.requires_grad], head]


# DeepLabV3's ASPP rates scale with the output stride: (6, 12, 18) at 16 (Chen et al. 2017), doubled at 8
# (torchvision's DeepLabHead default, (12, 24, 36), is the output-stride-8 setting), halved at 32.
ASPP_RATES = {8: (12, 24, 36), 16: (6, 12, 18), 32: (3, 6, 9)}
# How U-Net's decoder doubles the resolution before each skip: a learned 2x2 transposed convolution (Ronneberger
# et al.'s up-convolution) or fixed bilinear / nearest interpolation (smp's UnetDecoder).
UPSAMPLINGS = ("transpose", "bilinear", "nearest")
UNREAD_UPSAMPLING = "bilinear"  # what the networks that do not read upsampling are built with
# Inputs are padded to a multiple of this (bottom and right, with zeros: the mean colour after normalisation)
# so that every stride-2 step halves exactly and the skips line up; the logits are cropped back.
PAD_MULTIPLE = 32


class Encoder(nn.Module):
    """A backbone as torchvision's segmentation models expect it: a dict with the last feature map."""

    def __init__(self, net: Backbone):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> OrderedDict:
        return OrderedDict(out=self.net(x))


class UpThenBlock(nn.Module):
    """A U-Net decoder block after a 2x2 transposed convolution: the block's own interpolation to the skip's
    size is then the identity (the input is padded to a multiple of PAD_MULTIPLE)."""

    def __init__(self, channels: int, block: nn.Module):
        super().__init__()
        self.up, self.block = nn.ConvTranspose2d(channels, channels, 2, stride=2), block

    def forward(self, x, height, width, skip_connection=None):
        return self.block(self.up(x), height, width, skip_connection=skip_connection)


def unet_decoder(channels: list[int], upsampling: str) -> nn.Module:
    """smp's U-Net decoder (five blocks, 256-128-64-32-16 channels, batch norm) from stride 32 to 1."""
    from segmentation_models_pytorch.decoders.unet.decoder import UnetDecoder

    widths = (256, 128, 64, 32, 16)
    interpolation = "nearest" if upsampling == "transpose" else upsampling
    decoder = UnetDecoder([3, *channels], widths, n_blocks=len(widths), interpolation_mode=interpolation)
    if upsampling == "transpose":
        inputs = [channels[-1], *widths[:-1]]  # each block's input: the stage below, then the previous block
        decoder.blocks = nn.ModuleList(UpThenBlock(c, b) for c, b in zip(inputs, decoder.blocks))
    return decoder


class FCN8sHead(nn.Module):
    """FCN-8s's skip fusion (Long et al. 2015): class scores from the stride-32 features (torchvision's FCN
    head), upsampled and added to 1x1-conv scores of the stride-16 and stride-8 features."""

    def __init__(self, channels: list[int], num_classes: int):
        super().__init__()
        self.top = FCNHead(channels[-1], num_classes)
        self.score16 = nn.Conv2d(channels[-2], num_classes, 1)
        self.score8 = nn.Conv2d(channels[-3], num_classes, 1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        scores = self.top(features[-1])
        for conv, skip in ((self.score16, features[-2]), (self.score8, features[-3])):
            scores = F.interpolate(scores, size=skip.shape[-2:], mode="bilinear", align_corners=False) + conv(skip)
        return scores


class EncoderDecoder(nn.Module):
    """Backbone feature pyramid -> decoder -> 3x3 class conv (smp's SegmentationHead) -> logits at input size.

    classifier holds everything new (decoder and class conv): the head that may take a larger lr, as
    torchvision's models' classifier. Returns {"out": logits} like torchvision's segmentation models.
    """

    def __init__(self, net: Backbone, decoder: nn.Module, head: nn.Module | None = None):
        super().__init__()
        self.backbone = net
        self.classifier = nn.ModuleDict(dict(decoder=decoder, **({"head": head} if head is not None else {})))

    def forward(self, x: torch.Tensor) -> OrderedDict:
        height, width = x.shape[-2:]
        padded = F.pad(x, (0, -width % PAD_MULTIPLE, 0, -height % PAD_MULTIPLE))
        out = self.classifier["decoder"]([padded, *self.backbone.pyramid(padded)])
        if "head" in self.classifier:
            out = self.classifier["head"](out)
        if out.shape[-2:] != padded.shape[-2:]:
            out = F.interpolate(out, size=padded.shape[-2:], mode="bilinear", align_corners=False)
        return OrderedDict(out=out[..., :height, :width])


@dataclass(frozen=True)
class SegmentationNetwork:
    """An entry of SEGMENTATION_NETWORKS: build(backbone, num_classes, output_stride, upsampling) -> the network
    on that (dilated) backbone, returning {"out": logits} at the input size; output_strides: the strides it
    works at (None: any); reads_upsampling: whether segmentation.upsampling changes it."""

    build: Callable[[Backbone, int, int, str], nn.Module]
    output_strides: tuple[int, ...] | None = None
    reads_upsampling: bool = False


# segmentation.arch -> its entry, in the schema's order (tests/unit/test_registry.py checks the schema's enum and
# output-stride rules, tests/unit/test_segmentation_archs.py pipeline/resources.STEP_MB, against this table)
SEGMENTATION_NETWORKS: dict[str, SegmentationNetwork] = {}


def register_segmentation_network(name: str, output_strides: tuple[int, ...] | None = None, reads_upsampling=False):
    """Decorator: the builder it decorates is segmentation.arch `name`."""

    def register(build):
        SEGMENTATION_NETWORKS[name] = SegmentationNetwork(build, output_strides, reads_upsampling)
        return build

    return register


@register_segmentation_network("deeplabv3")
def _deeplabv3(net: Backbone, num_classes: int, output_stride: int, upsampling: str) -> nn.Module:
    """torchvision's DeepLabV3: the ASPP head, rates following the output stride (ASPP_RATES)."""
    return DeepLabV3(Encoder(net), DeepLabHead(net.out_channels, num_classes, ASPP_RATES[output_stride]))


# DeepLab v2's ASPP (Chen et al. 2017, TPAMI; kazuto1011/deeplab-pytorch's _ASPP): rates 6/12/18/24 at output
# stride 8, the stride its ResNet-101 was trained at; halved at 16 so that each branch sees the same image area.
ASPP_V2_RATES = {8: (6, 12, 18, 24), 16: (3, 6, 9, 12)}


class ASPPv2(nn.Module):
    """Four dilated 3x3 convolutions straight to class scores, summed: no image pooling, no 1x1 branch, no
    batch norm and no decoder (DeepLab v2's head, unlike v3's DeepLabHead). Weights N(0, 0.01), biases 0."""

    def __init__(self, in_channels: int, num_classes: int, rates):
        super().__init__()
        self.branches = nn.ModuleList(nn.Conv2d(in_channels, num_classes, 3, padding=r, dilation=r) for r in rates)
        for conv in self.branches:
            nn.init.normal_(conv.weight, 0.0, 0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(branch(x) for branch in self.branches)


@register_segmentation_network("deeplabv2", output_strides=(8, 16))
def _deeplabv2(net: Backbone, num_classes: int, output_stride: int, upsampling: str) -> nn.Module:
    """DeepLab v2 (the WSSS literature's second stage: IRN, AdvCAM, ReCAM, AMN): ASPPv2 on the dilated backbone,
    its logits resized bilinearly to the input (torchvision's DeepLabV3 wrapper does exactly that)."""
    return DeepLabV3(Encoder(net), ASPPv2(net.out_channels, num_classes, ASPP_V2_RATES[output_stride]))


@register_segmentation_network("fcn")
def _fcn(net: Backbone, num_classes: int, output_stride: int, upsampling: str) -> nn.Module:
    """torchvision's FCN head on the last features."""
    return FCN(Encoder(net), FCNHead(net.out_channels, num_classes))


# Encoder-decoder networks: skips from the backbone's feature pyramid. U-Net, FPN and FCN-8s step from skip to
# skip, so they need every stride (an undilated backbone, output stride 32); DeepLabV3+'s decoder reads the
# stride-4 skip and the ASPP output at 8 or 16.
@register_segmentation_network("fcn8s", output_strides=(32,))
def _fcn8s(net: Backbone, num_classes: int, output_stride: int, upsampling: str) -> nn.Module:
    return EncoderDecoder(net, FCN8sHead(net.pyramid_channels, num_classes))


@register_segmentation_network("deeplabv3plus", output_strides=(8, 16))
def _deeplabv3plus(net: Backbone, num_classes: int, output_stride: int, upsampling: str) -> nn.Module:
    from segmentation_models_pytorch.base import SegmentationHead
    from segmentation_models_pytorch.decoders.deeplabv3.decoder import DeepLabV3PlusDecoder

    decoder = DeepLabV3PlusDecoder(
        [3, *net.pyramid_channels], 5, 256, ASPP_RATES[output_stride], output_stride, True, 0.5
    )
    return EncoderDecoder(net, decoder, SegmentationHead(256, num_classes, kernel_size=1))


@register_segmentation_network("unet", output_strides=(32,), reads_upsampling=True)
def _unet(net: Backbone, num_classes: int, output_stride: int, upsampling: str) -> nn.Module:
    from segmentation_models_pytorch.base import SegmentationHead

    return EncoderDecoder(net, unet_decoder(net.pyramid_channels, upsampling), SegmentationHead(16, num_classes))


@register_segmentation_network("fpn", output_strides=(32,))
def _fpn(net: Backbone, num_classes: int, output_stride: int, upsampling: str) -> nn.Module:
    from segmentation_models_pytorch.base import SegmentationHead
    from segmentation_models_pytorch.decoders.fpn.decoder import FPNDecoder

    decoder = FPNDecoder([3, *net.pyramid_channels], 5, 256, 128, 0.2, "add")
    return EncoderDecoder(net, decoder, SegmentationHead(128, num_classes, kernel_size=1))


SEGMENTATION_ARCHS = tuple(SEGMENTATION_NETWORKS)
RESTRICTED_STRIDES = {name: n.output_strides for name, n in SEGMENTATION_NETWORKS.items() if n.output_strides}


def check_segmentation_arch(arch: str, output_stride: int, upsampling: str = UNREAD_UPSAMPLING) -> None:
    if arch not in SEGMENTATION_NETWORKS:
        raise ValueError(f"segmentation.arch must be one of {', '.join(SEGMENTATION_NETWORKS)}, got {arch!r}")
    strides = SEGMENTATION_NETWORKS[arch].output_strides
    if strides is not None and output_stride not in strides:
        raise ValueError(
            f"segmentation.arch {arch} needs segmentation.output_stride in {list(strides)}, got {output_stride}"
        )
    if upsampling not in UPSAMPLINGS:
        raise ValueError(f"segmentation.upsampling must be one of {', '.join(UPSAMPLINGS)}, got {upsampling!r}")


def segmentation_model(
    arch: str,
    backbone_arch: str,
    num_classes: int,
    output_stride: int = 8,
    weights=None,
    upsampling: str = UNREAD_UPSAMPLING,
    frozen_stages: int = -1,
    frozen_bn: bool = False,
) -> nn.Module:
    """A segmentation network on a backbone of the registry (its ImageNet weights from a local file):

    arch: an entry of SEGMENTATION_NETWORKS (DeepLabV3 and FCN on the dilated backbone, DeepLab: ResNet-50/101
    and EfficientNet-Lite0 dilate; FCN-8s, smp's DeepLabV3+, U-Net and FPN decoders on the backbone's
    feature pyramid). upsampling: U-Net's (UPSAMPLINGS); the other networks do not read it.
    frozen_stages, frozen_bn: the backbone's only (Backbone.freeze); the new head trains in full.
    """
    check_segmentation_arch(arch, output_stride, upsampling)
    net = backbone(backbone_arch, output_stride, weights, dilate=True).freeze(frozen_stages, frozen_bn)
    return SEGMENTATION_NETWORKS[arch].build(net, num_classes, output_stride, upsampling)
