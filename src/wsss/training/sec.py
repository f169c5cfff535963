"""SEC's loss (Kolesnikov & Lampert, "Seed, Expand and Constrain", ECCV 2016): the segmentation network trained
from localisation cues and image-level labels instead of cross-entropy on dense pseudo-masks.

The reference is kolesman/SEC @ c784190, pylayers/pylayers/pylayers.py (cited below by line) with
CRF/krahenbuhl2013/CRF.py and training/train.prototxt. All three terms read the network's scores on a grid of
1/stride of the crop (SEC: 41 x 41 for its 321 px inputs), where the cues, the CRF's image and the
probabilities are taken at the same points (grid_positions).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from wsss.data.voc import IGNORE
from wsss.nets.transforms import IMAGENET_MEAN, IMAGENET_STD
from wsss.seeds.masks import dense_crf

# SEC adds this to every softmax probability and renormalises (SoftmaxLayer, L13 and L28-29), and clips the
# CRF's marginals at it (CRFLayer, L74-75): no log of 0 in any term.
MIN_PROB = 1e-4
TERMS = ("seed", "expand", "constrain")


def grid_size(crop_size: int, stride: int) -> int:
    """Side of the loss grid: the output size of a stride-s network with "same" padding, (crop - 1) // s + 1
    (DeepLab's 41 for 321 px at stride 8)."""
    return (crop_size - 1) // stride + 1


def grid_positions(size: int, cells: int) -> np.ndarray:
    """The crop pixel each grid point reads: the nearest pixel to i * (size - 1) / (cells - 1), the point
    bilinear interpolation with aligned corners samples (the scores, scipy's zoom of the image in SEC's
    CRFLayer, L62); halves round up. For 321 px and 41 cells this is every 8th pixel, 0 ... 320."""
    if cells == 1:
        return np.zeros(1, np.int64)
    i = np.arange(cells, dtype=np.int64)
    return (2 * i * (size - 1) + (cells - 1)) // (2 * (cells - 1))


def cues_on_grid(mask: torch.Tensor, cells: int) -> torch.Tensor:
    """The cue (class id, IGNORE where none) of each grid point: the label of the crop pixel nearest to it
    (grid_positions), so a cue is read where its probability is sampled. mask: (H, W) long."""
    rows = torch.from_numpy(grid_positions(mask.shape[0], cells))
    cols = torch.from_numpy(grid_positions(mask.shape[1], cells))
    return mask[rows][:, cols]


def image_on_grid(x: torch.Tensor, cells: int) -> torch.Tensor:
    """The crop as the CRF sees it: (cells, cells, 3) uint8 RGB, the normalised crop x (3, H, W) back in 0-255
    (padding comes back as the ImageNet mean colour), resized bilinearly with aligned corners and rounded, as
    SEC's CRFLayer zooms its input (L60-64)."""
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    rgb = (x * std + mean) * 255
    small = F.interpolate(rgb[None], size=(cells, cells), mode="bilinear", align_corners=True)[0]
    return small.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous()


def sec_probabilities(scores: torch.Tensor) -> torch.Tensor:
    """SEC's softmax (SoftmaxLayer, L26-29): softmax over classes (dim 1), + MIN_PROB, renormalised."""
    probs = torch.softmax(scores, dim=1) + MIN_PROB
    return probs / probs.sum(dim=1, keepdim=True)


def seeding_loss(probs: torch.Tensor, cues: torch.Tensor) -> torch.Tensor:
    """-sum of log p(cue class) over an image's cue points / its number of cue points, averaged over the batch
    (SeedLossLayer, L92-93). probs (B, C, n, n); cues (B, n, n): class id, IGNORE where no cue. An image
    without a cue point adds 0 (SEC's code would divide by 0; its cues never miss an image, a crop's may)."""
    is_cue = cues != IGNORE
    log_p = torch.log(probs).gather(1, torch.where(is_cue, cues, 0)[:, None])[:, 0]
    total = (log_p * is_cue).flatten(1).sum(1)
    count = is_cue.flatten(1).sum(1).clamp(min=1)
    return -(total / count).mean()


def gwrp(values: torch.Tensor, decay: float) -> torch.Tensor:
    """Global weighted rank pooling over the last dim: the values sorted high to low, weighted by decay^j
    (j = 0, 1, ...) and divided by the weights' sum (ExpandLossLayer, L153-167). decay 0: the maximum;
    decay 1: the mean."""
    ranked = torch.sort(values, dim=-1, descending=True, stable=True).values
    weights = torch.pow(decay, torch.arange(values.shape[-1], dtype=torch.float64))
    return (ranked * (weights / weights.sum()).to(ranked)).sum(-1)


def expansion_loss(probs: torch.Tensor, present: torch.Tensor, fg_decay: float, bg_decay: float) -> torch.Tensor:
    """SEC's expansion loss (ExpandLossLayer, L169-175), the sum of three batch means:
    -mean over the image's foreground classes of log GWRP_fg_decay(p_c);
    -mean over its absent foreground classes of log(1 - max p_c) (GWRP with decay 0);
    -log GWRP_bg_decay(p_background).
    probs (B, C, n, n), class 0 the background; present (B, C - 1): 1 for the image's foreground classes. An
    image with no (or every) foreground class adds 0 to the first (second) mean, where SEC's code divides by 0.
    """
    flat = probs.flatten(2)
    foreground, present = flat[:, 1:], present.bool()
    absent = ~present
    present_log = torch.log(gwrp(foreground, fg_decay)) * present
    absent_log = torch.log(1 - foreground.amax(-1)) * absent
    present_term = -(present_log.sum(1) / present.sum(1).clamp(min=1)).mean()
    absent_term = -(absent_log.sum(1) / absent.sum(1).clamp(min=1)).mean()
    background_term = -torch.log(gwrp(flat[:, 0], bg_decay)).mean()
    return present_term + absent_term + background_term


def crf_marginals(scores: np.ndarray, images: np.ndarray, params: dict) -> np.ndarray:
    """The dense CRF's marginals Q (B, C, n, n) of each image's scores (B, C, n, n: the network's logits on the
    grid) over its grid image (B, n, n, 3 uint8), every class (SEC's CRFLayer, L56-77, runs all 21; no
    restriction to the image's classes, which the expansion loss reads). The unary energy is -scores, as
    CRF.py L28 sets it (equal to -log softmax up to a per-pixel constant, which the CRF's normalisation
    cancels); Q is clipped at MIN_PROB and renormalised (L74-75). params: wsss.seeds.masks.dense_crf's."""
    num_images, num_classes = scores.shape[:2]
    marginals = np.empty(scores.shape, np.float64)
    for i in range(num_images):
        unary = -np.ascontiguousarray(scores[i], dtype=np.float32).reshape(num_classes, -1)
        marginals[i] = dense_crf(images[i], unary, params)
    marginals = np.maximum(marginals, MIN_PROB)
    return marginals / marginals.sum(1, keepdims=True)


def constrain_loss(probs: torch.Tensor, marginals: torch.Tensor) -> torch.Tensor:
    """Mean over grid points (and images) of KL(Q || p) = sum_c Q log(Q / p) (ConstrainLossLayer, L118-120):
    the CRF's marginals Q are the target, a constant (SEC's commit 952f65a stops the gradient through the CRF)."""
    return (marginals * torch.log(marginals / probs)).sum(1).mean()


class SecLoss:
    """The weighted sum of SEC's three terms for a batch (settings: segmentation.sec), and their epoch means
    for the training history.

    Called with the network's logits at the crop size (on any device) and the batch's targets from
    wsss.training.datasets.SecDataset: "cues" (B, n, n), "classes" (B, C - 1) on the device, "image"
    (B, n, n, 3 uint8) kept on the CPU. The logits are resized to the n x n grid on their device; only that
    small grid (detached) goes to the CPU for the CRF, and its marginals come back. A term of weight 0 is not
    computed (no CRF without the constrain term).
    """

    def __init__(self, settings: dict):
        self.settings = settings
        self.weights = {term: settings[f"{term}_weight"] for term in TERMS}
        if not any(self.weights.values()):
            raise ValueError("segmentation.sec: seed_weight, expand_weight and constrain_weight are all 0")
        self.sums, self.seen = dict.fromkeys(TERMS, 0.0), 0

    def terms(self, logits: torch.Tensor, targets: dict) -> dict[str, torch.Tensor]:
        """The unweighted terms of the non-zero weights, in float32 (outside autocast)."""
        cells = targets["cues"].shape[-1]
        with torch.autocast(logits.device.type, enabled=False):
            scores = F.interpolate(logits.float(), size=(cells, cells), mode="bilinear", align_corners=True)
            probs = sec_probabilities(scores)
            terms = {}
            if self.weights["seed"]:
                terms["seed"] = seeding_loss(probs, targets["cues"])
            if self.weights["expand"]:
                decays = self.settings["fg_decay"], self.settings["bg_decay"]
                terms["expand"] = expansion_loss(probs, targets["classes"], *decays)
            if self.weights["constrain"]:
                grid = scores.detach().cpu().numpy()
                marginals = crf_marginals(grid, targets["image"].numpy(), self.settings["crf"])
                terms["constrain"] = constrain_loss(probs, torch.from_numpy(marginals).to(probs))
        return terms

    def __call__(self, logits: torch.Tensor, targets: dict) -> torch.Tensor:
        terms = self.terms(logits, targets)
        for term, value in terms.items():
            self.sums[term] += value.item() * len(logits)
        self.seen += len(logits)
        return sum(self.weights[term] * value for term, value in terms.items())

    def epoch_record(self) -> dict:
        """The epoch's mean of each computed term (<term>_loss), for fit's history; starts the next epoch."""
        record = {f"{term}_loss": self.sums[term] / self.seen for term in TERMS if self.weights[term]}
        self.sums, self.seen = dict.fromkeys(TERMS, 0.0), 0
        return record
