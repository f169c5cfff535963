"""Mixup-CAM (Chang et al., BMVC 2020, "Mixup-CAM: Weakly-supervised Semantic Segmentation via Uncertainty
Regularization"): the classifier trains on mixed images and mixed labels, with two uncertainty regularisers.

Mixup (Zhang et al., ICLR 2018) blends each image of a batch with another one of it: x = lam x_i + (1 - lam) x_j,
y = lam y_i + (1 - lam) y_j, lam ~ Beta(alpha, alpha). A blended object is weaker evidence, so the classifier
cannot rely on one discriminative part and spreads its response over the object; the two regularisers keep that
response decisive and compact:

- entropy: the self-entropy of the predicted class probabilities (Grandvalet & Bengio), pushed down so mixed
  inputs still get confident predictions;
- concentration (SCOPS, Hung et al., CVPR 2019): the spatial variance of each present class's normalised CAM
  around its centroid, so the widened response stays one region rather than scattered blobs.

Loss = classification (on the soft targets) + entropy_weight * entropy + concentration_weight * concentration.
The paper has no official code; the terms follow the only re-implementation found, liuvince/mva-wsss
(loss_scheduler_optimizer.py, train_cam.py), itself adapted from facebookresearch/mixup-cifar10 and NVlabs/SCOPS.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from wsss.nets.models import Classifier

# classifier.mixup switched off: no mixing, no extra term, no extra random draw
OFF = {"alpha": 0.0, "entropy_weight": 0.0, "concentration_weight": 0.0}
# added to each class's softmax map before it is normalised over space (SCOPS: "prevent gradient explosion")
CONCENTRATION_EPS = 1e-3


def mixing_draw(batch_size: int, alpha: float, generator: torch.Generator) -> tuple[float, torch.Tensor]:
    """(lam ~ Beta(alpha, alpha), the partner of each image: a permutation of the batch), from one draw of
    generator (the training loop's seeded one, which its checkpoint keeps), so a batch's mixing repeats and a
    resumed run mixes as an uninterrupted one. numpy samples them: torch has no public seeded Beta sampler."""
    seed = int(torch.randint(0, 2**63 - 1, (), generator=generator))
    rng = np.random.default_rng(seed)
    return float(rng.beta(alpha, alpha)), torch.from_numpy(rng.permutation(batch_size))


def mixed(inputs: torch.Tensor, targets: torch.Tensor, lam: float, partners: torch.Tensor):
    """Each image and its target blended with its partner's: lam * own + (1 - lam) * partner's."""
    partners = partners.to(inputs.device)
    return lam * inputs + (1 - lam) * inputs[partners], lam * targets + (1 - lam) * targets[partners]


def batch_mixer(alpha: float) -> Callable | None:
    """The training loop's mix(inputs, targets, generator) for classifier.mixup.alpha; None at alpha 0 (off)."""
    if alpha <= 0:
        return None

    def mix(inputs: torch.Tensor, targets: torch.Tensor, generator: torch.Generator):
        lam, partners = mixing_draw(len(inputs), alpha, generator)
        return mixed(inputs, targets, lam, partners)

    return mix


def binary_entropy(logits: torch.Tensor) -> torch.Tensor:
    """The mean over images and classes of -p log p - (1 - p) log(1 - p), p = sigmoid(logit): each class's own
    probability, as the multi-label classifier predicts it (the re-implementation's entropy_regularization_loss,
    without its 1e-5 inside the logs). Written with softplus (-log p = softplus(-x)), exact at any logit."""
    logits = logits.float()
    probability = torch.sigmoid(logits)
    return (probability * F.softplus(-logits) + (1 - probability) * F.softplus(logits)).mean()


def concentration(maps: torch.Tensor, weights: torch.Tensor, eps: float = CONCENTRATION_EPS) -> torch.Tensor:
    """SCOPS's concentration loss on CAMs (maps: (N, K, h, w), before ReLU), as the re-implementation applies it:
    the ReLU'd maps softmaxed over the classes, each class's map (+ eps) divided by its sum over space (a spatial
    probability map), its centroid mu and its variance sum_hw p(h, w) ||(h, w) - mu||^2, with coordinates
    scaled to [-1, 1) (row i: 2i/h - 1, column j: 2j/w - 1); summed over classes weighted by weights (N, K), the
    (soft) targets, and averaged over images. With mixed targets the weight of a class is lam for image i's
    classes and 1 - lam for its partner's, as the re-implementation's lam * L(y_i) + (1 - lam) * L(y_j)."""
    probability = torch.softmax(F.relu(maps.float()), 1) + eps
    density = probability / probability.sum((2, 3), keepdim=True)
    height, width = maps.shape[-2:]
    rows = (torch.arange(height, device=maps.device, dtype=torch.float32) * 2 / height - 1)[:, None]
    cols = (torch.arange(width, device=maps.device, dtype=torch.float32) * 2 / width - 1)[None, :]
    row_centre = (density * rows).sum((2, 3), keepdim=True)
    col_centre = (density * cols).sum((2, 3), keepdim=True)
    variance = (density * ((rows - row_centre) ** 2 + (cols - col_centre) ** 2)).sum((2, 3))
    return (weights.float() * variance).sum() / len(maps)


def regularised_loss(model: Classifier, settings: dict) -> Callable:
    """model.loss plus the weighted terms of classifier.mixup (settings); model.loss itself when both weights
    are 0. The entropy reads the main head's logits (model.batch_logits), the concentration the CAM head's maps
    (model.training_maps: classic CAM's, ACoL's head A, multi-dilation's 1x1 head, SEAM's full-branch raw
    CAM); the concentration weight makes the model return them (returns_maps)."""
    entropy_weight, concentration_weight = settings["entropy_weight"], settings["concentration_weight"]
    model.returns_maps = concentration_weight > 0
    if entropy_weight == 0 and concentration_weight == 0:
        return model.loss

    def loss(outputs, targets: torch.Tensor) -> torch.Tensor:
        total = model.loss(outputs, targets)
        if entropy_weight > 0:
            total = total + entropy_weight * binary_entropy(model.batch_logits(outputs))
        if concentration_weight > 0:
            total = total + concentration_weight * concentration(model.training_maps(outputs), targets)
        return total

    return loss
