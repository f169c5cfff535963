"""CLIP-ES on CPU: seconds per photo and peak memory at VOC photo sizes, random weights (figures, not a test).

    .venv/bin/python benchmarks/clip_es.py [--repeats 3] [--classes 1 2 3] [--threads 2]

Open_clip's full-size ViT-B/16 (image and text towers, randomly initialised: the cost does not depend on the
weights) makes CLIP-ES's maps (wsss.seeds.clip_es.image_maps: one forward, one backward through the last block per
class, CAA) of a random 500x375 image (VOC's most common size, a 32x24 patch grid) and of a 375x500 one, with 1..3
image-level classes, then CLIP-ES's labels (the dense CRF over the maps). Prints the median seconds per photo and
the process's peak resident memory (ru_maxrss), which includes the model (~600 MB in float32).
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from wsss.nets.clip import clip_model
from wsss.seeds.clip_es import image_maps, text_features
from wsss.seeds.masks import clip_es_label

BACKGROUND = ["ground", "land", "grass", "tree", "building", "wall", "sky", "lake", "water", "river", "sea",
              "railway", "railroad", "keyboard", "helmet", "cloud", "house", "mountain", "ocean", "road", "rock",
              "street", "valley", "bridge", "sign"]  # fmt: skip
SETTINGS = {
    "prompt": "a clean origami {}.",
    "background": BACKGROUND,
    "box_threshold": 0.4,
    "caa": {"layers": 8, "sinkhorn_rounds": 3, "power": 2},
}
CRF = {"iterations": 10, "gaussian": {"sxy": 1, "compat": 3}, "bilateral": {"sxy": 67, "srgb": 3, "compat": 4}}


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--classes", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = clip_model()
    fg = text_features(model, [f"class {k}" for k in range(20)], SETTINGS["prompt"])
    bg = text_features(model, BACKGROUND, SETTINGS["prompt"])
    print(f"model + text features: peak {peak_mb():.0f} MB; threads {args.threads}")
    rng = np.random.default_rng(0)
    for height, width in ((375, 500), (500, 375)):
        image = rng.integers(0, 256, (height, width, 3)).astype(np.uint8)
        for count in args.classes:
            class_ids = list(range(1, count + 1))
            maps_s, label_s = [], []
            for _ in range(args.repeats):
                start = time.perf_counter()
                maps = image_maps(model, image, class_ids, fg, bg, SETTINGS)
                middle = time.perf_counter()
                clip_es_label(image, maps.cams.astype(np.float16), class_ids, CRF, 0.95)
                maps_s.append(middle - start)
                label_s.append(time.perf_counter() - middle)
            print(
                f"{width}x{height}, {count} class(es): maps {np.median(maps_s):.2f} s, labels (CRF) "
                f"{np.median(label_s):.2f} s per photo; peak {peak_mb():.0f} MB"
            )


if __name__ == "__main__":
    main()
