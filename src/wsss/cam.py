"""Class activation maps: multi-scale + flip inference (as IRN's make_cam), max-normalised, float16 .npy."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .models import Classifier
from .runtime import autocast, for_inference, memory_format
from .transforms import resize_image, to_tensor
from .voc import VOCTree, load_npy, pending_ids, read_image, save_npy

log = logging.getLogger(__name__)


@torch.no_grad()
def multiscale_cam(model: Classifier, image: np.ndarray, scales, device) -> torch.Tensor:
    """Sum over scales and horizontal flips of the ReLU'd CAMs, each upsampled to image size: (C, H, W)."""
    device = torch.device(device)
    height, width = image.shape[:2]
    total = None
    for scale in scales:
        scaled = image if scale == 1 else resize_image(image, max(1, round(height * scale)), max(1, round(width * scale)))
        x = to_tensor(scaled)
        pair = torch.stack([x, x.flip(-1)]).to(device, memory_format=memory_format(device))
        with autocast(device):
            cams = model.cam(pair).float()
        cams = cams[0] + cams[1].flip(-1)
        cams = F.interpolate(cams[None], size=(height, width), mode="bilinear", align_corners=False)[0]
        total = cams if total is None else total + cams
    return total.float().cpu()


def normalise(cams: torch.Tensor) -> torch.Tensor:
    """Divide each channel by its maximum, so every class peaks at ~1 (IRN's 1e-5 guards empty maps)."""
    return cams / (cams.flatten(1).max(1).values.view(-1, 1, 1) + 1e-5)


def image_cams(model: Classifier, image: np.ndarray, class_ids: list[int], scales, device) -> np.ndarray:
    """float16 (len(class_ids), H, W): one max-normalised channel per image-level class, ascending id."""
    if not class_ids:
        return np.zeros((0, *image.shape[:2]), np.float16)
    cams = multiscale_cam(model, image, scales, device)[[c - 1 for c in sorted(class_ids)]]
    return normalise(cams).numpy().astype(np.float16)


def compute_cams(
    model: Classifier, tree: VOCTree, image_ids, labels, scales, out_dir: Path, device, eraser=None
) -> None:
    """Write <out_dir>/<image id>.npy for every image not written yet; an eraser hides earlier rounds'
    regions first."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = for_inference(model, device)
    for image_id in tqdm(pending_ids(image_ids, out_dir, ".npy"), desc=f"CAMs {out_dir.name}", mininterval=5):
        image = read_image(tree.image_path(image_id))
        if eraser is not None:
            image = eraser(image_id, image)
        save_npy(out_dir / f"{image_id}.npy", image_cams(model, image, labels[image_id], scales, device))


def merge_cams(cam_indexes: list[dict[str, Path]], image_ids, out_dir: Path) -> None:
    """The per-pixel maximum over erasing rounds of each image's CAMs (images not written yet)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for image_id in tqdm(pending_ids(image_ids, out_dir, ".npy"), desc=f"merge {out_dir.name}", mininterval=5):
        merged = np.maximum.reduce([load_npy(index[image_id]) for index in cam_indexes])
        save_npy(out_dir / f"{image_id}.npy", merged.astype(np.float16))
