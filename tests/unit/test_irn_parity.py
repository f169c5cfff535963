"""IRN's seed chain, end to end, against IRN's formulation written out in tests/irn_reference.py: CAMs (at
image resolution and on the stride-4 grid) -> confident ir_label -> boundary map -> random-walk labels, on
a few images with fixed random weights. A change that breaks parity with IRN anywhere in the chain fails
here; the project stores CAMs as float16, so labels may differ at a few near-tied pixels."""

from functools import partial

import numpy as np
import pytest
import torch

from tests import irn_reference as irn
from wsss.nets.models import Classifier
from wsss.seeds.cam import DEFAULT_SETTINGS, image_and_grid_cams
from wsss.seeds.masks import pseudo_mask
from wsss.seeds.random_walk import edge_affinities, walk_label
from wsss.training.irn import EdgeNet, edge_map

SCALES = [1.0, 0.5, 1.5, 2.0]
IRN_CRF = {
    "iterations": 10,
    "gt_prob": 0.7,
    "gaussian": {"sxy": 3, "compat": 3},
    "bilateral": {"sxy": 50, "srgb": 5, "compat": 10},
}
# IRN's radius and beta; 2^2 steps and background 0.8 (IRN: 2^8, 0.25) because random weights give weak
# boundaries (max ~0.4), over which 2^8 steps on these 12-16 cell grids flood one class everywhere (the walk
# at IRN's settings is pinned by tests/unit/test_random_walk.py's dense comparison)
IRN_WALK = {"long_side": None, "radius": 5, "beta": 10, "exp_times": 2, "bg_threshold": 0.8}
CROP = 64  # the boundary network's training crop (IRN: 512), to which edge_map pads


def smooth_image(rng, size) -> np.ndarray:
    """A few flat regions with noise: CAMs, CRFs and boundaries with structure, unlike white noise."""
    height, width = size
    image = np.zeros((height, width, 3), np.float32)
    for _ in range(4):
        y, x = rng.integers(0, height), rng.integers(0, width)
        h, w = rng.integers(height // 4, height // 2 + 1), rng.integers(width // 4, width // 2 + 1)
        image[y : y + h, x : x + w] += rng.integers(40, 120, size=3)
    image += rng.normal(0, 12, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def networks():
    torch.manual_seed(0)
    classifier = Classifier("resnet18", 20, 16).eval()
    torch.manual_seed(1)
    boundary = EdgeNet("resnet18", 16, inference_size=CROP)
    with torch.no_grad():
        for parameter in boundary.head_parameters():
            parameter.copy_(torch.randn_like(parameter) * 0.5)
    return classifier, boundary.eval()


@pytest.mark.parametrize("size, class_ids", [((48, 64), [3, 15]), ((61, 40), [8]), ((56, 56), [2, 7, 12])])
def test_the_seed_chain_is_irns(networks, size, class_ids):
    classifier, boundary = networks
    image = smooth_image(np.random.default_rng(sum(size)), size)
    settings = {**DEFAULT_SETTINGS, "scales": SCALES}

    cams, grid_cams = image_and_grid_cams(classifier, image, class_ids, settings, "cpu")
    high_res, strided = irn.make_cam(classifier, image, class_ids, SCALES)
    np.testing.assert_allclose(cams.astype(np.float32), high_res, rtol=0, atol=2.5e-4)
    np.testing.assert_allclose(grid_cams.astype(np.float32), strided, rtol=0, atol=2.5e-4)

    confident = pseudo_mask(image, cams, class_ids, 0.30, 0.05, IRN_CRF)
    assert (confident == irn.ir_label(image, high_res, class_ids)).mean() >= 0.995

    edges = partial(edge_map, boundary, device="cpu")
    torch.testing.assert_close(edges(image), irn.edge_displacement(boundary, image, CROP), rtol=0, atol=2e-5)

    walked = walk_label(image, cams, class_ids, edges, IRN_WALK, "cpu", grid_cams=grid_cams)
    edge = irn.edge_displacement(boundary, image, CROP)
    rw = irn.propagate_to_edge(edge_affinities, torch.from_numpy(strided), edge, 5, 10, IRN_WALK["exp_times"])
    reference = irn.sem_seg_label(rw, class_ids, size, IRN_WALK["bg_threshold"])
    assert walked.shape == reference.shape == size
    assert (walked == reference).mean() >= 0.995
    assert len(np.unique(reference)) > 1  # labels with structure, not one class everywhere
