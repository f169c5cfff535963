"""CAM methods on CPU: seconds per image for each method, and the training-step cost of TAP, Hide-and-Seek and
the CAM-expansion classifiers (SEAM, ACoL, multi-dilation).

    .venv/bin/python benchmarks/cam_methods.py [--repeats 15] [--classes 2] [--threads 1]

1. A randomly initialised ResNet-18 classifier (output stride 16, 20 classes) makes the CAMs of random
   images of the demo's size (100x128) with the default 4 scales + flips, as the cams rule does
   (threads.infer: 1), for every method; gradient methods pay one backward per image-level class, so
   the number of classes per image is a parameter; the classifier.method models (SEAM's PCM, ACoL's two
   heads, multi-dilation's heads) make classic CAMs of their own kind. Prints the median seconds per image.
2. One SGD step (forward, backward, update) on a batch of 16 crops of 96 px (the demo's classifier
   settings, threads.train: 2) with GAP, with TAP and with each classifier.method (the demo grid's settings:
   SEAM at scale 0.5, ACoL at 0.6, rates 1, 2, 3), and the time Hide-and-Seek (hide_prob 0.5, 16 px
   patches) adds to making that batch. Prints medians and the overhead relative to the plain step.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from timing import interleaved_medians  # benchmarks/timing.py

from wsss.nets.expansion import make_classifier
from wsss.nets.models import Classifier
from wsss.nets.transforms import hide_patches, normalised_colour
from wsss.seeds.cam import DEFAULT_SETTINGS, image_cams

SCALES = [1.0, 0.5, 1.5, 2.0]
VARIANTS = {
    "cam": {},
    "cam + nwc + pas 95": {"nwc": True, "pas_percentile": 95.0},
    "gradcam": {"method": "gradcam"},
    "gradcampp": {"method": "gradcampp"},
    "layer_fused [2, 3, 4]": {"method": "layer_fused"},
}
# classifier.method: the demo grid's settings (config/demo-expansion.yaml)
EXPANSIONS = {
    "seam": {"scale": 0.5, "er_weight": 1.0, "ecr_weight": 1.0, "min_pool_weight": 1.0},
    "acol": {"threshold": 0.6},
    "multi_dilation": {"rates": [1, 2, 3]},
}


def time_cam_methods(repeats: int, num_classes: int) -> dict[str, float]:
    torch.manual_seed(0)
    model = Classifier("resnet18", 20, 16).eval()
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(100, 128, 3)).astype(np.uint8)
    class_ids = sorted(rng.choice(np.arange(1, 21), num_classes, replace=False).tolist())
    functions = {
        name: lambda variant=variant: image_cams(
            model, image, class_ids, {**DEFAULT_SETTINGS, "scales": SCALES, **variant}, "cpu"
        )
        for name, variant in VARIANTS.items()
    }
    settings = {**DEFAULT_SETTINGS, "scales": SCALES}
    for method, method_settings in EXPANSIONS.items():
        torch.manual_seed(0)
        expanded = make_classifier(method, "resnet18", 20, 16, method_settings=method_settings).eval()
        functions[f"classifier.method {method}"] = lambda m=expanded: image_cams(m, image, class_ids, settings, "cpu")
    return interleaved_medians(functions, repeats)


def training_step(pooling: str, inputs: torch.Tensor, targets: torch.Tensor, method: str = "cam"):
    """One SGD step of a fresh classifier with the given pooling (TAP at threshold 0.5) or classifier.method."""
    torch.manual_seed(0)
    if method == "cam":
        model = Classifier("resnet18", 20, 16, pooling=pooling, tap_threshold=0.5).train()
    else:
        model = make_classifier(method, "resnet18", 20, 16, method_settings=EXPANSIONS[method]).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        optimizer.zero_grad(set_to_none=True)
        model.loss(model(inputs), targets).backward()
        optimizer.step()

    return step


def time_training_steps(repeats: int) -> dict[str, float]:
    inputs = torch.randn(16, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    targets = (torch.rand(16, 20, generator=torch.Generator().manual_seed(1)) < 0.15).float()
    fill = normalised_colour([116.0, 112.0, 104.0])
    functions = {
        "gap": training_step("gap", inputs, targets),
        "tap": training_step("tap", inputs, targets),
        "hide": lambda: [hide_patches(x, 0.5, 16, fill) for x in inputs],
        **{method: training_step("gap", inputs, targets, method) for method in EXPANSIONS},
    }
    return interleaved_medians(functions, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--classes", type=int, default=2, help="image-level classes per image")
    parser.add_argument("--threads", type=int, default=1, help="CAM threads (training uses 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cams = time_cam_methods(args.repeats, args.classes)
    print(
        f"CAMs, 100x128 image, {args.classes} class(es), scales {SCALES} + flips, {args.threads} thread(s), "
        f"torch {torch.__version__}: median over {args.repeats} runs"
    )
    for name, seconds in cams.items():
        print(f"  {name:24s} {seconds:.3f} s/image  ({seconds / cams['cam']:.1f}x cam)")
    torch.set_num_threads(2)
    steps = time_training_steps(args.repeats)
    plain, tap, hiding = steps["gap"], steps["tap"], steps["hide"]
    print(f"classifier training, batch of 16 crops of 96 px, 2 threads: median over {args.repeats} runs")
    print(f"  plain step (gap)         {plain * 1000:.1f} ms")
    print(f"  step with tap 0.5        {tap * 1000:.1f} ms  ({100 * (tap - plain) / plain:+.1f}%)")
    print(f"  hide-and-seek, 16 crops  {hiding * 1000:.2f} ms added  ({100 * hiding / plain:+.2f}%)")
    for method in EXPANSIONS:
        seconds = steps[method]
        print(f"  {method + ' step':24s} {seconds * 1000:.1f} ms  ({100 * (seconds - plain) / plain:+.1f}%)")


if __name__ == "__main__":
    main()
