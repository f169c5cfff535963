"""CLIP-ES (Lin et al., CVPR 2023, "CLIP is Also an Efficient Segmenter"): training-free seeds from a frozen CLIP.

Per image, for each of its image-level classes: Grad-CAM at the last block's ln_1 of the softmax over the image's
classes and the background words (prompt "a clean origami {}."), from the patch tokens' mean feature; a box mask
of the Grad-CAM's regions above box_threshold x its maximum; the class-aware attention affinity (CAA: the mean
attention of the last blocks, Sinkhorn-normalised, symmetrised, raised to a power) applied to the box-masked
Grad-CAM. Its labels (dense CRF over (1 - max CAM, CAMs), pixels below a CRF confidence ignored): torch-free, in
wsss.seeds.masks (clip_es_label).
config/README.md ("clip_es") says which of CLIP-ES's quirks are reproduced and which changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy import ndimage
from tqdm import tqdm

from wsss.data.voc import GRID_DIR, pending_ids, read_image, save_npy
from wsss.nets.clip import CLIP_MEAN, CLIP_STD, PATCH, encode_image, encode_texts
from wsss.seeds.cam import strided_size


def class_texts(classes: list[str], class_names: dict[str, str]) -> list[str]:
    """The text of each foreground class (classes[1:]): its clip_es.class_names entry, else its own name."""
    return [class_names.get(name, name) for name in classes[1:]]


def text_features(model, names: list[str], prompt: str) -> torch.Tensor:
    """CLIP-ES's zero-shot classifier with one template: each name's prompt embedded and L2-normalised (the mean
    over one template, normalised again, changes nothing): (len(names), D)."""
    return encode_texts(model, [prompt.format(name) for name in names])


def clip_input(image: np.ndarray) -> torch.Tensor:
    """The image (uint8 HxWx3 RGB) resized (PIL bicubic) to sides rounded up to multiples of 16, normalised
    with CLIP's mean and std: (1, 3, h16, w16)."""
    height, width = image.shape[:2]
    size = (int(np.ceil(width / PATCH) * PATCH), int(np.ceil(height / PATCH) * PATCH))
    resized = np.asarray(Image.fromarray(image).resize(size, Image.BICUBIC), np.float32) / 255
    tensor = torch.from_numpy(resized).permute(2, 0, 1)
    mean, std = torch.tensor(CLIP_MEAN).view(3, 1, 1), torch.tensor(CLIP_STD).view(3, 1, 1)
    return ((tensor - mean) / std)[None]


def min_max(cam: np.ndarray) -> np.ndarray:
    """pytorch_grad_cam's scale_cam_image without resizing: (cam - min) / (1e-7 + max of that)."""
    cam = cam - np.min(cam)
    return cam / (1e-7 + np.max(cam))


def gradcam(activation: torch.Tensor, gradient: torch.Tensor, grid: tuple[int, int]) -> np.ndarray:
    """Grad-CAM of the patch tokens (1, 1 + h*w, D) of one block: channel weights the mean gradient, relu of the
    weighted sum, min-max normalised twice (pytorch_grad_cam normalises each layer's map, then their mean):
    float32 (h, w)."""
    tokens, grads = activation[0, 1:].reshape(*grid, -1), gradient[0, 1:].reshape(*grid, -1)
    weights = grads.mean((0, 1))
    cam = np.maximum((tokens * weights).sum(-1).numpy(), 0).astype(np.float32)
    return min_max(min_max(cam))


def box_mask(cam: np.ndarray, threshold: float) -> np.ndarray:
    """CLIP-ES's scoremap2bbox as a mask (h, w): the bounding boxes of the 8-connected regions where the map, cast
    to uint8 (x 255, truncated), exceeds int(threshold x its maximum); a box ends one short of the map's last row
    and column when it reaches them (its x1 = min(x + w, width - 1), exclusive); no region, no box."""
    scores = (cam * 255).astype(np.uint8)
    regions, _ = ndimage.label(scores > int(threshold * scores.max()), structure=np.ones((3, 3)))
    mask = np.zeros(cam.shape, bool)
    for rows, cols in ndimage.find_objects(regions):
        mask[rows.start : min(rows.stop, cam.shape[0] - 1), cols.start : min(cols.stop, cam.shape[1] - 1)] = True
    return mask


def caa_transition(attentions: list[torch.Tensor], layers: int, sinkhorn_rounds: int, power: int) -> torch.Tensor:
    """CAA's affinity (n, n) over the n patches: the patch-to-patch attention (head-averaged) of the last `layers`
    blocks, averaged; Sinkhorn rounds (columns, then rows, normalised to sum 1); symmetrised; to the power."""
    affinity = torch.stack([a[0, 1:, 1:] for a in attentions[-layers:]]).mean(0).float()
    for _ in range(sinkhorn_rounds):
        affinity = affinity / affinity.sum(0, keepdim=True)
        affinity = affinity / affinity.sum(1, keepdim=True)
    affinity = (affinity + affinity.T) / 2
    return torch.linalg.matrix_power(affinity, power)


def refine(transition: torch.Tensor, mask: np.ndarray, cam: np.ndarray) -> np.ndarray:
    """The affinity applied to the box-masked CAM (only the box's patches propagate): (h, w) float32."""
    masked = transition * torch.from_numpy(mask.reshape(1, -1).astype(np.float32))
    return (masked @ torch.from_numpy(cam).reshape(-1, 1)).reshape(cam.shape).numpy().astype(np.float32)


def resized(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(K, h, w) resized to size (H, W) as CLIP-ES does (OpenCV's bilinear cv2.resize), float32 (K, H, W)."""
    import cv2

    out = [cv2.resize(np.ascontiguousarray(m, np.float32), (size[1], size[0])) for m in maps]
    return np.stack(out).reshape(len(maps), *size).astype(np.float32) if out else np.zeros((0, *size), np.float32)


@dataclass
class ClipEsMaps:
    """One image's maps, one channel per image class (ascending id): Grad-CAM and the CAA-refined map on the patch
    grid, and the refined maps min-max normalised at the image's size (the CAMs the chain reads)."""

    gradcam: np.ndarray
    refined: np.ndarray
    cams: np.ndarray


def image_maps(
    model, image: np.ndarray, class_ids: list[int], fg: torch.Tensor, bg: torch.Tensor, settings: dict
) -> ClipEsMaps:
    """CLIP-ES's maps of an image (uint8 HxWx3 RGB) for its classes (ids 1.., fg row id - 1); fg, bg: the classes'
    and background words' text features (on the model's device); settings: the clip_es section. The network runs
    on the model's device; Grad-CAM, the box masks and CAA on the CPU in float32."""
    height, width = image.shape[:2]
    batch = clip_input(image).to(model.logit_scale.device)
    grid = (batch.shape[-2] // PATCH, batch.shape[-1] // PATCH)
    if not class_ids:
        empty = np.zeros((0, *grid), np.float32)
        return ClipEsMaps(empty, empty, np.zeros((0, height, width), np.float32))
    feature, taps = encode_image(model, batch)
    with torch.enable_grad():
        feature = feature / feature.norm(dim=-1, keepdim=True)
        texts = torch.cat([fg[[c - 1 for c in class_ids]], bg])
        probs = (model.logit_scale.exp() * feature @ texts.T).softmax(-1)[0]
        gradients = [
            torch.autograd.grad(probs[k], taps.activation, retain_graph=True)[0] for k in range(len(class_ids))
        ]
    caa = settings["caa"]
    attentions = [a.cpu() for a in taps.attentions]
    transition = caa_transition(attentions, caa["layers"], caa["sinkhorn_rounds"], caa["power"])
    activation = taps.activation.detach().cpu()
    cams, refined = [], []
    for gradient in gradients:
        cam = gradcam(activation, gradient.cpu(), grid)
        cams.append(cam)
        refined.append(refine(transition, box_mask(cam, settings["box_threshold"]), cam))
    cams, refined = np.stack(cams), np.stack(refined)
    highres = resized(np.stack([min_max(r) for r in refined]), (height, width))
    return ClipEsMaps(cams, refined, highres)


def compute_clip_es(
    model, dataset, image_ids, labels, class_names: list[str], settings: dict, out_dir: Path, device="cpu"
) -> None:
    """On device, write <out_dir>/<id>.npy (the refined maps at the image's size, float16, ascending class id) and
    <out_dir>/GRID_DIR/<id>.npy (the same maps at stride 4, what the random walk reads) for every image of
    image_ids not written yet. class_names: each foreground class's text (class_texts)."""
    out_dir = Path(out_dir)
    (out_dir / GRID_DIR).mkdir(parents=True, exist_ok=True)
    model = model.to(device)
    fg = text_features(model, class_names, settings["prompt"])
    bg = text_features(model, settings["background"], settings["prompt"])
    for image_id in tqdm(pending_ids(image_ids, out_dir, ".npy"), desc=f"CLIP-ES {out_dir.name}", mininterval=5):
        image = read_image(dataset.image_path(image_id))
        maps = image_maps(model, image, labels[image_id], fg, bg, settings)
        grid = resized(maps.cams, strided_size(*image.shape[:2])) if len(maps.cams) else None
        grid = np.zeros((0, *strided_size(*image.shape[:2])), np.float32) if grid is None else grid
        save_npy(out_dir / GRID_DIR / f"{image_id}.npy", grid.astype(np.float16))
        save_npy(out_dir / f"{image_id}.npy", maps.cams.astype(np.float16))
