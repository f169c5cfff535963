"""Peak memory of a segmentation training step on CPU: the figures of wsss.pipeline.resources.STEP_MB.

    .venv/bin/python benchmarks/segmentation_memory.py [--archs deeplabv2] [--backbones resnet50 ...]

For each network and backbone a fresh process (1 thread) builds the network with random weights, notes its
peak RSS, then runs two SGD steps (cross-entropy, 21 classes) on a batch of 4 crops of 256 px at the output
stride the step table assumes (16 for DeepLab's heads and FCN, 32 for the encoder-decoders) and prints the
peak RSS growth in MB (STEP_MB) beside the table's figure, where it has one.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

ONE = r"""
import json, resource, sys, torch, torch.nn.functional as F
from wsss.nets.models import RESTRICTED_STRIDES, segmentation_model
torch.set_num_threads(1)
arch, backbone = sys.argv[1], sys.argv[2]
strides = RESTRICTED_STRIDES.get(arch, (16,))
stride = 16 if 16 in strides else strides[-1]
model = segmentation_model(arch, backbone, 21, stride, upsampling="transpose" if arch == "unet" else "bilinear")
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
x, y = torch.randn(4, 3, 256, 256), torch.randint(0, 21, (4, 256, 256))
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
for _ in range(2):
    optimizer.zero_grad()
    F.cross_entropy(model(x)["out"], y, ignore_index=255).backward()
    optimizer.step()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"base_mb": round(base), "step_mb": round(peak - base), "output_stride": stride}))
"""


def main() -> None:
    from wsss.nets.backbones import ARCHS
    from wsss.nets.models import SEGMENTATION_ARCHS
    from wsss.pipeline.resources import STEP_MB

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=list(SEGMENTATION_ARCHS))
    parser.add_argument("--backbones", nargs="+", default=list(ARCHS))
    args = parser.parse_args()
    print(f"{'arch':14s} {'backbone':20s} {'stride':>6s} {'base MB':>8s} {'step MB':>8s} {'table':>6s}")
    for arch in args.archs:
        for backbone in args.backbones:
            command = [sys.executable, "-c", ONE, arch, backbone]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            table = STEP_MB.get(arch, {}).get(backbone, "-")
            print(
                f"{arch:14s} {backbone:20s} {figures['output_stride']:6d} {figures['base_mb']:8d} "
                f"{figures['step_mb']:8d} {table!s:>6s}"
            )


if __name__ == "__main__":
    main()
