"""IRN's inter-pixel relation network, class-boundary branch (Ahn et al., CVPR 2019; net/resnet50_irn.py):
trained on the confident pseudo-masks, it gives the boundary map the random walk (wsss.seeds.random_walk)
spreads CAMs over. The displacement branch (instances) is not built.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from wsss.nets.backbones import Backbone, backbone
from wsss.nets.checkpoints import load_checkpoint, load_state
from wsss.nets.hardware import autocast, flipped_pair
from wsss.nets.transforms import resize_long_side, to_tensor
from wsss.seeds.cam import strided_size
from wsss.seeds.random_walk import affinity_loss
from wsss.training.datasets import SegmentationDataset, TrainingImages
from wsss.training.loop import TrainingJob, train_and_save

BRANCH_WIDTH = 32  # channels each backbone stage contributes to the boundary map (IRN's fc_edge1-5)


class EdgeNet(nn.Module):
    """A frozen ImageNet backbone (as IRN: its weights and BatchNorm statistics never change) whose stem (where
    it ends at stride 4: ResNet's, IRN's fc_edge1) and four stages each feed a 1x1 conv to 32 channels,
    GroupNorm and ReLU, resized to the stride-4 grid; a 1x1 conv over their concatenation gives one boundary
    logit per cell. EfficientNet's stem ends at stride 2: there the four stages alone feed it.

    inference_size: the square crop side it was trained on; edge_map pads every image to it at least, as
    IRN's EdgeDisplacement pads to 512 (GroupNorm's statistics then cover the frame it learnt them on)."""

    def __init__(self, arch: str, output_stride: int = 16, weights=None, inference_size: int | None = None):
        super().__init__()
        self.features: Backbone = backbone(arch, output_stride, weights)
        self.features.requires_grad_(False)
        self.inference_size = inference_size
        stem = self.features.stem_channels
        self.read_stages = ((0,) if stem else ()) + (1, 2, 3, 4)
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels, BRANCH_WIDTH, 1, bias=False), nn.GroupNorm(4, BRANCH_WIDTH))
            for channels in ([stem] if stem else []) + self.features.channels
        )
        self.edge = nn.Conv2d(BRANCH_WIDTH * len(self.branches), 1, 1)

    def train(self, mode: bool = True):
        """nn.Module.train, but the backbone stays in eval mode."""
        super().train(mode)
        self.features.eval()
        return self

    def head_parameters(self) -> list[nn.Parameter]:
        return [*self.branches.parameters(), *self.edge.parameters()]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, ceil(H / 4), ceil(W / 4)) boundary logits."""
        with torch.no_grad():
            stages = self.features.stage_outputs(x, self.read_stages)
        grid = stages[0].shape[-2:]
        maps = []
        for branch, features in zip(self.branches, stages):
            mapped = branch(features)
            if mapped.shape[-2:] != grid:
                mapped = F.interpolate(mapped, size=grid, mode="bilinear", align_corners=False)
            maps.append(F.relu(mapped))
        return self.edge(torch.cat(maps, 1))


def grid_labels(masks: torch.Tensor, grid) -> torch.Tensor:
    """(N, H, W) masks -> (N, h, w) on the boundary map's grid as PIL's nearest resize samples them (IRN:
    pil_rescale(label, 0.25, 0)): cell i reads pixel floor((i + 0.5) H / h), i.e. pixels 2, 6, 10, ... of a
    side 4 h long (torch's "nearest" would read 0, 4, 8, ...)."""
    return F.interpolate(masks[:, None].float(), size=tuple(grid), mode="nearest-exact")[:, 0].long()


def train_irn(images: TrainingImages, settings: dict, job: TrainingJob) -> pd.DataFrame:
    """Train the boundary branch on images' confident pseudo-masks (255 = not confident, never trained on),
    with the segmentation network's augmentation; settings: the irn config section. Resumes like every
    training step (wsss.training.loop.fit)."""
    dataset = SegmentationDataset(images, settings["resize_long"], settings["crop_size"])
    torch.manual_seed(job.seed)
    model = EdgeNet(settings["backbone"], settings["output_stride"], job.weights, settings["crop_size"])
    radius = settings["radius"]

    def loss_fn(logits, masks):
        return affinity_loss(torch.sigmoid(logits[:, 0].float()), grid_labels(masks, logits.shape[-2:]), radius)

    meta = dict(arch=settings["backbone"], output_stride=settings["output_stride"], inference_size=model.inference_size)
    # the whole network trainable here is new: one learning rate (no head multiplier)
    head_settings = dict(settings, head_lr_mult=1.0)
    return train_and_save(model, dataset, loss_fn, [], model.head_parameters(), head_settings, job, meta, desc="IRN")


def load_irn(path) -> EdgeNet:
    checkpoint = load_checkpoint(path)
    meta = checkpoint["meta"]
    model = EdgeNet(meta["arch"], meta["output_stride"], inference_size=meta.get("inference_size"))
    return load_state(model, checkpoint, path).eval()


@torch.no_grad()
def edge_map(model: EdgeNet, image: np.ndarray, device, long_side: int | None = None) -> torch.Tensor:
    """(ceil(h / 4), ceil(w / 4)) boundary probabilities of the image resized to long_side (h x w; None: as
    it is), from the logits averaged over the image and its horizontal flip, as IRN's EdgeDisplacement: the
    image and its flip are each padded at the bottom and right with zeros (the mean colour) to the model's
    inference_size square (at least h x w), and the logits cropped back to the image's cells."""
    device = torch.device(device)
    x = to_tensor(resize_long_side(image, long_side))
    height, width = x.shape[-2:]
    pair = flipped_pair(x, device)
    side = model.inference_size or 0
    pair = F.pad(pair, (0, max(side - width, 0), 0, max(side - height, 0)))
    with autocast(device):
        logits = model(pair).float()
    grid = strided_size(height, width)
    logits = logits[..., : grid[0], : grid[1]]
    return torch.sigmoid(logits[0, 0] / 2 + logits[1, 0].flip(-1) / 2)
