"""The training samples of the three trained networks: augmented images with multi-hot targets (the
classifier) or with label maps (the segmentation network, IRN's boundary branch), or, for SEC's loss, with
cues, image-level labels and the crop on the loss grid."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset

from wsss.data.datasets import Dataset
from wsss.data.voc import read_image, read_mask
from wsss.nets.transforms import augment, hide_patches
from wsss.training.sec import cues_on_grid, grid_size, image_on_grid


@dataclass(frozen=True)
class TrainingImages:
    """What a network is trained on: images of a dataset and, per image id, its target: the image-level
    labels (class ids, for the classifier) or the path of its label map (the segmentation network, IRN)."""

    dataset: Dataset
    image_ids: list[str]
    targets: dict
    num_classes: int  # background included


class ImageDataset(TorchDataset):
    """The images of a dataset, by index; a subclass turns each into a training sample."""

    def __init__(self, dataset: Dataset, image_ids):
        self.dataset, self.image_ids = dataset, list(image_ids)

    def __len__(self):
        return len(self.image_ids)

    def image(self, index) -> tuple[str, np.ndarray]:
        """(image id, RGB image) of a sample."""
        image_id = self.image_ids[index]
        return image_id, read_image(self.dataset.image_path(image_id))


class ClassificationDataset(ImageDataset):
    """Augmented images (optionally with earlier rounds' regions erased, and Hide-and-Seek patches hidden)
    and multi-hot foreground targets.

    hide_fill: the normalised (3, 1, 1) colour hidden patches get; needed only when hide_prob > 0.
    """

    def __init__(
        self,
        dataset: Dataset,
        image_ids,
        labels,
        num_foreground,
        resize_long,
        crop_size,
        eraser=None,
        hide_prob: float = 0.0,
        patch_size: int = 16,
        hide_fill: torch.Tensor | None = None,
    ):
        if hide_prob > 0 and hide_fill is None:
            raise ValueError("Hide-and-Seek needs the colour of hidden patches (hide_fill)")
        super().__init__(dataset, image_ids)
        self.labels, self.num_foreground, self.eraser = labels, num_foreground, eraser
        self.resize_long, self.crop_size = resize_long, crop_size
        self.hide_prob, self.patch_size, self.hide_fill = hide_prob, patch_size, hide_fill

    def __getitem__(self, index):
        image_id, image = self.image(index)
        if self.eraser is not None:
            image = self.eraser(image_id, image)
        x, _ = augment(image, None, self.resize_long, self.crop_size)
        x = hide_patches(x, self.hide_prob, self.patch_size, self.hide_fill)
        target = torch.zeros(self.num_foreground)
        target[[c - 1 for c in self.labels[image_id]]] = 1
        return x, target


class SegmentationDataset(ImageDataset):
    """Augmented images and their label maps (images.targets: the mask file of each image id)."""

    def __init__(self, images: TrainingImages, resize_long, crop_size):
        missing = [i for i in images.image_ids if i not in images.targets]
        if missing:
            raise ValueError(f"{len(missing)} training images have no mask, e.g. {missing[0]}")
        super().__init__(images.dataset, images.image_ids)
        self.mask_paths, self.num_classes = images.targets, images.num_classes
        self.resize_long, self.crop_size = resize_long, crop_size

    def __getitem__(self, index):
        image_id, image = self.image(index)
        mask = read_mask(self.mask_paths[image_id], self.num_classes)
        x, y = augment(image, mask, self.resize_long, self.crop_size)
        return x, y


class SecDataset(SegmentationDataset):
    """SegmentationDataset's crops (the same augmentation draws) with SEC's targets (wsss.training.sec):
    "cues": the crop's label map on the loss grid (cues_on_grid: its pseudo-mask's confident labels, IGNORE
    between), "classes": the image's foreground classes (multi-hot, class 1 first, from labels: image id ->
    class ids), "image": the crop on the grid as uint8 RGB for the CRF (image_on_grid), which stays on the
    CPU (HOST_TARGETS). The grid is grid_size(crop_size, stride) on a side."""

    HOST_TARGETS = ("image",)

    def __init__(self, images: TrainingImages, resize_long, crop_size, labels: dict, stride: int):
        unlabelled = [i for i in images.image_ids if i not in labels]
        if unlabelled:
            raise ValueError(f"{len(unlabelled)} training images have no image-level labels, e.g. {unlabelled[0]}")
        super().__init__(images, resize_long, crop_size)
        self.labels, self.cells = labels, grid_size(crop_size, stride)

    def __getitem__(self, index):
        x, y = super().__getitem__(index)
        classes = torch.zeros(self.num_classes - 1)
        classes[[c - 1 for c in self.labels[self.image_ids[index]]]] = 1
        targets = {"cues": cues_on_grid(y, self.cells), "classes": classes, "image": image_on_grid(x, self.cells)}
        return x, targets
