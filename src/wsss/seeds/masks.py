"""From CAMs to label maps: the erasing rounds' CAMs merged, background-threshold argmax (IRN), dense CRF, and
confident pseudo-masks, CLIP-ES's confidence-masked CRF labels. numpy only (no torch), so these CPU steps start
fast."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from wsss.data.datasets import Dataset
from wsss.data.labels import load_labels
from wsss.data.voc import (
    GRID_DIR,
    IGNORE,
    DataError,
    load_npy,
    pending_ids,
    read_image,
    read_saliency,
    save_npy,
    write_mask,
)
from wsss.pipeline.partial_work import fingerprint, shard_work_dir


def merge_cams(cam_indexes: list[dict[str, Path]], image_ids, out_dir: Path) -> None:
    """The per-pixel maximum over erasing rounds of each image's CAMs, and of its grid CAMs (GRID_DIR beside
    each round's files), for the images not written yet."""
    out_dir = Path(out_dir)
    (out_dir / GRID_DIR).mkdir(parents=True, exist_ok=True)
    for image_id in tqdm(pending_ids(image_ids, out_dir, ".npy"), desc=f"merge {out_dir.name}", mininterval=5):
        paths = [index[image_id] for index in cam_indexes]
        grid = np.maximum.reduce([load_npy(p.parent / GRID_DIR / p.name) for p in paths])
        save_npy(out_dir / GRID_DIR / f"{image_id}.npy", grid.astype(np.float16))
        merged = np.maximum.reduce([load_npy(p) for p in paths])
        save_npy(out_dir / f"{image_id}.npy", merged.astype(np.float16))


def cam_to_indices(cams: np.ndarray, bg_threshold: float) -> np.ndarray:
    """Per-pixel index into [background, *image classes]: a constant background channel, then argmax."""
    padded = np.concatenate([np.full((1, *cams.shape[1:]), bg_threshold, np.float32), cams.astype(np.float32)])
    return np.argmax(padded, axis=0)


def label_keys(class_ids: list[int]) -> np.ndarray:
    """Maps an index from cam_to_indices to its class id (0 = background)."""
    return np.asarray([0, *class_ids], np.uint8)


def cam_to_label(cams: np.ndarray, class_ids: list[int], bg_threshold: float) -> np.ndarray:
    """A class-id label map (uint8 HxW) from an image's CAMs (one channel per image class, ascending ids)."""
    return label_keys(class_ids)[cam_to_indices(cams, bg_threshold)]


def dense_crf(image: np.ndarray, unary: np.ndarray, params: dict) -> np.ndarray:
    """Mean-field inference of a dense CRF (Krähenbühl & Koltun) with a Gaussian (position) and a bilateral
    (position and colour) kernel over an image, from unary energies (num_labels, H*W): (num_labels, H, W)."""
    import pydensecrf.densecrf as dcrf

    num_labels = unary.shape[0]
    height, width = image.shape[:2]
    crf = dcrf.DenseCRF2D(width, height, num_labels)
    crf.setUnaryEnergy(np.ascontiguousarray(unary))
    crf.addPairwiseGaussian(sxy=params["gaussian"]["sxy"], compat=params["gaussian"]["compat"])
    crf.addPairwiseBilateral(
        sxy=params["bilateral"]["sxy"],
        srgb=params["bilateral"]["srgb"],
        rgbim=np.ascontiguousarray(image, dtype=np.uint8),
        compat=params["bilateral"]["compat"],
    )
    return np.asarray(crf.inference(params["iterations"])).reshape(num_labels, height, width)


def crf_inference_label(image: np.ndarray, indices: np.ndarray, num_labels: int, params: dict) -> np.ndarray:
    """Dense CRF over a hard label map (IRN's crf_inference_label); returns refined indices."""
    if num_labels < 2:
        return np.zeros(indices.shape, np.int64)
    from pydensecrf.utils import unary_from_labels

    unary = unary_from_labels(indices, num_labels, gt_prob=params["gt_prob"], zero_unsure=False)
    return np.argmax(dense_crf(image, unary, params), axis=0)


def crf_inference_prob(image: np.ndarray, probs: np.ndarray, params: dict) -> np.ndarray:
    """Dense CRF over class probabilities (num_labels, H, W), as DeepLab v1/v2 post-process their predictions:
    the refined argmax index per pixel."""
    from pydensecrf.utils import unary_from_softmax

    unary = unary_from_softmax(np.asarray(probs, np.float32))
    return np.argmax(dense_crf(image, unary, params), axis=0)


def crf_label(
    image: np.ndarray, cams: np.ndarray, class_ids: list[int], bg_threshold: float, params: dict
) -> np.ndarray:
    """CAM -> thresholded argmax -> dense CRF -> class-id label map (every pixel labelled)."""
    indices = cam_to_indices(cams, bg_threshold)
    return label_keys(class_ids)[crf_inference_label(image, indices, len(class_ids) + 1, params)]


def pseudo_mask(
    image: np.ndarray, cams: np.ndarray, class_ids: list[int], fg_threshold: float, bg_threshold: float, params: dict
) -> np.ndarray:
    """IRN's confident pseudo-mask: foreground where the CRF at the high threshold says so, background where
    the CRF at the low threshold says so, 255 (ignored in training) where neither is confident."""
    num_labels = len(class_ids) + 1
    fg = crf_inference_label(image, cam_to_indices(cams, fg_threshold), num_labels, params)
    bg = crf_inference_label(image, cam_to_indices(cams, bg_threshold), num_labels, params)
    mask = label_keys(class_ids)[fg]
    mask[fg == 0] = IGNORE
    mask[(fg == 0) & (bg == 0)] = 0
    return mask


def label_shard(
    dataset, image_ids, cam_dir, labels, out_dir, to_label, grid_cams: bool = False, saliency_dir=None
) -> None:
    """Write <out_dir>/<id>.png = to_label(image, cams, class_ids) for every image of one shard not written yet;
    grid_cams: to_label(image, cams, class_ids, grid_cams=...), the image's stride-4 CAMs too (GRID_DIR);
    saliency_dir: to_label(..., saliency=...), the image's saliency map <saliency_dir>/<id>.png too."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    todo = pending_ids(image_ids, out_dir, ".png")
    for image_id in tqdm(todo, desc=f"{out_dir.parent.name} {out_dir.name}", mininterval=5):
        image = read_image(dataset.image_path(image_id))
        cams = load_npy(Path(cam_dir) / f"{image_id}.npy")
        if cams.shape[1:] != image.shape[:2] or len(cams) != len(labels[image_id]):
            raise DataError(
                f"CAM {cam_dir}/{image_id}.npy has shape {cams.shape}; image {image.shape[:2]}, "
                f"{len(labels[image_id])} classes"
            )
        extra = {"grid_cams": load_npy(Path(cam_dir) / GRID_DIR / f"{image_id}.npy")} if grid_cams else {}
        if saliency_dir is not None:
            extra["saliency"] = read_saliency(Path(saliency_dir) / f"{image_id}.png", image.shape[:2])
        write_mask(out_dir / f"{image_id}.png", to_label(image, cams, labels[image_id], **extra))


def label_cam_shard(
    inputs, out_dir, shard, params: dict, to_label, grid_cams: bool = False, saliency: bool = False
) -> None:
    """One shard's label maps from its CAMs (the crf and pseudo_masks rules), resumable after a kill.

    inputs: the rule's inputs (.data: the dataset index, .labels: image labels, .cams: the shard's CAM
    directory, and whatever else to_label reads); params: the rule's params (split, num_shards and what
    decides to_label), which with all the inputs make the fingerprint of the partial work a rerun continues.
    grid_cams: to_label reads the stride-4 CAMs too (see label_shard); saliency: to_label reads the saliency map
    of each image in inputs.saliency (the shard's directory of the saliency step, or a folder of maps).
    """
    dataset = Dataset.open(inputs.data)
    with shard_work_dir(out_dir, fingerprint(params, inputs)) as work:
        image_ids = dataset.shard_ids(params["split"], shard, params["num_shards"])
        saliency_dir = inputs.saliency if saliency else None
        label_shard(
            dataset, image_ids, inputs.cams, load_labels(inputs.labels), work, to_label, grid_cams, saliency_dir
        )


# CLIP-ES's CRF input: the BGR image minus Caffe's BGR mean, cast to uint8 (eval_cam_with_crf.py)
MEAN_BGR = (104.008, 116.669, 122.675)


def crf_image(image: np.ndarray) -> np.ndarray:
    """CLIP-ES's CRF image: BGR minus MEAN_BGR, cast to uint8, negative values wrapping (modulo 256, as numpy's
    cast does on x86): most dark pixels become bright, a quirk kept since the published labels were made so."""
    shifted = np.trunc(image[..., ::-1].astype(np.float32) - np.asarray(MEAN_BGR, np.float32))
    return np.ascontiguousarray(np.mod(shifted.astype(np.int64), 256).astype(np.uint8))


def clip_es_label(
    image: np.ndarray, cams: np.ndarray, class_ids: list[int], crf: dict, confidence: float
) -> np.ndarray:
    """CLIP-ES's pseudo-label (uint8 HxW): dense CRF over the probabilities (1 - max CAM, CAMs) as given (float16
    CAM files: their precision), argmax as class id, IGNORE where the CRF's probability is below confidence. An
    image without classes is background."""
    from pydensecrf.utils import unary_from_softmax

    if not len(class_ids):
        return np.zeros(image.shape[:2], np.uint8)
    probs = np.concatenate([1 - np.max(cams, axis=0, keepdims=True), cams])
    posterior = dense_crf(crf_image(image), unary_from_softmax(probs), crf)
    label = label_keys(class_ids)[np.argmax(posterior, axis=0)]
    label[np.max(posterior, axis=0) < confidence] = IGNORE
    return label
