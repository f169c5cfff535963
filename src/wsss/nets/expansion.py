"""CAM expansion inside the classifier (classifier.method): SEAM, ACoL and multi-dilated convolutions.

Each is a Classifier whose forward returns a dict ("logits" always) and whose loss() reads it, so the training
loop stays the same; cam() gives ReLU'd (N, num_foreground, h, w) maps at feature resolution like classic CAM's,
so the CAM files, erasing, CRF, random walk and segmentation work unchanged after them.

- SEAM (Wang et al., CVPR 2020; YudeWang/SEAM): a second pass on the image rescaled by `scale`; equivariant
  regularisation (L1 between the rescaled CAM and the CAM of the rescaled image), the pixel correlation module
  (PCM: CAMs propagated over feature affinities) and its equivariant cross regularisation; CAMs from the PCM.
- ACoL (Zhang et al., CVPR 2018): a second head trained on the features with the first head's discriminative
  region (min-max-normalised map >= threshold) erased online; the two heads' CAMs fused by max.
- Multi-dilated convolution (Wei et al., CVPR 2018): extra 3x3 heads of dilation d > 1 beside the 1x1 head,
  each with its own classification loss; CAM = H_1 + mean_d H_d.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from wsss.nets.models import Classifier, head_weight
from wsss.pipeline.registry import CLASSIFIER_METHODS

# SEAM's equivariant cross regularisation averages the hardest 20 % of its entries (train_SEAM.py)
ECR_TOP = 0.2
EPS = 1e-5


def peak_normalised(maps: torch.Tensor) -> torch.Tensor:
    """Each (N, C, H, W) map divided by its own max (+1e-5), so stages (or heads) of any magnitude weigh alike."""
    return maps / (maps.amax((2, 3), keepdim=True) + 1e-5)


def max_norm(maps: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """SEAM's max_norm: ReLU, then each (N, C) map min-max normalised to [0, ~1)."""
    maps = F.relu(maps)
    low, high = maps.amin((2, 3), keepdim=True), maps.amax((2, 3), keepdim=True)
    return F.relu(maps - low - eps) / (high - low + eps)


def with_background(foreground: torch.Tensor) -> torch.Tensor:
    """(N, K, h, w) normalised foreground maps -> (N, 1 + K, h, w), background = 1 - max foreground (SEAM)."""
    return torch.cat([1 - foreground.amax(1, keepdim=True), foreground], 1)


def pcm_input(raw: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """The maps PCM refines (resnet38_SEAM.py, under no_grad): each foreground map ReLU'd and divided by its
    max, kept only where it is the per-pixel maximum over the foreground classes, plus the background
    1 - max foreground (computed before that cut): (N, 1 + K, h, w)."""
    raw = F.relu(raw.detach().float())
    normalised = F.relu(raw - eps) / (raw.amax((2, 3), keepdim=True) + eps)
    background = 1 - normalised.amax(1, keepdim=True)
    winners = normalised >= normalised.amax(1, keepdim=True)
    return torch.cat([background, normalised * winners], 1)


def max_onehot(maps: torch.Tensor) -> torch.Tensor:
    """SEAM's max_onehot: foreground channels (1:) zeroed where they are not the per-pixel foreground max."""
    foreground = maps[:, 1:]
    kept = foreground * (foreground == foreground.amax(1, keepdim=True))
    return torch.cat([maps[:, :1], kept], 1)


class PixelCorrelation(nn.Module):
    """SEAM's pixel correlation module on a Backbone: features = [image, relu(proj2(stage 2)), relu(proj3(stage
    3))] at the CAM's resolution (the backbone features detached: PCM trains only its own layers), mixed by a 1x1
    conv, L2-normalised per position; affinity = relu(cosine) with every column summing to 1; each output pixel
    a convex combination of the input map, channel by channel. Runs in float32 (the (hw)^2 sums)."""

    def __init__(self, stage2_channels: int, stage3_channels: int):
        super().__init__()
        self.proj2 = nn.Conv2d(stage2_channels, 64, 1, bias=False)
        self.proj3 = nn.Conv2d(stage3_channels, 128, 1, bias=False)
        self.mix = nn.Conv2d(3 + 64 + 128, 192, 1, bias=False)
        nn.init.kaiming_normal_(self.proj2.weight)
        nn.init.kaiming_normal_(self.proj3.weight)
        nn.init.xavier_uniform_(self.mix.weight, gain=4)

    def embedding(self, image: torch.Tensor, f2: torch.Tensor, f3: torch.Tensor, size) -> torch.Tensor:
        def resized(x):
            return F.interpolate(x.float(), size=size, mode="bilinear", align_corners=True)

        # float32 features into the float32 layers: forward() turns autocast off, the backbone may have run under it
        f2, f3 = f2.detach().float(), f3.detach().float()
        parts = [resized(image), resized(F.relu(self.proj2(f2))), resized(F.relu(self.proj3(f3)))]
        return self.mix(torch.cat(parts, 1))

    def affinity(self, embedding: torch.Tensor) -> torch.Tensor:
        """(N, hw, hw) from an (N, C, h, w) embedding: relu(cosine), each column normalised to sum 1."""
        flat = embedding.flatten(2)
        flat = flat / (flat.norm(dim=1, keepdim=True) + EPS)
        aff = F.relu(flat.transpose(1, 2) @ flat)
        return aff / (aff.sum(1, keepdim=True) + EPS)

    def propagate(self, maps: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        return (maps.float().flatten(2) @ self.affinity(embedding.float())).view(maps.shape)

    def forward(self, maps: torch.Tensor, image: torch.Tensor, f2: torch.Tensor, f3: torch.Tensor) -> torch.Tensor:
        with torch.autocast(maps.device.type, enabled=False):
            return self.propagate(maps, self.embedding(image, f2, f3, maps.shape[-2:]))


def seam_losses(full: dict, small: dict, targets: torch.Tensor) -> dict[str, torch.Tensor]:
    """SEAM's losses (train_SEAM.py) from the two branches' outputs (SEAMClassifier.branch): cls, the mean of
    the branches' multi-label soft-margin losses; er, the L1 between the full branch's max-normed CAM resized
    to the small image's size and the small branch's (foreground, absent classes zeroed); ecr, each PCM output
    against the other branch's one-hot CAM over the hardest ECR_TOP of entries, summed over both directions; min_pool,
    the mean over branches of the ReLU'd lowest quarter of the PCM's foreground max (at input size).
    Soft targets (mixup's mixed labels): cls takes them as they are; the class masks keep every class of the
    mixed image (target > 0), so ER, ECR and min_pool see the maps of both images' classes, unscaled."""
    present = (targets > 0).to(targets.dtype)  # multi-hot targets: the same values
    label = torch.cat([torch.ones_like(present[:, :1]), present], 1)[:, :, None, None].float()

    def at_input(maps, size):
        return F.interpolate(maps.float(), size=tuple(size), mode="bilinear", align_corners=True)

    def downscaled(maps):  # by scale: to the small image's own size (which the small branch's maps are at)
        return at_input(maps, small["size"])

    cams, pcms, mins, cls = [], [], [], []
    for branch, rescale in ((full, downscaled), (small, lambda m: m)):
        size = branch["size"]
        pcm = at_input(branch["pcm"], size)
        foreground = (pcm * label)[:, 1:].amax(1).flatten(1)
        count = foreground.shape[1] // 4
        mins.append(F.relu(foreground.topk(count, 1, largest=False).values).mean())
        cam = rescale(max_norm(at_input(branch["raw"], size))) * label[:, 1:]
        cams.append(with_background(cam))
        pcms.append(rescale(max_norm(pcm)) * label)
        cls.append(F.multilabel_soft_margin_loss(branch["logits"].float(), targets))
    er = (cams[0][:, 1:] - cams[1][:, 1:]).abs().mean()
    ecr = 0
    for pcm, other in ((pcms[0], cams[1]), (pcms[1], cams[0])):
        gap = (max_onehot(other.detach()) - pcm).abs().flatten(1)
        ecr = ecr + gap.topk(int(gap.shape[1] * ECR_TOP), 1).values.mean()
    return {"cls": (cls[0] + cls[1]) / 2, "er": er, "ecr": ecr, "min_pool": (mins[0] + mins[1]) / 2}


def acol_erase_mask(maps: torch.Tensor, targets: torch.Tensor | None, threshold: float) -> torch.Tensor:
    """ACoL's online erasing, per class: 0 where the class's map, min-max normalised per image, is >= threshold,
    1 elsewhere: (N, K, h, w). targets (N, K) multi-hot, or soft (mixup's: every class of the mixed image, target
    > 0, erases): classes absent from an image erase nothing (ACoL erases the ground-truth class's region); None:
    every class erases its own region (inference, where only the image's classes are kept). From the detached
    maps: no gradient flows through the mask."""
    maps = maps.detach().float()
    low, high = maps.amin((2, 3), keepdim=True), maps.amax((2, 3), keepdim=True)
    spread = high - low  # no epsilon, as ACoL: a pixel exactly at the threshold is erased; a flat map erases nothing
    erased = (maps - low) / torch.where(spread > 0, spread, 1) >= threshold
    if targets is not None:
        erased &= targets[:, :, None, None].bool()
    return (~erased).to(maps.dtype)


class SEAMClassifier(Classifier):
    """SEAM on any backbone: the 1x1 CAM head (bias-free; SEAM's own background channel is overwritten by
    1 - max foreground, so a foreground-only head is the same) plus a PixelCorrelation on stages 2 and 3 (the
    inputs of the last stage, like SEAM's conv4 and conv5)."""

    method = "seam"

    def __init__(self, *args, scale=0.3, er_weight=1.0, ecr_weight=1.0, min_pool_weight=1.0, **kwargs):
        super().__init__(*args, **kwargs)
        if not 0 < scale < 1:
            raise ValueError(f"classifier.seam.scale must be in (0, 1), got {scale}")
        self.scale, self.er_weight, self.ecr_weight = scale, er_weight, ecr_weight
        self.min_pool_weight = min_pool_weight
        self.pcm = PixelCorrelation(self.features.channels[1], self.features.channels[2])

    def method_settings(self) -> dict:
        return dict(
            scale=self.scale, er_weight=self.er_weight, ecr_weight=self.ecr_weight, min_pool_weight=self.min_pool_weight
        )

    def branch(self, x: torch.Tensor, nwc: bool = False) -> dict:
        f2, f3, f4 = self.stage_outputs(x, [2, 3, 4])
        raw = F.conv2d(f4, head_weight(self.classifier, nwc))
        pcm = self.pcm(pcm_input(raw), x, f2, f3)
        return {"logits": self.classifier(self.pool(f4)).flatten(1), "raw": raw, "pcm": pcm, "size": x.shape[-2:]}

    def forward(self, x: torch.Tensor) -> dict:
        outputs = self.branch(x)
        if self.training:
            small = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=True)
            outputs["small"] = self.branch(small)
        return outputs

    @staticmethod
    def training_maps(outputs: dict) -> torch.Tensor:
        """The full branch's raw CAM (the 1x1 head's maps, before the PCM)."""
        return outputs["raw"]

    def loss(self, outputs: dict, targets: torch.Tensor) -> torch.Tensor:
        losses = seam_losses(outputs, outputs["small"], targets)
        return (
            losses["cls"]
            + self.er_weight * losses["er"]
            + self.ecr_weight * losses["ecr"]
            + self.min_pool_weight * losses["min_pool"]
        )

    def cam(self, x: torch.Tensor, nwc: bool = False) -> torch.Tensor:
        """The PCM's foreground maps (SEAM's inference) less each map's minimum; nwc clamps the head before PCM.

        Every PCM output pixel is a convex combination of the map, so the maps stand on a floor that ER and ECR,
        comparing min-max normalised maps, never see. infer_SEAM.py min-max normalises the maps it writes; with
        the floor removed here (per scale), the pipeline's division by the peak does the same."""
        maps = self.branch(x, nwc)["pcm"][:, 1:]
        return F.relu(maps - maps.amin((2, 3), keepdim=True))


class ACoLClassifier(Classifier):
    """ACoL with two 1x1 heads on the shared features: head A (`classifier`, the plain CAM head) and head B on
    the features with A's region of each class erased. With linear bias-free heads, B on the features erased
    for class c is B's map of c times c's mask, so the masks apply to B's maps (K masks, one feature map)."""

    method = "acol"

    def __init__(self, *args, threshold=0.6, **kwargs):
        super().__init__(*args, **kwargs)
        if not 0 < threshold <= 1:
            raise ValueError(f"classifier.acol.threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        self.classifier_b = nn.Conv2d(self.features.out_channels, self.classifier.out_channels, 1, bias=False)

    def method_settings(self) -> dict:
        return dict(threshold=self.threshold)

    def forward(self, x: torch.Tensor) -> dict:
        features = self.features(x)
        maps = self.classifier(features)
        return {"logits": maps.mean((2, 3)), "maps": maps, "maps_b": self.classifier_b(features)}

    def loss(self, outputs: dict, targets: torch.Tensor) -> torch.Tensor:
        """The two heads' multi-label soft-margin losses, summed (ACoL's CE_A + CE_B)."""
        mask = acol_erase_mask(outputs["maps"], targets, self.threshold)
        logits_b = (outputs["maps_b"] * mask).mean((2, 3))
        return super().loss(outputs["logits"], targets) + super().loss(logits_b, targets)

    def cam(self, x: torch.Tensor, nwc: bool = False) -> torch.Tensor:
        """max(A, B on the A-erased features), each peak-normalised (ACoL's fusion of the two heads)."""
        features = self.features(x)
        maps_a = F.conv2d(features, head_weight(self.classifier, nwc)).float()
        maps_b = F.conv2d(features, head_weight(self.classifier_b, nwc)).float()
        maps_b = maps_b * acol_erase_mask(maps_a, None, self.threshold)
        return torch.maximum(peak_normalised(F.relu(maps_a)), peak_normalised(F.relu(maps_b)))


class MultiDilationClassifier(Classifier):
    """The 1x1 head (`classifier`, dilation 1) plus one 3x3 head of dilation d (padding d: same size) for every
    other rate; every head pools its map into logits with its own loss (summed). With rates [1] it is the plain
    Classifier: the same parameters, logits, loss and CAM."""

    method = "multi_dilation"

    def __init__(self, *args, rates=(1, 3, 6, 9), **kwargs):
        super().__init__(*args, **kwargs)
        rates = [int(rate) for rate in rates]
        if 1 not in rates or len(set(rates)) != len(rates) or min(rates) < 1:
            raise ValueError(f"classifier.multi_dilation.rates must be distinct positive ints with 1, got {rates}")
        self.rates = rates
        channels, classes = self.features.out_channels, self.classifier.out_channels
        self.dilated = nn.ModuleList(
            nn.Conv2d(channels, classes, 3, padding=rate, dilation=rate, bias=False) for rate in rates if rate != 1
        )

    def method_settings(self) -> dict:
        return dict(rates=self.rates)

    def forward(self, x: torch.Tensor) -> dict | torch.Tensor:
        features = self.features(x)
        logits = self.logits(features)
        if not self.dilated and not self.returns_maps:
            return logits
        outputs = {"logits": logits, "dilated_logits": [conv(features).mean((2, 3)) for conv in self.dilated]}
        if self.returns_maps:
            outputs["maps"] = self.classifier(features)  # the 1x1 head's (H_1)
        return outputs

    def loss(self, outputs, targets: torch.Tensor) -> torch.Tensor:
        if not isinstance(outputs, dict):
            return super().loss(outputs, targets)
        total = super().loss(outputs["logits"], targets)
        for logits in outputs["dilated_logits"]:
            total = total + super().loss(logits, targets)
        return total

    def cam(self, x: torch.Tensor, nwc: bool = False) -> torch.Tensor:
        """relu(H_1) + the mean over the dilated heads of relu(H_d) (H_1 alone for rates [1])."""
        features = self.features(x)

        def head_map(conv):
            return F.relu(F.conv2d(features, head_weight(conv, nwc), padding=conv.padding, dilation=conv.dilation))

        maps = head_map(self.classifier)
        if self.dilated:
            maps = maps + torch.stack([head_map(conv) for conv in self.dilated]).mean(0)
        return maps


CLASSES = {"cam": Classifier, "seam": SEAMClassifier, "acol": ACoLClassifier, "multi_dilation": MultiDilationClassifier}


def make_classifier(method: str, *args, method_settings: dict | None = None, **kwargs) -> Classifier:
    """The classifier of classifier.method (CLASSIFIER_METHODS); args and kwargs as Classifier's,
    method_settings: the method's own config sub-section (classifier.<method>), none for cam."""
    if method not in CLASSES:
        raise ValueError(f"classifier.method must be one of {', '.join(CLASSIFIER_METHODS)}, got {method!r}")
    if method != "cam" and kwargs.get("pooling", "gap") != "gap":
        raise ValueError(f"classifier.method {method} pools its maps by GAP: set classifier.pooling gap")
    return CLASSES[method](*args, **kwargs, **(method_settings or {}))
