"""What the background reading's switches cost on CPU, at photo sizes (config/photos.yaml, config/photos-reading.yaml).

    .venv/bin/python benchmarks/reading.py [--repeats 7] [--photos 20]

1. saliency.source: seconds per photo of OpenCV's fine_grained and spectral_residual maps (the saliency step,
   threads.crf: 1 thread), on the first --photos photos of coco340's train split where ../shared has it, else on
   random 500x375 images (said in the output).
2. classifier.mixup: one classifier training step (EfficientNet-Lite0 at output stride 16, 20 classes, a batch
   of 16 crops of 256 px, 2 threads: the photos profile's classifier) plain and with Mixup-CAM at
   config/photos-reading.yaml's settings (mixing, the entropy and the concentration term).
3. segmentation.class_weights: seconds per label map to count the pseudo-labels (wsss.training.class_weights,
   once per network before training) on 500x375 label PNGs.
SEC's losses: benchmarks/sec.py; overlap-tile inference: benchmarks/tiles.py.
Time it on an idle machine: a second torch process on the same cores slows both several-fold.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from timing import interleaved_medians  # benchmarks/timing.py

from wsss.data.voc import write_mask
from wsss.nets.models import Classifier
from wsss.seeds.saliency import METHODS, compute_saliency
from wsss.training.class_weights import count_labels, median_frequency_weights
from wsss.training.mixup import batch_mixer, regularised_loss

PHOTOS = Path(__file__).resolve().parents[1] / "../shared/data/coco340-voc/VOC2012"
MIXUP = {"alpha": 0.2, "entropy_weight": 0.02, "concentration_weight": 2.0e-4}  # config/photos-reading.yaml


def photos(count: int) -> tuple[list[np.ndarray], str]:
    """coco340's first train photos, or random images of VOC's typical size where ../shared is absent."""
    listing = PHOTOS / "ImageSets/Segmentation/train.txt"
    if listing.is_file():
        ids = listing.read_text().split()[:count]
        images = [np.asarray(Image.open(PHOTOS / "JPEGImages" / f"{i}.jpg").convert("RGB")) for i in ids]
        sizes = np.array([image.shape[:2] for image in images])
        width, height = np.median(sizes[:, 1]), np.median(sizes[:, 0])
        return images, f"{len(images)} coco340 train photos (median {width:.0f}x{height:.0f})"
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (375, 500, 3), np.uint8) for _ in range(count)], f"{count} random 500x375 images"


def time_saliency(images: list[np.ndarray], repeats: int) -> dict[str, float]:
    functions = {method: lambda m=method: [compute_saliency(image, m) for image in images] for method in METHODS}
    return {name: seconds / len(images) for name, seconds in interleaved_medians(functions, repeats).items()}


def classifier_step(mixup: dict | None, inputs: torch.Tensor, targets: torch.Tensor):
    torch.manual_seed(0)
    model = Classifier("efficientnet_lite0", 20, 16).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss = regularised_loss(model, mixup) if mixup else model.loss
    mix = batch_mixer(mixup["alpha"]) if mixup else None
    generator = torch.Generator().manual_seed(0)

    def step():
        x, y = mix(inputs, targets, generator) if mix else (inputs, targets)
        optimizer.zero_grad(set_to_none=True)
        loss(model(x), y).backward()
        optimizer.step()

    return step


def time_mixup(repeats: int) -> dict[str, float]:
    inputs = torch.randn(16, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    targets = (torch.rand(16, 20, generator=torch.Generator().manual_seed(1)) < 0.15).float()
    return interleaved_medians(
        {"plain": classifier_step(None, inputs, targets), "mixup": classifier_step(MIXUP, inputs, targets)}, repeats
    )


def time_class_weights(count: int, repeats: int) -> float:
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for k in range(count):
            labels = rng.integers(0, 21, (375, 500)).astype(np.uint8)
            labels[rng.random((375, 500)) < 0.3] = 255
            paths.append(Path(folder) / f"{k}.png")
            write_mask(paths[-1], labels)
        seconds = interleaved_medians({"count": lambda: median_frequency_weights(count_labels(paths, 21))}, repeats)
    return seconds["count"] / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--photos", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    images, described = photos(args.photos)
    print(f"saliency.source, {described}, 1 thread: median over {args.repeats} runs")
    for method, seconds in time_saliency(images, args.repeats).items():
        print(f"  {method:18s} {seconds * 1000:.1f} ms/photo")
    torch.set_num_threads(2)
    steps = time_mixup(args.repeats)
    plain, mixup = steps["plain"], steps["mixup"]
    print(f"classifier.mixup, EfficientNet-Lite0, 16 crops of 256 px, 2 threads: median over {args.repeats} runs")
    print(f"  plain step         {plain:.3f} s")
    print(f"  Mixup-CAM step     {mixup:.3f} s  ({100 * (mixup - plain) / plain:+.1f}%)")
    torch.set_num_threads(1)
    per_map = time_class_weights(args.photos, args.repeats)
    print(f"segmentation.class_weights, {args.photos} label maps of 500x375, 1 thread: median over {args.repeats} runs")
    print(f"  counting           {per_map * 1000:.2f} ms/label map (once per network; the loss's weights cost nothing)")


if __name__ == "__main__":
    main()
