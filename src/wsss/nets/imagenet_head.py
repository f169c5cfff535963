"""The CAM head started from the ImageNet classifier the backbone's weights file ships (classifier.head_init:
imagenet): each VOC class's 1x1 weights are the mean of the rows of its ImageNet classes.

Why: with a few hundred photos, a class seen in 5 training images (coco340's aeroplane) gets too few
gradient steps for a randomly initialised head to find it, while the ImageNet classifier on the same
features already localises airliners, dogs or buses (Zhou et al.'s CAM is that classifier's map). The
backbone's weights are ImageNet's anyway; this reuses the last layer of the same file. Classes with no
ImageNet counterpart (person) and names outside the table keep the random initialisation.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from wsss.nets.backbones import read_weights

log = logging.getLogger(__name__)


def _span(first: int, last: int) -> tuple[int, ...]:
    return tuple(range(first, last + 1))


# VOC class name -> ImageNet-1k class indices (timm.data.ImageNetInfo's order; tests/unit/test_imagenet_head.py checks
# each index's description). Only classes that are one of the VOC class's kind: no parts, scenes or tools.
IMAGENET_CLASSES: dict[str, tuple[int, ...]] = {
    "aeroplane": (404, 895),  # airliner, warplane
    "bicycle": (444, 671),  # bicycle-built-for-two, mountain bike
    # cock ... great grey owl, black grouse ... black swan, white stork ... albatross
    "bird": _span(7, 24) + _span(80, 100) + _span(127, 146),
    "boat": (472, 484, 510, 554, 576, 625, 628, 724, 780, 814, 833, 871, 914),  # canoe ... yawl
    "bottle": (440, 720, 737, 898, 907),  # beer, pill, pop, water, wine bottle
    "bus": (654, 779, 874),  # minibus, school bus, trolleybus
    "car": (407, 436, 468, 511, 609, 627, 656, 661, 734, 751, 817),  # ambulance, wagon, cab ... sports car
    "cat": _span(281, 285),  # tabby ... Egyptian cat
    "chair": (423, 559, 765, 857),  # barber, folding, rocking chair, throne
    "cow": (345, 346, 347),  # ox, water buffalo, bison
    "diningtable": (532,),  # dining table
    "dog": _span(151, 268),  # Chihuahua ... Mexican hairless
    "horse": (339,),  # sorrel
    "motorbike": (665, 670),  # moped, motor scooter
    "pottedplant": (738,),  # pot, flowerpot
    "sheep": (348, 349),  # ram, bighorn
    "sofa": (831,),  # studio couch
    # bullet train, electric locomotive, freight car, passenger car, steam locomotive
    "train": (466, 547, 565, 705, 820),
    "tvmonitor": (664, 782, 851),  # monitor, screen, television
}

# the ImageNet classifier's weight in each backbone family's weights file (wsss.nets.backbones)
CLASSIFIER_KEYS = ("classifier.weight", "fc.weight")


def imagenet_classifier(weights_path) -> torch.Tensor:
    """The (1000, C) ImageNet classifier weight of a backbone weights file; a clear error when it has none."""
    state = read_weights(weights_path)
    for key in CLASSIFIER_KEYS:
        if key in state and state[key].ndim == 2 and state[key].shape[0] == 1000:
            return state[key].float()
    raise ValueError(
        f"classifier.head_init: imagenet needs the ImageNet classifier in the weights file {weights_path}, "
        f"which has none of {', '.join(CLASSIFIER_KEYS)}: set classifier.head_init: random"
    )


def init_head_from_imagenet(head: nn.Conv2d, weights_path, foreground_names: list[str]) -> list[str]:
    """Set each foreground class's rows of the 1x1 CAM head (num_foreground, C, 1, 1) to the mean of its ImageNet
    classes' classifier rows; returns the names it set (the others keep their initialisation)."""
    imagenet = imagenet_classifier(weights_path)
    if imagenet.shape[1] != head.in_channels:
        raise ValueError(
            f"the ImageNet classifier in {weights_path} reads {imagenet.shape[1]} channels, the CAM head "
            f"{head.in_channels}: the weights file is not this backbone's"
        )
    done = []
    with torch.no_grad():
        for index, name in enumerate(foreground_names):
            if name in IMAGENET_CLASSES:
                rows = imagenet[list(IMAGENET_CLASSES[name])]
                head.weight[index] = rows.mean(0).view(-1, 1, 1).to(head.weight.dtype)
                done.append(name)
    log.info("CAM head from ImageNet's classifier for %s; random for the others", ", ".join(done) or "no class")
    return done
