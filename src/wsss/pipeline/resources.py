"""Memory to ask the scheduler for, per segmentation network: the train_segmentation rule's mem_mb.

Measured by benchmarks/segmentation_memory.py with a fresh process per network on CPU (peak RSS, torch 2.14, 1
thread): two SGD steps on a batch of 4 crops of 256 px, 21 classes; DeepLab's heads and FCN at output stride
16, the encoder-decoders at 32 (U-Net with transposed convolutions, its heaviest mode). STEP_MB is the peak
minus the process with its model built (BASE_MB at most: 980 MB, ResNet-101 U-Net). Activations grow with the
batch's pixels, so a job asks for BASE_MB + STEP_MB x (batch x crop^2) / (4 x 256^2), times OUTPUT_STRIDE_8 at
output stride 8 (the last two stages at 4x the pixels: measured 1.6-2.1x for DeepLabV3 and V3+), plus MARGIN.
On a GPU node the activations live on the GPU, so this is an upper bound of the host memory there.
"""

from __future__ import annotations

import math

BASE_MB = 1000
MARGIN = 1.25
OUTPUT_STRIDE_8 = 2.0
REFERENCE_PIXELS = 4 * 256 * 256
# Peak MB of a training step on REFERENCE_PIXELS, by network and backbone.
STEP_MB = {
    "deeplabv3": {"resnet18": 385, "resnet34": 500, "resnet50": 986, "resnet101": 1244, "efficientnet_lite0": 744},
    "deeplabv2": {"resnet18": 341, "resnet34": 455, "resnet50": 827, "resnet101": 1111, "efficientnet_lite0": 683},
    "fcn": {"resnet18": 325, "resnet34": 451, "resnet50": 898, "resnet101": 1197, "efficientnet_lite0": 728},
    "fcn8s": {"resnet18": 316, "resnet34": 451, "resnet50": 856, "resnet101": 1194, "efficientnet_lite0": 568},
    "deeplabv3plus": {"resnet18": 469, "resnet34": 580, "resnet50": 961, "resnet101": 1242, "efficientnet_lite0": 850},
    "unet": {"resnet18": 612, "resnet34": 691, "resnet50": 1293, "resnet101": 1476, "efficientnet_lite0": 880},
    "fpn": {"resnet18": 447, "resnet34": 505, "resnet50": 810, "resnet101": 1128, "efficientnet_lite0": 659},
}


def segmentation_train_mem_mb(settings: dict) -> int:
    """mem_mb for training the segmentation config's network (its arch, backbone, output_stride, batch_size,
    crop_size), rounded up to 100 MB."""
    step = STEP_MB[settings["arch"]][settings["backbone"]]
    step *= settings["batch_size"] * settings["crop_size"] ** 2 / REFERENCE_PIXELS
    if settings["output_stride"] == 8:
        step *= OUTPUT_STRIDE_8
    return int(math.ceil((BASE_MB + step) * MARGIN / 100) * 100)
