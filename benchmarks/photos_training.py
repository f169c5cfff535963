"""How config/photos.yaml's segmentation training was chosen, on coco340's train split only (never val).

    .venv/bin/python benchmarks/photos_training.py [--voc-root ../shared/data/coco340-voc/VOC2012]
        [--variants sgd adamw_5e-4 ...] [--fit-images 200] [--held-images N] [--epochs 8] [--seed 0]

A network trained on the ground truth of a fixed --fit-images of the train photos (a seeded shuffle) is scored
on the rest of the train split (held out): the fully-supervised bound's setting, without ever reading val.
Each variant is config/config.yaml + config/photos.yaml's segmentation section with the variant's keys;
printed per variant: mIoU on the held-out train photos, mIoU on as many of its own training photos (whether it
fits them at all), the background and person IoU (the classes every network learns first) and the training
seconds. One run per variant: differences of a few hundredths are within seed noise.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from wsss.data.voc import VOC_CLASSES, VOCTree, read_image
from wsss.nets.backbones import lite0_imagenet_state
from wsss.nets.checkpoints import save_checkpoint
from wsss.pipeline.experiments import deep_merge
from wsss.scoring.evaluate import score_predictor
from wsss.scoring.metrics import mean_iou, per_class_scores
from wsss.training.datasets import TrainingImages
from wsss.training.loop import TrainingJob
from wsss.training.segmentation import load_segmentation, predict, train_segmentation

REPO = Path(__file__).resolve().parents[1]
COCO340 = REPO.parent / "shared/data/coco340-voc/VOC2012"
NUM_CLASSES = len(VOC_CLASSES)
CONFIG_FILES = ("config.yaml", "photos.yaml")
# the photos profile's segmentation section with these keys replaced
VARIANTS = {
    "sgd": {"optimizer": "sgd", "lr": 0.01},
    "adamw_1e-3": {"optimizer": "adamw", "lr": 1e-3},
    "adamw_5e-4": {"optimizer": "adamw", "lr": 5e-4},
    "adamw_2.5e-4": {"optimizer": "adamw", "lr": 2.5e-4},
    # the backbone's BatchNorm statistics kept (batches of 8 crops estimate them poorly) and its stem and
    # stage 1 fixed: no backward pass through the stride-2 and stride-4 layers, so the same time buys more steps
    "frozen_bn": {"optimizer": "adamw", "lr": 2.5e-4, "frozen_bn": True},
    "frozen1": {"optimizer": "adamw", "lr": 2.5e-4, "frozen_bn": True, "frozen_stages": 1},
    "frozen1_16ep": {"optimizer": "adamw", "lr": 2.5e-4, "frozen_bn": True, "frozen_stages": 1, "epochs": 16},
    "frozen2_16ep": {"optimizer": "adamw", "lr": 2.5e-4, "frozen_bn": True, "frozen_stages": 2, "epochs": 16},
    "frozen1_32ep": {"optimizer": "adamw", "lr": 2.5e-4, "frozen_bn": True, "frozen_stages": 1, "epochs": 32},
    "frozen1_5e-4_16ep": {"optimizer": "adamw", "lr": 5e-4, "frozen_bn": True, "frozen_stages": 1, "epochs": 16},
}


def profile_settings() -> dict:
    """config/photos.yaml over config/config.yaml, merged key by key as Snakemake merges config files."""
    sections = [yaml.safe_load((REPO / "config" / name).read_text())["segmentation"] for name in CONFIG_FILES]
    return deep_merge(*sections)


def score(model, tree: VOCTree, image_ids, settings) -> np.ndarray:
    """The confusion matrix of the model's predictions (the predict_segmentation rule's inference)."""
    inference = settings["inference"]

    def prediction(image_id):
        image = read_image(tree.image_path(image_id))
        return predict(model, image, "cpu", settings["long_side"], *(inference[k] for k in ("scales", "flip", "crf")))

    return score_predictor(tree, image_ids, NUM_CLASSES, prediction)["confusion"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voc-root", type=Path, default=COCO340)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--fit-images", type=int, default=200, help="train photos it trains on; the rest score it")
    parser.add_argument("--held-images", type=int, help="score on this many of the others (default: all)")
    parser.add_argument("--epochs", type=int, help="default: the variant's, else the profile's segmentation.epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if not (args.voc_root / "ImageSets/Segmentation/train.txt").is_file():
        sys.exit(
            f"skipped: no VOC-layout tree with a train list at {args.voc_root} (the coco340 set sits in ../shared)"
        )
    torch.set_num_threads(args.threads)
    tree = VOCTree(args.voc_root)
    image_ids = sorted(tree.split_ids("train"))
    random.Random(args.seed).shuffle(image_ids)
    fit_ids, held_ids = image_ids[: args.fit_images], image_ids[args.fit_images :][: args.held_images]
    if not held_ids:
        sys.exit(f"--fit-images {args.fit_images} leaves none of the {len(image_ids)} train photos to score on")
    print(f"{len(fit_ids)} train photos train, {len(held_ids)} other train photos score (val is never read)")
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        weights = work / "lite0.pt"
        save_checkpoint(weights, lite0_imagenet_state())
        for name in args.variants:
            settings = {**profile_settings(), **VARIANTS[name]}
            if args.epochs:
                settings["epochs"] = args.epochs
            started = time.time()
            images = TrainingImages(tree, fit_ids, {i: tree.mask_path(i) for i in fit_ids}, NUM_CLASSES)
            paths = (work / f"{name}.pt", work / f"{name}.parquet", work / f"{name}.checkpoint.pt")
            train_segmentation(images, settings, TrainingJob(*paths, args.seed, "cpu", weights), desc=name)
            seconds = time.time() - started
            model = load_segmentation(work / f"{name}.pt")
            held = score(model, tree, held_ids, settings)
            own = score(model, tree, fit_ids[: len(held_ids)], settings)
            iou = per_class_scores(held)["iou"]
            person = VOC_CLASSES.index("person")
            print(
                f"{name:>14}: held-out train mIoU {mean_iou(held):.3f}, on its own training photos "
                f"{mean_iou(own):.3f} (background {iou[0]:.2f}, person {iou[person]:.2f}), trained in {seconds:.0f} s"
            )


if __name__ == "__main__":
    main()
