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
from wsss.seeds.random_walk import affinity_loss
from wsss.training.datasets import SegmentationDataset, TrainingImages
from wsss.training.loop import TrainingJob, train_and_save

BRANCH_WIDTH = 32  # channels each backbone stage contributes to the boundary map (IRN's fc_edge1-5)


class EdgeNet(nn.Module):
    """A frozen ImageNet backbone (as IRN: its weights and BatchNorm statistics never change) whose four
    stages each feed a 1x1 conv to 32 channels, GroupNorm and ReLU, resized to stage 1's stride-4 grid;
    a 1x1 conv over their concatenation gives one boundary logit per cell. IRN also feeds the stem's
    output; here the stages alone do, for every backbone of the registry."""

    def __init__(self, arch: str, output_stride: int = 16, weights=None):
        super().__init__()
        self.features: Backbone = backbone(arch, output_stride, weights)
        self.features.requires_grad_(False)
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels, BRANCH_WIDTH, 1, bias=False), nn.GroupNorm(4, BRANCH_WIDTH))
            for channels in self.features.channels
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
            stages = self.features.stage_outputs(x, (1, 2, 3, 4))
        grid = stages[0].shape[-2:]
        maps = []
        for branch, features in zip(self.branches, stages):
            mapped = branch(features)
            if mapped.shape[-2:] != grid:
                mapped = F.interpolate(mapped, size=grid, mode="bilinear", align_corners=False)
            maps.append(F.relu(mapped))
        return self.edge(torch.cat(maps, 1))


def grid_labels(masks: torch.Tensor, grid) -> torch.Tensor:
    """(N, H, W) masks -> (N, h, w) on the boundary map's grid, nearest (IRN: pil_rescale(label, 0.25, 0))."""
    return F.interpolate(masks[:, None].float(), size=tuple(grid), mode="nearest")[:, 0].long()


def train_irn(images: TrainingImages, settings: dict, job: TrainingJob) -> pd.DataFrame:
    """Train the boundary branch on images' confident pseudo-masks (255 = not confident, never trained on),
    with the segmentation network's augmentation; settings: the irn config section. Resumes like every
    training step (wsss.training.loop.fit)."""
    dataset = SegmentationDataset(images, settings["resize_long"], settings["crop_size"])
    torch.manual_seed(job.seed)
    model = EdgeNet(settings["backbone"], settings["output_stride"], job.weights)
    radius = settings["radius"]

    def loss_fn(logits, masks):
        return affinity_loss(torch.sigmoid(logits[:, 0].float()), grid_labels(masks, logits.shape[-2:]), radius)

    meta = dict(arch=settings["backbone"], output_stride=settings["output_stride"])
    # the whole network trainable here is new: one learning rate (no head multiplier)
    head_settings = dict(settings, head_lr_mult=1.0)
    return train_and_save(model, dataset, loss_fn, [], model.head_parameters(), head_settings, job, meta, desc="IRN")


def load_irn(path) -> EdgeNet:
    checkpoint = load_checkpoint(path)
    meta = checkpoint["meta"]
    return load_state(EdgeNet(meta["arch"], meta["output_stride"]), checkpoint, path).eval()


@torch.no_grad()
def edge_map(model: EdgeNet, image: np.ndarray, device, long_side: int | None = None) -> torch.Tensor:
    """(ceil(h / 4), ceil(w / 4)) boundary probabilities of the image resized to long_side (h x w; None: as
    it is), from the logits averaged over the image and its horizontal flip (IRN's EdgeDisplacement)."""
    device = torch.device(device)
    x = to_tensor(resize_long_side(image, long_side))
    pair = flipped_pair(x, device)
    with autocast(device):
        logits = model(pair).float()
    return torch.sigmoid(logits[0, 0] / 2 + logits[1, 0].flip(-1) / 2)
