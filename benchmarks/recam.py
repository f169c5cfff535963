"""How wide ReCAM's re-activated maps are on a finished run, and whether training its class predictor longer
narrows them (config/demo-recam.yaml's cam and recam experiments, e.g. on coco340 with config/photos.yaml).

    .venv/bin/python benchmarks/recam.py results [--seed 0] [--schedules 0.005:4 0.005:16 0.05:16]

1. Map width from the run's own files: the mean share of an image's pixels above --threshold in the max-
   normalised maps of its labelled classes, the plain CAMs (results/cam/seed<k>/cams/r0) against ReCAM's
   (results/recam/seed<k>/cams/recam), over the train split.
2. The class predictor alone: with the round-0 classifier fixed (ReCAM's step moves the backbone little), the
   CAM-weighted features of two augmented passes over the train images are computed once; then, for each
   lr:epochs schedule, ReCAM's predictor (bias-free, its init) is trained on them with ReCAM's cross-entropy
   (config/config.yaml's recam optimiser, momentum, weight decay, poly power and batch size) and prints its
   final cross-entropy, how far its weights moved from their init, and the share of the feature grid above
   --threshold in the maps of W_recam * W_cls (ReCAM's head) against W_cls (the plain head).
A diagnostic, not a timing: it uses 1 thread and a few minutes on 2 cores for coco340's 255 train photos.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from wsss.data.datasets import Dataset
from wsss.data.labels import load_labels
from wsss.seeds.cam import normalise
from wsss.training.classifier import load_classifier, trainable_ids
from wsss.training.datasets import ClassificationDataset
from wsss.training.loop import make_optimizer
from wsss.training.recam import cam_weighted_features, recam_cross_entropy

CONFIG = Path(__file__).resolve().parents[1] / "config/config.yaml"


def file_width(folder: Path, image_ids: set, threshold: float) -> tuple[float, int]:
    """Mean share of pixels above threshold in the saved maps (one per labelled class) of image_ids, and the count."""
    shares = []
    for path in sorted(folder.glob("shard*/*.npy")):
        if path.stem in image_ids:
            shares.append(float((np.load(path, allow_pickle=False).astype(np.float32) > threshold).mean()))
    return float(np.mean(shares)), len(shares)


def grid_width(head: torch.Tensor, features: list, targets: torch.Tensor, threshold: float) -> float:
    """Mean share of feature cells above threshold in relu(head . F), max-normalised, of the labelled classes."""
    shares = []
    for grid, target in zip(features, targets):
        maps = normalise(F.relu(torch.einsum("kc,chw->khw", head, grid)))
        shares.append(float((maps[target > 0] > threshold).float().mean()))
    return float(np.mean(shares))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threshold", type=float, default=0.4, help="config/photos.yaml's cam.eval_threshold")
    parser.add_argument("--schedules", nargs="+", default=["0.005:4", "0.005:16", "0.05:16"])
    parser.add_argument("--resize-long", type=int, nargs=2, default=[256, 384])
    parser.add_argument("--crop-size", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    results = args.results
    recam = yaml.safe_load(CONFIG.read_text())["recam"]
    dataset = Dataset.open(results / "data")
    labels = load_labels(results / "labels/image_labels.parquet")
    ids = trainable_ids(dataset.split_ids("train"), labels)  # the train images with a labelled class

    print(f"1. maps of the run (seed {args.seed}, train split): share of pixels above {args.threshold}")
    for name, folder in (("plain CAM", f"cam/seed{args.seed}/cams/r0"), ("ReCAM", f"recam/seed{args.seed}/cams/recam")):
        width, images = file_width(results / folder, set(ids), args.threshold)
        print(f"  {name:10s} {width:.3f}  ({images} images, {folder})")

    classifier = load_classifier(results / f"cam/seed{args.seed}/classifier/r0/model.pt").eval()
    foreground = classifier.classifier.out_channels
    images = ClassificationDataset(dataset, ids, labels, foreground, args.resize_long, args.crop_size)
    weighted, targets, grids = [], [], []
    with torch.no_grad():
        for augmented_pass in range(2):
            for index in range(len(images)):
                x, target = images[index]
                features = classifier.features(x[None])
                weighted.append(cam_weighted_features(classifier.classifier(features), features)[0])
                targets.append(target)
                if augmented_pass == 0:
                    grids.append(features[0])
    weighted, targets = torch.stack(weighted), torch.stack(targets)
    w_cls = classifier.classifier.weight.detach().flatten(1)
    batch_size = recam["batch_size"]
    steps_per_epoch = len(ids) // batch_size
    print(f"2. the class predictor on fixed features ({len(ids)} images x 2 crops, batches of {batch_size}):")
    plain = grid_width(w_cls, grids, targets, args.threshold)
    print(f"  plain head W_cls: share of cells above {args.threshold} {plain:.3f}")
    for schedule in args.schedules:
        lr, epochs = float(schedule.split(":")[0]), int(schedule.split(":")[1])
        torch.manual_seed(args.seed)
        predictor = nn.Linear(weighted.shape[2], w_cls.shape[0], bias=False)
        init = predictor.weight.detach().clone()
        optimizer = make_optimizer([{"params": predictor.parameters(), "lr": lr}], {**recam, "lr": lr})
        steps = epochs * steps_per_epoch
        # wsss.training.loop.fit's poly decay, per step
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step, total=steps: max(0.0, 1 - step / total) ** recam["poly_power"]
        )
        for _ in range(epochs):
            order = torch.randperm(len(weighted))[: steps_per_epoch * batch_size].view(-1, batch_size)
            for batch in order:
                loss = recam_cross_entropy(predictor, weighted[batch], targets[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                scheduler.step()
        with torch.no_grad():
            ce = float(recam_cross_entropy(predictor, weighted, targets))
            moved = float((predictor.weight - init).norm() / init.norm())
            width = grid_width(predictor.weight * w_cls, grids, targets, args.threshold)
        print(
            f"  lr {lr:g}, {epochs} epochs ({steps} steps): cross-entropy {ce:.3f}, |W - W_init| / |W_init| "
            f"{moved:.2f}, W_recam * W_cls: share of cells above {args.threshold} {width:.3f}"
        )


if __name__ == "__main__":
    main()
