"""The CAM step's speed on CPU at VOC size: at the default config's long side and at full size, and against
its floor, the network forwards IRN's make_cam also runs.

    PYTHONPATH=src .venv/bin/python benchmarks/cam_speed.py [--repeats 5] [--threads 1 2] [--profile] [--no-irn]

1. The default config (config/config.yaml: classifier.arch and output_stride, cam.scales, the number of
   classes; read from the file, so it follows the defaults): seconds per 500x375 image of the cams step's
   per-image work (read the JPEG, image_cams with 2 image-level classes, save the float16 .npy), with
   cam.long_side as configured (the classifier's training resolution) and with long_side null (the image's
   own size: up to 1000x750 px inputs at scale 2.0). A randomly initialised classifier: speed does not
   depend on the weights.
2. IRN's setting (skipped with --no-irn): a randomly initialised ResNet-50 classifier at output stride 16
   (IRN's: strides 2, 2, 2, 1, no dilation; 20 foreground classes) and a random 500x375 RGB image with 2
   image-level classes, scales 1.0, 0.5, 1.5, 2.0 + flips at full size (IRN's make_cam settings). For each
   thread count (torch.set_num_threads) it prints images/s of

  (a) forwards: the 4 network forwards of an image and its flip (model.cam on ready-made input tensors),
      the work IRN's make_cam shares with this project;
  (b) image_cams: the whole per-image call (resizing, normalising, forwards, upsampling, normalisation,
      float16), as the cams rule runs it,

and the overhead of (b) over (a) in percent, with torch.use_deterministic_algorithms on (as
wsss.runtime.setup runs every step) and off. Medians of --repeats interleaved runs: on a shared machine
the figures move with the load, the ratio less. --profile prints cProfile's top functions of image_cams.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image
from timing import interleaved_medians  # benchmarks/timing.py

from wsss.data.voc import read_image, save_npy
from wsss.nets.models import Classifier
from wsss.nets.transforms import resize_image, to_tensor
from wsss.pipeline.registry import cam_settings
from wsss.seeds.cam import DEFAULT_SETTINGS, image_cams

CONFIG = Path(__file__).resolve().parents[1] / "config" / "config.yaml"

SCALES = [1.0, 0.5, 1.5, 2.0]
HEIGHT, WIDTH = 375, 500
CLASS_IDS = [3, 15]


def scaled_pairs(image: np.ndarray) -> list[torch.Tensor]:
    """Each scale's normalised image and its flip, (2, 3, h, w), made before timing (IRN's data loader)."""
    pairs = []
    for scale in SCALES:
        scaled = (
            image if scale == 1 else resize_image(image, round(HEIGHT * scale), round(WIDTH * scale), Image.BICUBIC)
        )
        x = to_tensor(scaled)
        pairs.append(torch.stack([x, x.flip(-1)]))
    return pairs


def default_config_step(repeats: int, threads: list[int]) -> None:
    """Part 1: seconds per image of the cams step's per-image work at the default config, at its
    cam.long_side and at full size."""
    config = yaml.safe_load(CONFIG.read_text())
    classifier, cam = config["classifier"], config["cam"]
    torch.manual_seed(0)
    model = Classifier(classifier["backbone"], len(config["classes"]) - 1, classifier["output_stride"]).eval()
    settings = cam_settings(config)  # what the cams rule passes
    image = np.random.default_rng(0).integers(0, 256, size=(HEIGHT, WIDTH, 3)).astype(np.uint8)
    variants = {f"long_side {cam['long_side']}": cam["long_side"], "long_side null (full size)": None}
    with tempfile.TemporaryDirectory() as tmp:
        jpeg, out = Path(tmp) / "image.jpg", Path(tmp) / "image.npy"
        Image.fromarray(image).save(jpeg, quality=90)

        def step(long_side):
            # what compute_cams does per image (no erasing): read, CAMs, save
            save_npy(out, image_cams(model, read_image(jpeg), CLASS_IDS, {**settings, "long_side": long_side}, "cpu"))

        print(
            f"cams step at the default config ({CONFIG.name}): {classifier['arch']} OS{classifier['output_stride']}, "
            f"method {settings['method']}, scales {settings['scales']} + flip, {WIDTH}x{HEIGHT} JPEG, "
            f"{len(CLASS_IDS)} of {len(config['classes']) - 1} classes; median of {repeats}; torch {torch.__version__}"
        )
        print(f"{'threads':>7} " + " ".join(f"{name + ' s/img':>32}" for name in variants) + f" {'ratio':>7}")
        torch.use_deterministic_algorithms(True, warn_only=True)  # as wsss.runtime.setup runs every step
        for count in threads:
            torch.set_num_threads(count)
            medians = interleaved_medians({name: lambda v=v: step(v) for name, v in variants.items()}, repeats)
            seconds = list(medians.values())
            print(
                f"{count:>7} "
                + " ".join(f"{value:>32.3f}" for value in seconds)
                + f" {seconds[1] / seconds[0]:>6.1f}x",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--no-irn", action="store_true", help="only part 1, the default config")
    args = parser.parse_args()

    default_config_step(args.repeats, args.threads)
    if args.no_irn:
        return
    print()
    torch.manual_seed(0)
    model = Classifier("resnet50", 20, 16).eval()
    image = np.random.default_rng(0).integers(0, 256, size=(HEIGHT, WIDTH, 3)).astype(np.uint8)
    settings = {**DEFAULT_SETTINGS, "scales": SCALES}
    pairs = scaled_pairs(image)

    def forwards():
        with torch.no_grad():
            for pair in pairs:
                cams = model.cam(pair)
                cams[0] + cams[1].flip(-1)

    def whole():
        image_cams(model, image, CLASS_IDS, settings, "cpu")

    print(
        f"ResNet-50 OS16, {WIDTH}x{HEIGHT} image, {len(CLASS_IDS)} of 20 classes, scales {SCALES} + flip; "
        f"median of {args.repeats}; torch {torch.__version__}"
    )
    print(f"{'threads':>7} {'deterministic':>13} {'forwards img/s':>15} {'image_cams img/s':>17} {'overhead':>9}")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for deterministic in (True, False):
            torch.use_deterministic_algorithms(deterministic, warn_only=True)
            medians = interleaved_medians({"forwards": forwards, "whole": whole}, args.repeats)
            overhead = 100 * (medians["whole"] / medians["forwards"] - 1)
            print(
                f"{threads:>7} {str(deterministic):>13} {1 / medians['forwards']:>15.3f} "
                f"{1 / medians['whole']:>17.3f} {overhead:>8.1f}%",
                flush=True,
            )
    if args.profile:
        torch.set_num_threads(args.threads[0])
        torch.use_deterministic_algorithms(True, warn_only=True)
        profiler = cProfile.Profile()
        profiler.runcall(whole)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
