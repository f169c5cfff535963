"""IRN's seed chain written out independently of the wsss package (jiwoon-ahn/irn: step/make_cam.py,
step/cam_to_ir_label.py, voc12/dataloader.py, net/resnet50_irn.py, misc/indexing.py,
step/make_sem_seg_labels.py), for the parity tests. Only the networks' modules (their weights) come from
the project; every computation around them is IRN's, step by step.
"""

import numpy as np
import pydensecrf.densecrf as dcrf
import torch
import torch.nn.functional as F
from PIL import Image
from pydensecrf.utils import unary_from_labels

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def normalised(image: np.ndarray) -> np.ndarray:
    """voc12/dataloader.py TorchvisionNormalize, channels first."""
    out = np.empty_like(image, np.float32)
    for c in range(3):
        out[..., c] = (image[..., c] / 255.0 - MEAN[c]) / STD[c]
    return out.transpose(2, 0, 1)


def flip_pair(image: np.ndarray) -> torch.Tensor:
    """VOC12ClassificationDatasetMSF: the normalised image and its horizontal flip, stacked."""
    x = normalised(image)
    return torch.from_numpy(np.stack([x, np.flip(x, -1)]).copy())


def make_cam(model, image, class_ids, scales, stride=16) -> tuple[np.ndarray, np.ndarray]:
    """make_cam.py's ("high_res", "cam") of the image-level classes (ascending id), each max-normalised:
    the image-resolution CAMs and the stride-4 ones its random walk reads. model: a project Classifier (its
    features and linear head are IRN's CAM network's)."""
    height, width = image.shape[:2]
    up_size = ((height - 1) // stride + 1) * stride, ((width - 1) // stride + 1) * stride
    strided_size = (height - 1) // 4 + 1, (width - 1) // 4 + 1
    outputs = []
    for s in scales:
        if s == 1:
            img = image
        else:  # imutils.pil_rescale(img, s, order=3)
            size = (int(np.round(width * s)), int(np.round(height * s)))
            img = np.asarray(Image.fromarray(image).resize(size, Image.BICUBIC))
        with torch.no_grad():
            x = F.relu(F.conv2d(model.features(flip_pair(img)), model.classifier.weight))
        outputs.append(x[0] + x[1].flip(-1))
    keys = [c - 1 for c in sorted(class_ids)]
    strided = torch.sum(
        torch.stack([F.interpolate(o[None], strided_size, mode="bilinear", align_corners=False)[0] for o in outputs]), 0
    )[keys]
    high_res = [F.interpolate(o[:, None], up_size, mode="bilinear", align_corners=False) for o in outputs]
    high_res = torch.sum(torch.stack(high_res, 0), 0)[:, 0, :height, :width][keys]
    return tuple((cam / (F.adaptive_max_pool2d(cam, (1, 1)) + 1e-5)).numpy() for cam in (high_res, strided))


def crf_inference_label(img, labels, n_labels, t=10, gt_prob=0.7) -> np.ndarray:
    """misc/imutils.py crf_inference_label, its kernels as IRN fixes them."""
    h, w = img.shape[:2]
    d = dcrf.DenseCRF2D(w, h, n_labels)
    d.setUnaryEnergy(unary_from_labels(labels, n_labels, gt_prob=gt_prob, zero_unsure=False))
    d.addPairwiseGaussian(sxy=3, compat=3)
    d.addPairwiseBilateral(sxy=50, srgb=5, rgbim=np.ascontiguousarray(np.copy(img)), compat=10)
    return np.argmax(np.array(d.inference(t)).reshape((n_labels, h, w)), axis=0)


def ir_label(img, high_res, class_ids, conf_fg_thres=0.30, conf_bg_thres=0.05) -> np.ndarray:
    """cam_to_ir_label.py: confident foreground and background from two CRFs, 255 elsewhere."""
    keys = np.pad(np.asarray(sorted(class_ids)), (1, 0), mode="constant")
    fg_conf_cam = np.pad(high_res, ((1, 0), (0, 0), (0, 0)), mode="constant", constant_values=conf_fg_thres)
    fg_conf = keys[crf_inference_label(img, np.argmax(fg_conf_cam, axis=0), keys.shape[0])]
    bg_conf_cam = np.pad(high_res, ((1, 0), (0, 0), (0, 0)), mode="constant", constant_values=conf_bg_thres)
    bg_conf = keys[crf_inference_label(img, np.argmax(bg_conf_cam, axis=0), keys.shape[0])]
    conf = fg_conf.copy()
    conf[fg_conf == 0] = 255
    conf[bg_conf + fg_conf == 0] = 0
    return conf.astype(np.uint8)


def pil_rescale_nearest(label: np.ndarray, scale: float) -> np.ndarray:
    """imutils.pil_rescale(label, scale, order=0): the affinity targets' label map (VOC12AffinityDataset)."""
    height, width = label.shape[:2]
    size = (int(np.round(width * scale)), int(np.round(height * scale)))
    return np.asarray(Image.fromarray(label).resize(size, Image.NEAREST))


def edge_displacement(model, image, crop_size: int, stage_strides=(4, 4, 8, 16, 16)) -> torch.Tensor:
    """net/resnet50_irn.py EdgeDisplacement's boundary map: the image and its flip padded to crop_size,
    Net.forward's edge branch (stem and four stages, each 1x1 conv + GroupNorm, x2 / x4 bilinear upsampling
    cropped to stage 2's grid, ReLU; fc_edge6 over their concatenation), cropped to the image's cells, the
    sigmoid of the two logits' mean. model: a project EdgeNet with a stem branch (its modules stand in for
    IRN's stage1-5 and fc_edge1-6); stage_strides: each read map's stride (IRN's ResNet-50, strides 2,2,2,1)."""
    x = flip_pair(image)
    feat_size = (x.size(2) - 1) // 4 + 1, (x.size(3) - 1) // 4 + 1
    x = F.pad(x, [0, crop_size - x.size(3), 0, crop_size - x.size(2)])
    features = model.features
    with torch.no_grad():
        maps = [features.stem(x)]
        for stage in features.stages:
            maps.append(stage(maps[-1]))
        edges = []
        for branch, feature, stride in zip(model.branches, maps, stage_strides):
            out = branch(feature)
            if stride > 4:
                out = F.interpolate(out, scale_factor=stride // 4, mode="bilinear", align_corners=False)
            edges.append(F.relu(out))
        size = edges[1].shape[-2:]
        edge_out = model.edge(torch.cat([e[..., : size[0], : size[1]] for e in edges], dim=1))
    edge_out = edge_out[..., : feat_size[0], : feat_size[1]]
    return torch.sigmoid(edge_out[0] / 2 + edge_out[1].flip(-1) / 2)[0]


def propagate_to_edge(affinities, x, edge, radius, beta, exp_times) -> torch.Tensor:
    """misc/indexing.py propagate_to_edge, dense: the pair affinities (affinities(edge[None], radius)[0]:
    one map per offset of directions(radius), both pinned against IRN's PathIndex elsewhere) placed
    symmetrically with 1 on the diagonal, A^beta column-normalised and squared exp_times times; x * (1 -
    edge) times it. Returns (C, h, w)."""
    from wsss.seeds.random_walk import directions

    height, width = edge.shape
    cells = height * width
    affinity = affinities(edge[None], radius)[0]
    dense = torch.eye(cells)
    for d, (dy, dx) in enumerate(directions(radius)):
        for y in range(height):
            for x_ in range(width):
                if 0 <= y + dy < height and 0 <= x_ + dx < width:
                    i, j = y * width + x_, (y + dy) * width + x_ + dx
                    dense[i, j] = dense[j, i] = affinity[d, y, x_]
    transition = dense**beta
    transition = transition / transition.sum(0, keepdim=True)
    for _ in range(exp_times):
        transition = transition @ transition
    return ((x * (1 - edge)).reshape(len(x), -1) @ transition).reshape(x.shape)


def sem_seg_label(rw: torch.Tensor, class_ids, size, sem_seg_bg_thres) -> np.ndarray:
    """make_sem_seg_labels.py: the walk upsampled x4, cropped to the image, divided by its max, a background
    channel at sem_seg_bg_thres, argmax, class keys."""
    keys = np.pad(np.asarray(sorted(class_ids)), (1, 0), mode="constant")
    rw_up = F.interpolate(rw[None], scale_factor=4, mode="bilinear", align_corners=False)[0, :, : size[0], : size[1]]
    rw_up = rw_up / torch.max(rw_up)
    rw_up_bg = F.pad(rw_up, (0, 0, 0, 0, 1, 0), value=sem_seg_bg_thres)
    return keys[torch.argmax(rw_up_bg, dim=0).numpy()].astype(np.uint8)
