"""Saliency as the pseudo-masks' background cue (Oh et al., "Exploiting Saliency for Object Segmentation from
Image Level Labels", CVPR 2017; DRS's and EPS's label generation): a pixel is background where the image's
saliency map is low, and the CAMs only say which class a salient pixel is.

The maps are precomputed (a folder of <image id>.png, 0-255, as the WSSS repositories publish PoolNet's or DSS's)
or computed here by OpenCV contrib's static saliency, offline and on the CPU. OpenCV is imported inside
compute_saliency only, so the steps that read maps start without it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from wsss.data.voc import IGNORE, DataError, pending_ids, read_image, write_saliency
from wsss.seeds.masks import cam_to_indices, crf_inference_label, label_keys

# saliency.source's methods (wsss.pipeline.registry.SALIENCY_METHODS) -> OpenCV's constructor in cv2.saliency:
# spectral residual (Hou & Zhang, CVPR 2007: the log spectrum's residual on a 64x64 grey copy, resized back) and
# fine grained (Montabone & Soto, 2010: centre-surround intensity differences at the image's resolution)
METHODS = {
    "spectral_residual": "StaticSaliencySpectralResidual_create",
    "fine_grained": "StaticSaliencyFineGrained_create",
}


def compute_saliency(image: np.ndarray, method: str) -> np.ndarray:
    """An RGB image's saliency map by an OpenCV static saliency method: uint8 (H, W), 0-255, as the published
    maps (OpenCV gives float32 in [0, 1], rounded here to 1/255)."""
    import cv2

    if method not in METHODS:
        raise ValueError(f"unknown saliency method {method!r}; the methods are {', '.join(METHODS)}")
    algorithm = getattr(cv2.saliency, METHODS[method])()
    done, saliency = algorithm.computeSaliency(np.ascontiguousarray(image[..., ::-1]))  # OpenCV's BGR order
    if not done:
        raise DataError(f"OpenCV's {method} saliency failed on an image of shape {image.shape}")
    return np.clip(np.rint(saliency * 255), 0, 255).astype(np.uint8)


def saliency_shard(dataset, image_ids, method: str, out_dir: Path) -> None:
    """Write <out_dir>/<id>.png, the saliency map of each image not written yet (a killed job continues)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for image_id in tqdm(pending_ids(image_ids, out_dir, ".png"), desc=f"saliency {out_dir.name}", mininterval=5):
        write_saliency(out_dir / f"{image_id}.png", compute_saliency(read_image(dataset.image_path(image_id)), method))


def background(saliency: np.ndarray, threshold: float) -> np.ndarray:
    """Where a pixel is background: saliency / 255 below threshold (at the threshold it is salient, as Oh et al.'s
    `sal_map >= salthres * 255 / 100`)."""
    return saliency / 255.0 < threshold


def saliency_labels(saliency: np.ndarray, claims: np.ndarray, threshold: float) -> np.ndarray:
    """A label map from a saliency map and the class each pixel's CAMs claim (0: none).

    Background where the saliency is below threshold, whatever the CAMs say there (DRS, whose background score
    1 - saliency beats every max-normalised CAM; Oh et al. make a seed background where it leaves a salient
    region); a salient pixel takes its claimed class, and where no class claims it, 255 (ignored in training),
    as DRS's "salient pixels predicted as background"."""
    labels = np.where(claims == 0, IGNORE, claims).astype(np.uint8)
    labels[background(saliency, threshold)] = 0
    return labels


def cam_claims(image: np.ndarray, cams: np.ndarray, class_ids: list[int], fg_threshold: float, params: dict):
    """The class each pixel's CAMs claim (0: none): IRN's confident foreground, the dense CRF over the CAMs'
    argmax with background at fg_threshold (the pseudo-masks' own foreground, wsss.seeds.masks.pseudo_mask)."""
    indices = crf_inference_label(image, cam_to_indices(cams, fg_threshold), len(class_ids) + 1, params)
    return label_keys(class_ids)[indices]


def saliency_pseudo_mask(
    image: np.ndarray,
    cams: np.ndarray,
    class_ids: list[int],
    saliency: np.ndarray,
    fg_threshold: float,
    saliency_threshold: float,
    params: dict,
) -> np.ndarray:
    """A pseudo-mask with saliency as the background cue: the CAMs' claims (cam_claims) where the saliency is at
    least saliency_threshold, background below it, 255 where a salient pixel is claimed by no class."""
    return saliency_labels(saliency, cam_claims(image, cams, class_ids, fg_threshold, params), saliency_threshold)


def saliency_map_file(index: dict[str, Path], directories, image_id: str) -> Path:
    """An image's map among directories (index: wsss.data.voc.index_files of them): the file that should be there
    when it is missing from one directory (a folder of maps), so that read_saliency's error names it."""
    if image_id in index:
        return index[image_id]
    if len(directories) == 1:
        return Path(directories[0]) / f"{image_id}.png"
    raise DataError(f"no saliency map {image_id}.png in {', '.join(map(str, directories))}")
