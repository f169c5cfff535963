"""The segmentation step: DeepLabV3 / FCN trained on (pseudo-)masks with 255 ignored, and inference."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from wsss.data.voc import IGNORE, VOCTree, pending_ids, read_image, read_mask, write_mask
from wsss.nets.models import load_checkpoint, load_state, segmentation_model
from wsss.nets.training import ImageDataset, train_and_save
from wsss.nets.transforms import augment, resize_long_side, to_tensor
from wsss.runtime import autocast, flipped_pair, for_inference

log = logging.getLogger(__name__)


class SegmentationDataset(ImageDataset):
    def __init__(self, tree: VOCTree, image_ids, mask_paths: dict[str, Path], num_classes, resize_long, crop_size):
        missing = [i for i in image_ids if i not in mask_paths]
        if missing:
            raise ValueError(f"{len(missing)} training images have no mask, e.g. {missing[0]}")
        super().__init__(tree, image_ids)
        self.mask_paths, self.num_classes = mask_paths, num_classes
        self.resize_long, self.crop_size = resize_long, crop_size

    def __getitem__(self, index):
        image_id, image = self.image(index)
        mask = read_mask(self.mask_paths[image_id], self.num_classes)
        x, y = augment(image, mask, self.resize_long, self.crop_size)
        return x, y


def train_segmentation(
    tree: VOCTree,
    image_ids,
    mask_paths,
    num_classes,
    settings,
    seed,
    device,
    model_path,
    history_path,
    checkpoint_path,
    desc,
    fingerprint: str = "",
    checkpoint_every: int = 1,
    weights=None,
) -> pd.DataFrame:
    """Train the segmentation network; resumes from checkpoint_path when it holds a checkpoint of the same
    fingerprint (see training.fit), and removes it once the model and history are written."""
    dataset = SegmentationDataset(
        tree, image_ids, mask_paths, num_classes, settings["resize_long"], settings["crop_size"]
    )
    torch.manual_seed(seed)
    model = segmentation_model(settings["arch"], settings["backbone"], num_classes, settings["output_stride"], weights)
    head = list(model.classifier.parameters())
    head_ids = {id(p) for p in head}
    backbone = [p for p in model.parameters() if id(p) not in head_ids]

    def loss_fn(outputs, targets):
        return F.cross_entropy(outputs["out"], targets, ignore_index=IGNORE)

    meta = dict(
        arch=settings["arch"],
        backbone=settings["backbone"],
        output_stride=settings["output_stride"],
        num_classes=num_classes,
    )
    paths = (model_path, history_path, checkpoint_path)
    return train_and_save(
        model,
        dataset,
        loss_fn,
        backbone,
        head,
        settings,
        seed,
        device,
        paths,
        meta,
        desc=desc,
        fingerprint=fingerprint,
        checkpoint_every=checkpoint_every,
    )


def load_segmentation(path) -> torch.nn.Module:
    checkpoint = load_checkpoint(path)
    meta = checkpoint["meta"]
    model = segmentation_model(meta["arch"], meta["backbone"], meta["num_classes"], meta["output_stride"])
    return load_state(model, checkpoint, path).eval()


@torch.no_grad()
def predict(model: torch.nn.Module, image: np.ndarray, device, long_side: int | None = None) -> np.ndarray:
    """Class-id map (uint8 HxW) for one image, from the logits averaged over the image and its horizontal flip.

    long_side (None: the image as it is): the image is resized with PIL bicubic so that its long side is
    long_side (the resolution the network was trained at) and the summed logits are resized bilinearly
    back to H x W before the argmax.
    """
    device = torch.device(device)
    height, width = image.shape[:2]
    x = to_tensor(resize_long_side(image, long_side))
    pair = flipped_pair(x, device)
    with autocast(device):
        logits = model(pair)["out"].float()
    logits = logits[0] + logits[1].flip(-1)
    if logits.shape[-2:] != (height, width):
        logits = F.interpolate(logits[None], size=(height, width), mode="bilinear", align_corners=False)[0]
    return logits.argmax(0).cpu().numpy().astype(np.uint8)


def predict_images(model, tree: VOCTree, image_ids, out_dir: Path, device, long_side: int | None) -> None:
    """Write <out_dir>/<id>.png for every image not written yet (long_side: see predict)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = for_inference(model, device)
    for image_id in tqdm(pending_ids(image_ids, out_dir, ".png"), desc="predict", mininterval=5):
        image = read_image(tree.image_path(image_id))
        write_mask(out_dir / f"{image_id}.png", predict(model, image, device, long_side))
