"""Class activation maps: multi-scale + flip inference (as IRN's make_cam), max-normalised, float16 .npy.

Methods: classic CAM, Grad-CAM, Grad-CAM++ and a layer-fused CAM (classic CAM alone for the classifiers that
expand their maps themselves, classifier.method: wsss.nets.expansion); options from "Rethinking CAM"
(Bae et al., ECCV 2020): negative weight clamping (NWC) and percentile normalisation (PaS).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from wsss.data.datasets import Dataset
from wsss.data.voc import GRID_DIR, pending_ids, read_image, save_npy
from wsss.nets.expansion import peak_normalised
from wsss.nets.hardware import autocast, flipped_pair, for_inference
from wsss.nets.models import Classifier
from wsss.nets.transforms import long_side_size, resize_image, resize_long_side, to_tensor

log = logging.getLogger(__name__)


# Classic CAM, max-normalised, at the image's own size (long_side None) as IRN computes it: the settings
# tests and benchmarks start from (the pipeline's come from the config's cam section; scales added).
DEFAULT_SETTINGS = {"method": "cam", "nwc": False, "pas_percentile": None, "fused_stages": [2, 3, 4], "long_side": None}


def gradcam_weights(gradients: torch.Tensor) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al. 2017): each channel's weight from its gradient, (N, K).

    The paper averages the gradient over the map; we sum it (the gradient with respect to the channel's
    pooled value), which differs by the map's area only. One map is the same up to that constant, but
    the multi-scale sum would otherwise weigh the small scales more; with the sum, Grad-CAM of a GAP +
    linear head is exactly CAM at every scale.
    """
    return gradients.sum((2, 3))


def gradcampp_weights(activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """Grad-CAM++ (Chattopadhyay et al. 2018), closed form for exp(score): (N, K).

    a_kij = g^2 / (2 g^2 + sum_ab A_kab g^3) (0 where that is 0/0: no gradient, no say);
    w_k = sum_ij a_kij relu(g_kij). Never negative, so negative weight clamping changes nothing.
    """
    squared = gradients**2
    denominator = 2 * squared + activations.sum((2, 3), keepdim=True) * squared * gradients
    alpha = torch.where(denominator != 0, squared / denominator, torch.zeros_like(denominator))
    return (alpha * F.relu(gradients)).sum((2, 3))


def weighted_map(activations: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """relu(sum_k w_k A_k): (N, h, w) from (N, K, h, w) activations and (N, K) weights."""
    return F.relu((weights[:, :, None, None] * activations).sum(1))


def layer_map(activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """LayerCAM-style (Jiang et al. 2021) element-wise weighting: relu(sum_k relu(g_kij) A_kij), (N, h, w).

    Position-wise weights keep the detail of early stages, where one weight per channel would blur it.
    """
    return F.relu((F.relu(gradients) * activations).sum(1))


def plain_maps(model: Classifier, batch: torch.Tensor, nwc: bool) -> torch.Tensor:
    """Classic CAM of every class at feature resolution, (N, num_foreground, h, w): the expansion methods'
    own maps (SEAM's PCM, ACoL's fused heads, the dilated heads' sum) for their classifiers."""
    with torch.no_grad(), autocast(batch.device):
        return model.cam(batch, nwc).float()


def gradient_maps(model: Classifier, batch: torch.Tensor, indices: list[int], method: str, nwc: bool) -> torch.Tensor:
    """Grad-CAM or Grad-CAM++ of the given head channels at the last stage's resolution, (N, len(indices), h, w).

    One backward per class through the model's own pooling (GAP or TAP); the samples of a batch are
    independent in eval mode, so the gradient of the batch's summed logit is each sample's own. Weights
    are formed in float32: g^3 underflows in float16.
    """
    with torch.enable_grad():
        with autocast(batch.device):
            features = model.features(batch.detach().requires_grad_())  # a graph even for frozen weights
            logits = model.logits(features)
        activations = features.detach().float()
        maps = []
        for index in indices:
            (gradients,) = torch.autograd.grad(logits[:, index].sum(), features, retain_graph=True)
            gradients = gradients.float()
            if method == "gradcam":
                weights = gradcam_weights(gradients)
                weights = weights.clamp(min=0) if nwc else weights
            else:
                weights = gradcampp_weights(activations, gradients)
            maps.append(weighted_map(activations, weights))
    return torch.stack(maps, 1)


def fused_maps(model: Classifier, batch: torch.Tensor, indices: list[int], stages, size) -> torch.Tensor:
    """Layer-fused CAM (in the spirit of Fully-CAM / LayerCAM): the mean over the given backbone stages of
    their layer maps, each upsampled to size and peak-normalised: (N, len(indices), *size).

    Deep stages say which object it is, shallow ones where its edges are; fusing keeps both.
    """
    stages = list(stages)
    with torch.enable_grad():
        with autocast(batch.device):
            outputs = model.stage_outputs(batch.detach().requires_grad_(), stages + [4])
            logits = model.logits(outputs[-1])
        maps = []
        for index in indices:
            gradients = torch.autograd.grad(logits[:, index].sum(), outputs[:-1], retain_graph=True)
            per_stage = [
                peak_normalised(upsample(layer_map(a.detach().float(), g.float())[:, None], size))
                for a, g in zip(outputs[:-1], gradients)
            ]
            maps.append(torch.stack(per_stage).mean(0))
    return torch.cat(maps, 1)


def upsample(maps: torch.Tensor, size) -> torch.Tensor:
    """Bilinear (as IRN) to size; maps already at size are returned as they are."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps, size=tuple(size), mode="bilinear", align_corners=False)


@dataclass(frozen=True)
class CamMethod:
    """An entry of CAM_METHODS. maps(model, batch, indices, settings, size) -> float32 (N, channels, h, w);
    all_classes: it gives every head channel (one pass computes them all), not only indices; at_image_size:
    its maps are already at size (not at feature resolution, so neither aligned nor cropped); any_classifier:
    it works with every classifier.method (the others differentiate the one linear head of a plain
    classifier)."""

    maps: Callable[..., torch.Tensor]
    all_classes: bool = False
    at_image_size: bool = False
    any_classifier: bool = False


# cam.method -> its entry, in the schema's order (tests/unit/test_registry.py checks the schema's enum against it)
CAM_METHODS = {
    "cam": CamMethod(
        lambda model, batch, indices, settings, size: plain_maps(model, batch, settings["nwc"]),
        all_classes=True,
        any_classifier=True,
    ),
    "gradcam": CamMethod(
        lambda model, batch, indices, settings, size: gradient_maps(model, batch, indices, "gradcam", settings["nwc"])
    ),
    "gradcampp": CamMethod(
        lambda model, batch, indices, settings, size: gradient_maps(model, batch, indices, "gradcampp", settings["nwc"])
    ),
    "layer_fused": CamMethod(
        lambda model, batch, indices, settings, size: fused_maps(model, batch, indices, settings["fused_stages"], size),
        at_image_size=True,
    ),
}
METHODS = tuple(CAM_METHODS)


def cam_method(name: str) -> CamMethod:
    if name not in CAM_METHODS:
        raise ValueError(f"unknown CAM method {name!r}; choose one of {', '.join(CAM_METHODS)}")
    return CAM_METHODS[name]


def method_maps(model: Classifier, batch: torch.Tensor, indices: list[int], settings: dict, size) -> torch.Tensor:
    """The maps of settings["method"] (CAM_METHODS), float32 (N, channels, h, w) at feature resolution, or at
    size for a method at_image_size (layer_fused: its stages differ in resolution).

    Classic CAM gives every class (one pass computes them all anyway); the gradient methods, which pay a
    backward per class, give only the head channels in indices.
    """
    method = cam_method(settings["method"])
    if not method.any_classifier and model.method != "cam":
        raise ValueError(
            f"cam.method {settings['method']} differentiates the classifier's one linear head, which a "
            f"classifier.method {model.method} model does not end in: use cam.method cam with it"
        )
    return method.maps(model, batch, indices, settings, size)


def aligned_size(height: int, width: int, stride: int) -> tuple[int, int]:
    """The size rounded up to multiples of stride (IRN's imutils.get_strided_up_size)."""
    return -(-height // stride) * stride, -(-width // stride) * stride


def strided_size(height: int, width: int, stride: int = 4) -> tuple[int, int]:
    """ceil(H / stride) x ceil(W / stride): the boundary map's grid (IRN's imutils.get_strided_size)."""
    return -(-height // stride), -(-width // stride)


def multiscale_cam(model: Classifier, image: np.ndarray, class_ids: list[int], settings: dict, device) -> torch.Tensor:
    """Sum over settings["scales"] and horizontal flips of the method's maps of the given classes
    (ascending id), at the image's size: (len(class_ids), H, W).

    settings["long_side"] (None: the image as it is): the uint8 image is first resized with PIL bicubic so
    that its long side is long_side (what the classifier was trained at, see long_side_size), the maps are
    computed on it as below, and their sum is resized bilinearly back to H x W.
    """
    return multiscale_cams(model, image, class_ids, settings, device)[0]


def multiscale_cams(
    model: Classifier, image: np.ndarray, class_ids: list[int], settings: dict, device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(multiscale_cam's maps at H x W, the same sum on the stride-4 grid of the image the maps were computed
    on: strided_size of the image resized to settings["long_side"], or of the image itself). The second is
    IRN's "cam" of make_cam.py, the one its random walk spreads (see _multiscale_cam)."""
    height, width = image.shape[:2]
    resized = resize_long_side(image, settings["long_side"])
    if resized is image:
        return _multiscale_cam(model, image, class_ids, settings, device)
    cams, grid_cams = _multiscale_cam(model, resized, class_ids, settings, device)
    # as a batch of one-channel maps, as each scale's maps are (see _multiscale_cam)
    return upsample(cams[:, None], (height, width))[:, 0], grid_cams


def _multiscale_cam(
    model: Classifier, image: np.ndarray, class_ids: list[int], settings: dict, device
) -> tuple[torch.Tensor, torch.Tensor]:
    """The multi-scale sums at the image's own size and on its stride-4 grid. As IRN's make_cam.py:

    each scale s resizes the uint8 image with PIL bicubic to round(H s) x round(W s) (s = 1: as it is) and
    runs it with its flip; the flip's map is flipped back and added; for the first result the sum is
    upsampled bilinearly to the image size rounded up to a multiple of the classifier's output stride,
    summed over scales, and cropped to H x W ("high_res"); for the second it is resized bilinearly straight
    to ceil(H / 4) x ceil(W / 4) and summed over scales ("cam", what IRN's walk reads). layer_fused already
    upsamples each stage's map to H x W (its stages differ in resolution), so its maps are neither aligned
    nor cropped, and its grid maps are resized from H x W.
    """
    device = torch.device(device)
    height, width = image.shape[:2]
    indices = [c - 1 for c in sorted(class_ids)]
    method = cam_method(settings["method"])
    if method.at_image_size:
        size = (height, width)
    else:
        size = aligned_size(height, width, model.output_stride)
    grid = strided_size(height, width)
    total = grid_total = None
    for scale in settings["scales"]:
        if scale == 1:
            scaled = image
        else:
            scaled = resize_image(image, max(1, round(height * scale)), max(1, round(width * scale)), Image.BICUBIC)
        x = to_tensor(scaled)
        pair = flipped_pair(x, device)
        with torch.no_grad():
            cams = method_maps(model, pair, indices, settings, (height, width))
            if method.all_classes:
                cams = cams[:, indices]  # classic CAM gives every class; upsample only the image's
            # classes as a batch of one-channel maps, as IRN: bit-identical to upsampling every class, which
            # a (1, classes, h, w) tensor is not on CPU (its kernel vectorises over channels)
            flip_sum = (cams[0] + cams[1].flip(-1))[:, None]
            cams, grid_cams = upsample(flip_sum, size)[:, 0], upsample(flip_sum, grid)[:, 0]
            total = cams if total is None else total + cams
            grid_total = grid_cams if grid_total is None else grid_total + grid_cams
    return total[:, :height, :width].float().cpu(), grid_total.float().cpu()


def normalise(cams: torch.Tensor, percentile: float | None = None) -> torch.Tensor:
    """Divide each channel by its maximum, so every class peaks at ~1 (IRN's 1e-5 guards empty maps).

    percentile (PaS, Bae et al. 2020): divide by the channel's p-th percentile instead and clip to [0, 1],
    so a few extreme pixels cannot squash the rest of the object below the thresholds. A channel whose
    percentile is 0 (a map that is 0 on most pixels) keeps its max: dividing by ~1e-5 would blow it up.
    """
    peaks = cams.flatten(1).max(1).values
    if percentile is None:
        return cams / (peaks.view(-1, 1, 1) + 1e-5)
    levels = torch.quantile(cams.flatten(1), percentile / 100, dim=1)
    levels = torch.where(levels > 0, levels, peaks)
    return (cams / (levels.view(-1, 1, 1) + 1e-5)).clamp(0, 1)


def image_cams(model: Classifier, image: np.ndarray, class_ids: list[int], settings: dict, device) -> np.ndarray:
    """float16 (len(class_ids), H, W): one normalised channel per image-level class, ascending id.

    settings: the cam config section (scales, method, nwc, pas_percentile, fused_stages, long_side).
    """
    return image_and_grid_cams(model, image, class_ids, settings, device)[0]


def image_and_grid_cams(
    model: Classifier, image: np.ndarray, class_ids: list[int], settings: dict, device
) -> tuple[np.ndarray, np.ndarray]:
    """(image_cams, the stride-4 grid CAMs of multiscale_cams, each channel normalised on its own as IRN's
    make_cam.py does), both float16."""
    if not class_ids:
        grid = strided_size(*long_side_size(*image.shape[:2], settings["long_side"]))
        return np.zeros((0, *image.shape[:2]), np.float16), np.zeros((0, *grid), np.float16)
    cams, grid_cams = multiscale_cams(model, image, class_ids, settings, device)
    percentile = settings["pas_percentile"]
    return tuple(normalise(c, percentile).numpy().astype(np.float16) for c in (cams, grid_cams))


def compute_cams(
    model: Classifier, dataset: Dataset, image_ids, labels, settings: dict, out_dir: Path, device, eraser=None
) -> None:
    """Write <out_dir>/<image id>.npy (image_cams) and <out_dir>/GRID_DIR/<image id>.npy (the stride-4 grid
    CAMs the random walk reads) for every image not written yet; an eraser hides earlier rounds' regions first.
    settings: the cam config section (see image_cams). The grid file is written first: an image whose main
    file exists is done."""
    out_dir = Path(out_dir)
    (out_dir / GRID_DIR).mkdir(parents=True, exist_ok=True)
    model = for_inference(model, device)
    for image_id in tqdm(pending_ids(image_ids, out_dir, ".npy"), desc=f"CAMs {out_dir.name}", mininterval=5):
        image = read_image(dataset.image_path(image_id))
        if eraser is not None:
            image = eraser(image_id, image)
        cams, grid_cams = image_and_grid_cams(model, image, labels[image_id], settings, device)
        save_npy(out_dir / GRID_DIR / f"{image_id}.npy", grid_cams)
        save_npy(out_dir / f"{image_id}.npy", cams)
