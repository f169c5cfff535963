"""The random_walk step's cost per 500x375 image, and its peak memory, against IRN's dense walk.

    PYTHONPATH=src .venv/bin/python benchmarks/random_walk.py [--repeats 3] [--threads 1 2] [--device cpu]

Settings: IRN's (config/voc2012.yaml: a ResNet-50 boundary network at output stride 16, each image at its
own size, radius 5, beta 10, exp_times 8) and the demo's (config/config.yaml: EfficientNet-Lite0, long side
128), both read from the files, so the figures follow the configs. Randomly initialised networks and a
random image with 2 image-level classes: the cost does not depend on the weights (the walk always runs
2^exp_times steps). For each thread count it prints the medians of --repeats runs of

  boundary: the boundary map (network forwards of the image and its flip);
  walk: the transition matrix and the 2^exp_times sparse steps;
  image: the whole per-image call as the rule runs it (wsss.seeds.random_walk.walk_label).

Peak memory: each setting runs once more in a fresh process, which reports the most resident memory one
image's call held above what the process held before it (sampled every millisecond); on CUDA, the peak of
torch.cuda.max_memory_allocated. IRN's dense transition matrix for the same grid is given for comparison:
N x N float32 for N stride-4 cells, twice (IRN squares it in place of a copy).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from wsss.nets.hardware import for_inference
from wsss.nets.transforms import long_side_size
from wsss.seeds.random_walk import random_walk, to_grid, walk_label
from wsss.training.irn import EdgeNet, edge_map

ROOT = Path(__file__).resolve().parents[1]
HEIGHT, WIDTH = 375, 500
CLASS_IDS = [3, 15]


def settings(name: str) -> tuple[dict, dict]:
    """(irn, random_walk) sections of the demo ("demo") or of the VOC config layered on it ("voc")."""
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    if name == "voc":
        voc = yaml.safe_load((ROOT / "config" / "voc2012.yaml").read_text())
        for section in ("irn", "random_walk"):
            config[section].update(voc.get(section, {}))
    return config["irn"], config["random_walk"]


def inputs(seed: int = 0):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    cams = rng.random((len(CLASS_IDS), HEIGHT, WIDTH)).astype(np.float16)
    return image, cams


def model_for(irn: dict, device) -> EdgeNet:
    torch.manual_seed(0)
    return for_inference(EdgeNet(irn["backbone"], irn["output_stride"]), device)


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def time_setting(name: str, device, repeats: int) -> dict:
    irn, walk = settings(name)
    model = model_for(irn, device)
    image, cams = inputs()

    def edges(img, long_side):
        return edge_map(model, img, device, long_side)

    size = long_side_size(HEIGHT, WIDTH, walk["long_side"])
    edge = edges(image, walk["long_side"]).to(device)
    grid_cams = to_grid(torch.from_numpy(cams).to(device), size, tuple(edge.shape))
    parts = {
        "boundary": lambda: edges(image, walk["long_side"]),
        "walk": lambda: random_walk(grid_cams, edge, walk["radius"], walk["beta"], walk["exp_times"]),
        "image": lambda: walk_label(image, cams, CLASS_IDS, edges, walk, device),
    }
    for part in parts.values():  # warm-up
        part()
    times = {key: [] for key in parts}
    for _ in range(repeats):  # interleaved, so a change of load touches every part alike
        for key, part in parts.items():
            times[key].append(timed(part, device))
    return {"grid": tuple(edge.shape), **{key: float(np.median(values)) for key, values in times.items()}}


def resident_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def peak_memory(name: str, device) -> dict:
    """One image's call in this (fresh) process: the most resident memory above what it held before the
    call (sampled every millisecond: ru_maxrss only keeps the process's high-water mark, which loading
    torch may already have set), and on CUDA the peak of allocated GPU memory."""
    irn, walk = settings(name)
    model = model_for(irn, device)
    image, cams = inputs()

    def edges(img, long_side):
        return edge_map(model, img, device, long_side)

    walk_label(image[:32, :32], cams[:, :32, :32], CLASS_IDS, edges, walk, device)  # load kernels, allocator
    before, peak, done = resident_mib(), [0.0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], resident_mib())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample)
    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    sampler.start()
    walk_label(image, cams, CLASS_IDS, edges, walk, device)
    done.set()
    sampler.join()
    result = {"rss_mib": max(peak[0] - before, 0.0), "rss_total_mib": max(peak[0], before)}
    if torch.device(device).type == "cuda":
        result["cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--settings", nargs="+", default=["voc", "demo"], choices=["voc", "demo"])
    parser.add_argument("--peak-memory-of", choices=["voc", "demo"], help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    torch.use_deterministic_algorithms(True, warn_only=True)  # as wsss.runtime.setup runs every step
    if args.peak_memory_of:
        torch.set_num_threads(args.threads[0])
        print(json.dumps(peak_memory(args.peak_memory_of, args.device)))
        return

    print(
        f"random_walk per {WIDTH}x{HEIGHT} image, {len(CLASS_IDS)} classes, device {args.device}, "
        f"medians of {args.repeats}; torch {torch.__version__}"
    )
    print(f"{'settings':8} {'threads':>7} {'grid':>9} {'boundary s':>10} {'walk s':>8} {'image s':>8} {'images/s':>8}")
    for name in args.settings:
        for threads in args.threads:
            torch.set_num_threads(threads)
            result = time_setting(name, args.device, args.repeats)
            grid = "x".join(map(str, result["grid"]))
            print(
                f"{name:8} {threads:7d} {grid:>9} {result['boundary']:10.3f} {result['walk']:8.3f} "
                f"{result['image']:8.3f} {1 / result['image']:8.2f}"
            )
    print("\npeak memory of one image's call (a fresh process, threads =", args.threads[0], ")")
    for name in args.settings:
        command = [
            sys.executable,
            __file__,
            "--peak-memory-of",
            name,
            "--device",
            args.device,
            "--threads",
            str(args.threads[0]),
        ]
        result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
        _, walk = settings(name)
        height, width = long_side_size(HEIGHT, WIDTH, walk["long_side"])
        cells = -(-height // 4) * -(-width // 4)
        dense = 2 * cells * cells * 4 / 2**20
        extra = f", CUDA peak {result['cuda_mib']:.0f} MiB" if "cuda_mib" in result else ""
        print(
            f"{name:8} +{result['rss_mib']:.0f} MiB resident (process peak {result['rss_total_mib']:.0f} MiB)"
            f"{extra}; IRN's dense matrices for its {cells} cells: {dense:.0f} MiB"
        )


if __name__ == "__main__":
    main()
