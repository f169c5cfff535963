"""What overlap-tile inference (segmentation.inference.tile) costs: seconds per 640x480 photo on CPU, whole image
against tiles, for the default config's network (segmentation.arch, .backbone, .output_stride of config/config.yaml).

    .venv/bin/python benchmarks/tiles.py [--repeats 5] [--threads 2] [--device cpu]

The photo goes through predict (wsss.training.segmentation) with the default config's inference (scale 1 + flip):
at the default long side 128 (128x96: two 96 px tiles, or one 256 px tile, which is the whole-image path) and at
the photo's own size (long_side null). Tiles: the demo's training crop (96 px) overlapping by a third, and 256 px
overlapping by 64. Random weights: the time does not depend on them. Medians over --repeats, timed round-robin
(benchmarks/timing.py).

Measured here (2 shared cores, load average ~7, 2 threads, medians of 3; only the ratios mean much): whole image
7.4 s at 640 px, tiles 256/64 24.0 s (9 passes), tiles 96/32 80.1 s (70 passes); at long side 128 all under 3.3 s.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import yaml
from timing import interleaved_medians  # benchmarks/timing.py

from wsss.nets.hardware import for_inference
from wsss.nets.models import segmentation_model
from wsss.nets.transforms import long_side_size
from wsss.training.segmentation import predict, tile_starts

TILES = {"whole image": None, "tiles 96/32": {"size": 96, "overlap": 32}, "tiles 256/64": {"size": 256, "overlap": 64}}
LONG_SIDES = {"long side 128": 128, "own size (640)": None}


def tile_count(height: int, width: int, tile: dict | None) -> int:
    """How many tiles predict runs the network on for an image of that size (1: the whole image)."""
    if tile is None or max(height, width) <= tile["size"]:
        return 1
    stride = tile["size"] - tile["overlap"]
    rows = tile_starts(height, min(tile["size"], height), stride)
    columns = tile_starts(width, min(tile["size"], width), stride)
    return len(rows) * len(columns)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = yaml.safe_load(open("config/config.yaml"))["segmentation"]
    torch.manual_seed(0)
    model = segmentation_model(settings["arch"], settings["backbone"], 21, settings["output_stride"])
    model = for_inference(model, args.device)
    image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    inference = settings["inference"]

    def run(long_side, tile):
        return lambda: predict(model, image, args.device, long_side, inference["scales"], inference["flip"], tile=tile)

    cases = {(s, t): run(side, tile) for s, side in LONG_SIDES.items() for t, tile in TILES.items()}
    seconds = interleaved_medians(cases, args.repeats)
    arch = f"{settings['arch']} on {settings['backbone']}"
    print(f"{arch}, {args.device}, {args.threads} threads, medians of {args.repeats}: seconds per 640x480 photo")
    print(f"{'inference':<16}" + "".join(f"{s:>22}" for s in LONG_SIDES))
    for t, tile in TILES.items():
        row = "".join(
            f"{seconds[s, t]:>14.3f} s ({tile_count(*long_side_size(480, 640, side), tile):>2}t)"
            for s, side in LONG_SIDES.items()
        )
        print(f"{t:<16}{row}")
    print("(Nt): network passes per photo, each with its flip (scale 1 + flip, the default inference).")


if __name__ == "__main__":
    main()
