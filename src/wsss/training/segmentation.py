"""The segmentation step: a network of wsss.nets.models trained on (pseudo-)masks with 255 ignored (cross-entropy,
or SEC's loss on the confident pseudo-masks as cues: wsss.training.sec), and its inference (scales, flip, dense
CRF)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from wsss.data.voc import IGNORE, pending_ids, read_image, write_mask
from wsss.files import atomic_write
from wsss.nets.checkpoints import load_checkpoint, load_state
from wsss.nets.hardware import autocast, flipped_pair, for_inference, memory_format
from wsss.nets.models import UNREAD_UPSAMPLING, segmentation_model
from wsss.nets.transforms import resize_long_side, to_tensor
from wsss.pipeline.registry import CROSS_ENTROPY, SEC_LOSS, SEGMENTATION_LOSSES
from wsss.scoring.figures import overlay_mask
from wsss.seeds.masks import crf_inference_prob
from wsss.training.class_weights import NONE, count_labels, weighting, write_class_weights
from wsss.training.datasets import SecDataset, SegmentationDataset, TrainingImages
from wsss.training.loop import TrainingJob, train_and_save
from wsss.training.sec import SecLoss

log = logging.getLogger(__name__)


CLASS_WEIGHTS_FILE = "class_weights.json"


def train_segmentation(
    images: TrainingImages,
    settings: dict,
    job: TrainingJob,
    desc: str,
    class_names: list[str] | None = None,
    class_weights_path: Path | None = None,
    image_labels: dict | None = None,
) -> pd.DataFrame:
    """Train the segmentation network on images' label maps (settings: the segmentation section); resumes from
    the job's checkpoint when it is of the same fingerprint (see training.fit), and removes it once the model
    and history are written.

    The cross-entropy weighs the classes by settings["class_weights"] (wsss.training.class_weights), counted
    over the label maps before training and written to class_weights_path (default: class_weights.json next to
    the model) under class_names (default: the class ids). A resumed job counts the same labels again (its
    fingerprint covers them), so it trains with the same weights. SEC's loss (settings["loss"] "sec") reads the
    label maps as cues and image_labels (image id -> foreground class ids); its history adds each term's epoch
    mean."""
    loss_name = settings.get("loss", CROSS_ENTROPY)  # the step's settings leave out loss for cross-entropy
    if loss_name not in SEGMENTATION_LOSSES:
        raise ValueError(f"segmentation.loss must be one of {', '.join(SEGMENTATION_LOSSES)}, got {loss_name!r}")
    method = settings.get("class_weights", NONE)
    class_weight = count_class_weights(
        images,
        method,
        class_names or [str(c) for c in range(images.num_classes)],
        class_weights_path or Path(job.model_path).with_name(CLASS_WEIGHTS_FILE),
    )
    if loss_name == SEC_LOSS:
        return _train_with_sec(images, settings, job, desc, image_labels)
    dataset = SegmentationDataset(images, settings["resize_long"], settings["crop_size"])
    model, backbone, head, meta = _new_network(images, settings, job)
    loss_fn = segmentation_loss(None if method == NONE else class_weight)
    return train_and_save(model, dataset, loss_fn, backbone, head, settings, job, meta, desc=desc)


def _train_with_sec(
    images: TrainingImages, settings: dict, job: TrainingJob, desc: str, image_labels: dict | None
) -> pd.DataFrame:
    """train_segmentation with SEC's loss: SecDataset's cues, classes and grid images, SecLoss's terms."""
    if image_labels is None:
        raise ValueError("segmentation.loss sec needs the image-level labels (its expansion loss reads them)")
    sec = settings["sec"]
    dataset = SecDataset(images, settings["resize_long"], settings["crop_size"], image_labels, sec["stride"])
    model, backbone, head, meta = _new_network(images, settings, job)
    loss = SecLoss(sec)

    def loss_fn(outputs, targets):
        return loss(outputs["out"], targets)

    options = dict(on_epoch_end=loss.epoch_record, host_targets=SecDataset.HOST_TARGETS)
    return train_and_save(model, dataset, loss_fn, backbone, head, settings, job, meta, desc=desc, **options)


def _new_network(images: TrainingImages, settings: dict, job: TrainingJob) -> tuple:
    """(model, backbone parameters, head parameters, meta for its file): the network of settings started from
    the job's weights, after seeding torch with the job's seed (its new head's initialisation)."""
    torch.manual_seed(job.seed)
    upsampling = settings.get("upsampling", UNREAD_UPSAMPLING)
    model = segmentation_model(
        settings["arch"],
        settings["backbone"],
        images.num_classes,
        settings["output_stride"],
        job.weights,
        upsampling,
        settings["frozen_stages"],
        settings["frozen_bn"],
    )
    head = list(model.classifier.parameters())
    head_ids = {id(p) for p in head}
    backbone = [p for p in model.parameters() if id(p) not in head_ids]
    meta = dict(
        arch=settings["arch"],
        backbone=settings["backbone"],
        output_stride=settings["output_stride"],
        upsampling=upsampling,
        num_classes=images.num_classes,
    )
    return model, backbone, head, meta


def count_class_weights(images: TrainingImages, method: str, class_names: list[str], path: Path) -> torch.Tensor:
    """The loss's class weights (float32, one per class) of images' label maps by method, written with their
    pixel counts to path (also for method "none": all 1, so every run has the file)."""
    weigh = weighting(method)
    counts = count_labels((images.targets[i] for i in images.image_ids), images.num_classes)
    weights = weigh(counts)
    write_class_weights(path, method, class_names, weights, counts)
    log.info("class weights (%s): %s", method, dict(zip(class_names, np.round(weights, 4).tolist())))
    return torch.tensor(weights, dtype=torch.float32)


def segmentation_loss(class_weight: torch.Tensor | None):
    """Pixel-wise cross-entropy with 255 ignored. With class_weight, torch's weighted mean: the sum of
    w[y] * loss over the labelled pixels divided by the sum of their w[y] (not by their count), so the weights'
    scale does not change the step size; without, the plain mean (the loss before class weights, unchanged)."""
    if class_weight is None:

        def loss_fn(outputs, targets):
            return F.cross_entropy(outputs["out"], targets, ignore_index=IGNORE)

        return loss_fn

    def weighted_loss_fn(outputs, targets):
        logits = outputs["out"]
        return F.cross_entropy(logits, targets, weight=class_weight.to(logits.device), ignore_index=IGNORE)

    return weighted_loss_fn


def load_segmentation(path) -> torch.nn.Module:
    checkpoint = load_checkpoint(path)
    meta = checkpoint["meta"]
    model = segmentation_model(
        meta["arch"],
        meta["backbone"],
        meta["num_classes"],
        meta["output_stride"],
        upsampling=meta.get("upsampling", UNREAD_UPSAMPLING),
    )
    return load_state(model, checkpoint, path).eval()


# The inference DeepLab and most WSSS papers score with is multi-scale (0.5-1.75) + flip, often + CRF; the
# default here is one scale + flip, on the whole image (tile None).
DEFAULT_INFERENCE = {"scales": [1.0], "flip": True, "crf": None, "tile": None}


def check_tile(tile: Mapping | None) -> None:
    """A tile setting the tiling can use: None, or {size: >= 16 px, overlap: 0 <= overlap < size} (the stride
    size - overlap must move the tile on)."""
    if tile is None:
        return
    size, overlap = tile["size"], tile["overlap"]
    if size < 16 or not 0 <= overlap < size:
        raise ValueError(f"segmentation.inference.tile needs size >= 16 and 0 <= overlap < size (got {dict(tile)})")


def tile_starts(length: int, tile_length: int, stride: int) -> list[int]:
    """Where the tiles of one side start: every stride from 0, the last one aligned to the side's end (so a side
    at least a tile long needs no padding; one tile at 0 where tile_length is the side's length)."""
    last = length - tile_length
    return [*range(0, last, stride), last]


def tile_taper(tile_length: int, overlap: int) -> torch.Tensor:
    """One side's blending weight (float32, tile_length): 1 in the tile's middle, falling linearly towards its
    edges inside the overlap to 1 / (overlap + 1) at the border pixel: (distance to the nearest edge + 1) /
    (overlap + 1), at most 1. Border pixels see the least context, so they count least where tiles overlap;
    the weight stays positive so that a pixel only one tile covers (the image's own border) keeps its logits."""
    index = torch.arange(tile_length, dtype=torch.float32)
    distance = torch.minimum(index, tile_length - 1 - index)
    return ((distance + 1) / (overlap + 1)).clamp(max=1.0)


def network_logits(model: torch.nn.Module, x: torch.Tensor, device, flip: bool) -> tuple[torch.Tensor, int]:
    """(Logits (C, h, w) of one image tensor (3, h, w), plus those of its horizontal flip flipped back when flip;
    how many were summed)."""
    batch = flipped_pair(x, device) if flip else x[None].to(device, memory_format=memory_format(device))
    with autocast(device):
        logits = model(batch)["out"].float()
    return (logits[0] + logits[1].flip(-1) if flip else logits[0]), len(batch)


def tiled_logits(
    model: torch.nn.Module, x: torch.Tensor, device, tile: Mapping, flip: bool
) -> tuple[torch.Tensor, int]:
    """(Logits (C, h, w), how many passes they stand for) of an image tensor (3, h, w) from tiles of
    tile["size"] px a side (a side shorter than that: its length) on a grid of stride size - overlap
    (tile_starts), each with its flip when flip (network_logits), blended where they overlap: the sum of each
    tile's logits times its weight (the outer product of tile_taper along both sides) over the sum of the
    weights. A weighted mean, so the logits keep the scale of a whole-image pass, and a tile with its flip counts
    as two passes, as the whole image does.

    The alternatives: U-Net's overlap-tile (Ronneberger et al. 2015, Sec. 2 and Fig. 2) runs unpadded
    convolutions on input tiles larger than their output tiles by the context, mirror-pads the image's border
    and lays the output tiles edge to edge, with no blending; mmsegmentation's slide_inference
    (mmseg/models/segmentors/encoder_decoder.py) averages overlapping windows with equal weights (overlap 0 here:
    every weight is 1, and only the last tile of a row or column overlaps another). The networks here pad their
    convolutions, so a tile's border logits see less context than its middle: the taper counts them least."""
    height, width = x.shape[-2:]
    size, overlap = tile["size"], tile["overlap"]
    tile_height, tile_width = min(size, height), min(size, width)
    weight = (tile_taper(tile_height, overlap)[:, None] * tile_taper(tile_width, overlap)[None]).to(device)
    total, weights = None, torch.zeros((height, width), device=device)
    for top in tile_starts(height, tile_height, size - overlap):
        for left in tile_starts(width, tile_width, size - overlap):
            crop = x[:, top : top + tile_height, left : left + tile_width]
            logits, count = network_logits(model, crop, device, flip)
            logits = logits * weight
            if total is None:
                total = torch.zeros((logits.shape[0], height, width), device=device)
            total[:, top : top + tile_height, left : left + tile_width] += logits
            weights[top : top + tile_height, left : left + tile_width] += weight
    return total / weights, count


@torch.no_grad()
def predict_logits(
    model: torch.nn.Module,
    image: np.ndarray,
    device,
    long_side: int | None = None,
    scales=(1.0,),
    flip: bool = True,
    tile: Mapping | None = None,
) -> tuple[torch.Tensor, int]:
    """(Summed logits (C, H, W) over the scales and flips, how many were summed) for one image.

    At each scale the image is resized with PIL bicubic so that its long side is scale * long_side (long_side
    None: scale * its own long side; long_side is the resolution the network was trained at) and the
    logits (plus those of the horizontal flip, flipped back) are resized bilinearly to H x W. tile
    ({size, overlap} in px): where the resized image is larger than size in either side, its logits come from
    overlapping tiles (tiled_logits); None, or an image within one tile: the whole image at once.
    """
    check_tile(tile)
    device = torch.device(device)
    height, width = image.shape[:2]
    total, count = None, 0
    for scale in scales:
        side = round(scale * (long_side or max(height, width)))
        x = to_tensor(resize_long_side(image, side))
        if tile is not None and max(x.shape[-2:]) > tile["size"]:
            logits, summed = tiled_logits(model, x, device, tile, flip)
        else:
            logits, summed = network_logits(model, x, device, flip)
        if logits.shape[-2:] != (height, width):
            logits = F.interpolate(logits[None], size=(height, width), mode="bilinear", align_corners=False)[0]
        total = logits if total is None else total + logits
        count += summed
    return total, count


def predict(
    model: torch.nn.Module,
    image: np.ndarray,
    device,
    long_side: int | None = None,
    scales=(1.0,),
    flip: bool = True,
    crf: dict | None = None,
    tile: Mapping | None = None,
) -> np.ndarray:
    """Class-id map (uint8 HxW) for one image: the argmax of the logits summed over scales and flips
    (predict_logits; tile: overlapping tiles, or None); crf (dense-CRF parameters, wsss.seeds.masks.dense_crf):
    the argmax of a dense CRF over the softmax of their mean instead (DeepLab v1/v2's post-processing)."""
    logits, count = predict_logits(model, image, device, long_side, scales, flip, tile)
    if crf is None:
        return logits.argmax(0).cpu().numpy().astype(np.uint8)
    probs = torch.softmax(logits / count, 0).cpu().numpy()
    return crf_inference_prob(image, probs, crf).astype(np.uint8)


def predict_images(
    model,
    image_paths: Mapping[str, Path],
    out_dir: Path,
    device,
    long_side: int | None,
    inference: dict | None = None,
    overlay_dir: Path | None = None,
) -> None:
    """Write <out_dir>/<id>.png (a palette label map at the image's size) for every image (id -> file) not
    written yet (long_side, inference's scales, flip, crf and tile: see predict; default DEFAULT_INFERENCE), and
    with overlay_dir <overlay_dir>/<id>.jpg, the image under its labels' colours, before it (so a label map under
    its final name has its overlay: a killed job resumes with the images it had not finished)."""
    inference = {**DEFAULT_INFERENCE, **(inference or {})}
    out_dir = Path(out_dir)
    for folder in (out_dir, overlay_dir):
        if folder is not None:
            Path(folder).mkdir(parents=True, exist_ok=True)
    model = for_inference(model, device)
    for image_id in tqdm(pending_ids(list(image_paths), out_dir, ".png"), desc="predict", mininterval=5):
        image = read_image(image_paths[image_id])
        label = predict(model, image, device, long_side, *(inference[k] for k in ("scales", "flip", "crf", "tile")))
        if overlay_dir is not None:
            with atomic_write(Path(overlay_dir) / f"{image_id}.jpg") as tmp:
                Image.fromarray(overlay_mask(image, label)).save(tmp, format="JPEG", quality=90)
        write_mask(out_dir / f"{image_id}.png", label)
