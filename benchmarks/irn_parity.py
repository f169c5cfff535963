"""How far the project's walk inputs are from IRN's, on real photos, with fixed random weights.

    .venv/bin/python benchmarks/irn_parity.py [--photos 5] [--voc-root ../shared/data/coco340-voc/VOC2012]

For the first --photos train photos of a VOC-layout tree (resized to a 480 px long side, VOC's size, so
that IRN's 512 x 512 padding holds them), a random ResNet-50 classifier and boundary network (seed 0; the
boundary head drawn N(0, 0.5)) give the walk's inputs twice, and IRN's written-out chain
(tests/irn_reference.py: strided CAMs, EdgeDisplacement's padded boundary map) gives them once:
- "before": the grid CAMs average-pooled from the image-resolution CAMs (seeds.random_walk.to_grid) and the
  boundary map of the unpadded image (what the project did up to this benchmark's commit);
- "after": the CAM step's stride-4 CAMs and the boundary map padded to 512 (what it does now).
Printed per photo: the largest and mean difference of the grid CAMs and of the boundary maps from IRN's,
and the fraction of walk-label pixels equal to IRN's (radius 5, beta 10, 2^8 steps, background 0.25; the
walk itself is the project's sparse one, pinned against IRN's dense one by tests/unit/test_random_walk.py).
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/irn_reference.py
from tests import irn_reference as irn  # noqa: E402
from wsss.data.voc import IGNORE, VOC_CLASSES, read_image, read_mask  # noqa: E402
from wsss.nets.models import Classifier  # noqa: E402
from wsss.nets.transforms import resize_long_side  # noqa: E402
from wsss.seeds.cam import DEFAULT_SETTINGS, image_and_grid_cams  # noqa: E402
from wsss.seeds.random_walk import random_walk, to_grid, walk_label  # noqa: E402
from wsss.training.irn import EdgeNet, edge_map  # noqa: E402

WALK = {"long_side": None, "radius": 5, "beta": 10, "exp_times": 8, "bg_threshold": 0.25}
SCALES = [1.0, 0.5, 1.5, 2.0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=5)
    parser.add_argument("--voc-root", default="../shared/data/coco340-voc/VOC2012")
    args = parser.parse_args()
    if not Path(args.voc_root).is_dir():
        sys.exit(f"no VOC-layout tree at {args.voc_root}: pass --voc-root")
    torch.set_num_threads(2)
    root = Path(args.voc_root)
    ids = sorted(p.stem for p in (root / "SegmentationClass").glob("*.png"))[: args.photos]
    torch.manual_seed(0)
    classifier = Classifier("resnet50", len(VOC_CLASSES) - 1, 16).eval()
    boundary = EdgeNet("resnet50", 16, inference_size=512)
    with torch.no_grad():
        for parameter in boundary.head_parameters():
            parameter.copy_(torch.randn_like(parameter) * 0.5)
    boundary.eval()
    unpadded = EdgeNet("resnet50", 16)
    unpadded.load_state_dict(boundary.state_dict())
    unpadded.eval()
    print(f"{'photo':14s} {'grid CAM max/mean':>24s} {'edge max/mean':>22s} {'walk labels = IRN':>20s}")
    for image_id in ids:
        image = resize_long_side(read_image(root / "JPEGImages" / f"{image_id}.jpg"), 480)
        mask = read_mask(root / "SegmentationClass" / f"{image_id}.png", len(VOC_CLASSES))
        class_ids = sorted(int(c) for c in np.unique(mask) if c not in (0, IGNORE))  # image-level labels
        settings = {**DEFAULT_SETTINGS, "scales": SCALES}
        cams, grid_cams = image_and_grid_cams(classifier, image, class_ids, settings, "cpu")
        _, strided = irn.make_cam(classifier, image, class_ids, SCALES)
        edge = irn.edge_displacement(boundary, image, 512)
        walked = random_walk(torch.from_numpy(strided), edge, 5, 10, 8)
        if float(walked.max()) == 0:  # IRN divides by the walk's maximum: 0 / 0, NaN labels; nothing to compare
            print(f"{image_id}: the random classifier's CAMs are zero for its classes {class_ids}; left out")
            continue
        reference = irn.sem_seg_label(walked, class_ids, image.shape[:2], 0.25)
        size = image.shape[:2]
        before_grid = to_grid(torch.from_numpy(cams), size, tuple(edge.shape)).numpy()
        row = [image_id]
        for name, grid, model in (("before", before_grid, unpadded), ("after", grid_cams, boundary)):
            edges = partial(edge_map, model, device="cpu")
            labels = walk_label(
                image, cams, class_ids, edges, WALK, "cpu", grid_cams=None if name == "before" else grid
            )
            cam_gap = np.abs(grid.astype(np.float32) - strided)
            edge_gap = (edges(image) - edge).abs()
            row.append(
                f"{name}: {cam_gap.max():.3f}/{cam_gap.mean():.3f} {float(edge_gap.max()):.3f}/"
                f"{float(edge_gap.mean()):.3f} {(labels == reference).mean():.4f}"
            )
        print(" | ".join(row), f"| IRN's labels: {len(np.unique(reference))} classes")


if __name__ == "__main__":
    main()
