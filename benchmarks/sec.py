"""SEC's loss (segmentation.loss: sec) per training step: its three terms and the CPU dense CRF alone.

    PYTHONPATH=src .venv/bin/python benchmarks/sec.py [--repeats 5] [--threads 2] [--device cpu]

A batch of 8 crops of 224 and of 321 px (SEC's size) at stride 8 (grids of 28 and 41 on a side), 21 classes
(VOC), random logits at the crop size (the network's output; the network itself is not timed, see
benchmarks/segmentation.py), random cues and image-level labels, SEC's settings (config/config.yaml's
segmentation.sec). For each crop size it prints the medians over --repeats, timed round-robin
(benchmarks/timing.py), of

  seed, expand, constrain: one term's forward and backward from the crop-size logits (the resize to the grid
      included); constrain includes the CRF, with the grid's scores copied to the CPU and the marginals back;
  resize: the resize of the logits to the grid alone (forward, and backward of their sum), which each term
      includes: the rest of a term's time is its own;
  crf: wsss.training.sec.crf_marginals alone (pydensecrf, one image after another, on the CPU);
  all three: SecLoss as training calls it, forward and backward.

On a GPU (--device cuda) every term but the CRF runs there and the CRF's share is the CPU's.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from timing import interleaved_medians  # benchmarks/timing.py

from wsss.training.sec import (
    SecLoss,
    constrain_loss,
    crf_marginals,
    expansion_loss,
    grid_size,
    sec_probabilities,
    seeding_loss,
)

ROOT = Path(__file__).resolve().parents[1]
BATCH, CLASSES, CROPS = 8, 21, (224, 321)


def sec_settings() -> dict:
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["segmentation"]["sec"]


def batch(crop: int, stride: int, device) -> tuple[torch.Tensor, dict]:
    """Random logits (B, C, crop, crop) on the device and SecDataset-like targets on the grid."""
    cells = grid_size(crop, stride)
    rng = np.random.default_rng(0)
    logits = torch.from_numpy(rng.standard_normal((BATCH, CLASSES, crop, crop), dtype=np.float32)).to(device)
    cues = torch.from_numpy(rng.integers(0, CLASSES, (BATCH, cells, cells)))
    cues[:, : cells // 2] = 255  # half the grid without a cue
    classes = torch.zeros(BATCH, CLASSES - 1)
    classes[:, :2] = 1
    image = torch.from_numpy(rng.integers(0, 256, (BATCH, cells, cells, 3), dtype=np.uint8))
    return logits, {"cues": cues.to(device), "classes": classes.to(device), "image": image}


def step_functions(crop: int, settings: dict, device) -> dict:
    logits, targets = batch(crop, settings["stride"], device)
    loss = SecLoss(settings)
    one = {"seed": {"seed_weight": 1, "expand_weight": 0, "constrain_weight": 0}}
    one["expand"] = {"seed_weight": 0, "expand_weight": 1, "constrain_weight": 0}
    one["constrain"] = {"seed_weight": 0, "expand_weight": 0, "constrain_weight": 1}
    cells = targets["cues"].shape[-1]
    small = F.interpolate(logits, size=(cells, cells), mode="bilinear", align_corners=True)
    grid, images = small.cpu().numpy(), targets["image"].numpy()

    def backward(term_loss):
        def run():
            x = logits.clone().requires_grad_()
            term_loss(x, targets).backward()
            sync(device)

        return run

    functions = {term: backward(SecLoss({**settings, **weights})) for term, weights in one.items()}
    functions["resize"] = backward(
        lambda x, _: F.interpolate(x, size=(cells, cells), mode="bilinear", align_corners=True).sum()
    )
    functions["crf"] = lambda: crf_marginals(grid, images, settings["crf"])
    functions["all three"] = backward(loss)
    return functions


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def check_terms(settings: dict) -> None:
    """The timed SecLoss computes what the terms give on their own (a guard against timing something else)."""
    logits, targets = batch(CROPS[0], settings["stride"], "cpu")
    cells = targets["cues"].shape[-1]
    small = F.interpolate(logits, size=(cells, cells), mode="bilinear", align_corners=True)
    probs = sec_probabilities(small)
    marginals = torch.from_numpy(crf_marginals(small.numpy(), targets["image"].numpy(), settings["crf"])).float()
    expected = (
        seeding_loss(probs, targets["cues"])
        + expansion_loss(probs, targets["classes"], settings["fg_decay"], settings["bg_decay"])
        + constrain_loss(probs, marginals)
    )
    torch.testing.assert_close(SecLoss(settings)(logits, targets), expected)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = sec_settings()
    check_terms(settings)
    print(f"SEC's loss per step: {BATCH} crops, {CLASSES} classes, stride {settings['stride']}, device {args.device},")
    print(f"{args.threads} threads, medians of {args.repeats} (seconds; forward + backward; crf: marginals only)")
    names = ("seed", "expand", "constrain", "resize", "crf", "all three")
    print(f"{'crop (grid)':<14}" + "".join(f"{name:>12}" for name in names))
    for crop in CROPS:
        seconds = interleaved_medians(step_functions(crop, settings, args.device), args.repeats)
        grid = grid_size(crop, settings["stride"])
        print(f"{f'{crop} ({grid}x{grid})':<14}" + "".join(f"{seconds[name]:>12.4f}" for name in names))


if __name__ == "__main__":
    main()
