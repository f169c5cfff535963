"""The segmentation networks on CPU: training step time and inference images/s per architecture.

    .venv/bin/python benchmarks/segmentation.py [--repeats 5] [--threads 2] [--backbone efficientnet_lite0]

For every segmentation.arch (U-Net with each upsampling mode), on the demo's backbone by default:
1. one SGD step (forward, cross-entropy with 255 ignored, backward, update) on a batch of 8 crops of 96 px,
   the demo's segmentation settings (threads.train: 2);
2. inference as the predict_segmentation rule does it on a 500x375 photo-sized image: long side 128 with
   its flip (the demo's default), and DeepLab's 6 scales 0.5-1.75 + flip at the same long side; printed
   as images per second. The dense CRF, which config/voc2012.yaml adds, is timed once for that image
   (it does not depend on the network).
Medians over --repeats, timed round-robin (benchmarks/timing.py).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from timing import interleaved_medians  # benchmarks/timing.py

from wsss.data.voc import IGNORE
from wsss.nets.models import RESTRICTED_STRIDES, SEGMENTATION_ARCHS, UPSAMPLINGS, segmentation_model
from wsss.seeds.masks import crf_inference_prob
from wsss.training.segmentation import predict

DEEPLAB_SCALES = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
CRF = {"iterations": 10, "gaussian": {"sxy": 1, "compat": 3}, "bilateral": {"sxy": 67, "srgb": 3, "compat": 4}}


def variants() -> dict[str, dict]:
    """Each architecture at its demo output stride (16 for DeepLab's heads, 32 for the encoder-decoders)."""
    out = {}
    for arch in SEGMENTATION_ARCHS:
        stride = RESTRICTED_STRIDES.get(arch, (16,))[-1]
        for upsampling in UPSAMPLINGS if arch == "unet" else ("bilinear",):
            name = f"unet ({upsampling})" if arch == "unet" else arch
            out[name] = dict(arch=arch, output_stride=stride, upsampling=upsampling)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    inputs = torch.randn(8, 3, 96, 96)
    targets = torch.from_numpy(rng.integers(0, 21, (8, 96, 96))).long()
    targets[:, :8] = IGNORE
    image = rng.integers(0, 256, (375, 500, 3), dtype=np.uint8)

    models, steps, inference = {}, {}, {}
    for name, variant in variants().items():
        torch.manual_seed(0)
        model = segmentation_model(num_classes=21, backbone_arch=args.backbone, **variant)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        models[name] = model

        def step(model=model, optimizer=optimizer):
            model.train()
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(inputs)["out"], targets, ignore_index=IGNORE).backward()
            optimizer.step()

        def one_scale(model=model):
            model.eval()
            predict(model, image, "cpu", 128)

        def deeplab_scales(model=model):
            model.eval()
            predict(model, image, "cpu", 128, scales=DEEPLAB_SCALES)

        steps[name] = step
        inference[f"{name}|1"] = one_scale
        inference[f"{name}|6"] = deeplab_scales

    step_s = interleaved_medians(steps, args.repeats)
    infer_s = interleaved_medians(inference, args.repeats)
    probs = np.full((21, 375, 500), 1 / 21, np.float32)
    start = time.perf_counter()
    crf_inference_prob(image, probs, CRF)
    crf_s = time.perf_counter() - start

    print(f"Segmentation networks on {args.backbone}, CPU, {args.threads} threads, medians of {args.repeats}")
    print(
        f"{'network':<22}{'params (M)':>11}{'train step (s)':>16}{'img/s 1 scale+flip':>20}{'img/s 6 scales+flip':>21}"
    )
    for name, model in models.items():
        params = sum(p.numel() for p in model.parameters()) / 1e6
        print(
            f"{name:<22}{params:>11.1f}{step_s[name]:>16.3f}"
            f"{1 / infer_s[f'{name}|1']:>20.1f}{1 / infer_s[f'{name}|6']:>21.1f}"
        )
    print("train step: one SGD step on 8 crops of 96 px (the demo's segmentation batch); inference: a 500x375")
    print("image at long side 128 (the demo's segmentation.long_side), logits resized to 500x375.")
    print(f"dense CRF (10 iterations, DeepLab v2's VOC kernels) on that image, 21 labels: {crf_s:.2f} s")


if __name__ == "__main__":
    main()
