"""config/photos.yaml end to end on real photos: the README's VOC-tree command (one epoch per network) on a 12-image
subset of the coco340 development set (COCO JPEGs up to 640 px, masks with crowd regions at 255), read from
../shared (conftest.py's own_data, tests/own_data.py). Checks the artefacts on real JPEGs, not their quality
(benchmarks/photos.py and the closing notes measure that on the whole set over seeds)."""

import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from tests.workflow_helpers import REPO
from wsss.data.labels import load_labels
from wsss.data.voc import IGNORE, load_npy, read_mask


@pytest.fixture(scope="module")
def photos(own_data):
    """(the VOC-tree run's project, its tree, split -> ids)."""
    return own_data.voc, own_data.coco340 / "VOC2012", own_data.splits


def test_photos_profile_runs_every_stage(photos):
    workdir, _, splits = photos
    summary = pd.read_parquet(workdir / "results/summary.parquet").set_index("stage")
    for stage in ("cam", "crf", "pseudo_mask"):
        assert summary.loc[stage, "num_images"] == len(splits["train"])
    for stage in ("segmentation", "fully_supervised"):
        assert summary.loc[stage, "num_images"] == len(splits["val"])
    assert summary["miou"].between(0, 1).all()
    assert not (workdir / "results/cams/r1").exists()  # one round: no erasing on photos
    # no walk on photos (random_walk.enabled: false): no boundary network, no walk labels, no stage
    assert "random_walk" not in summary.index
    assert not (workdir / "results/irn").exists() and not (workdir / "results/random_walk").exists()


def test_cams_and_labels_have_each_photos_size(photos):
    workdir, tree, splits = photos
    labels = load_labels(workdir / "results/labels/image_labels.parquet")
    cams = {p.stem: p for p in (workdir / "results/cams/r0").glob("shard*/*.npy")}
    masks = {p.stem: p for p in (workdir / "results/pseudo_masks").glob("shard*/*.png")}
    crfs = {p.stem: p for p in (workdir / "results/crf").glob("shard*/*.png")}
    assert sorted(cams) == sorted(masks) == sorted(crfs) == splits["train"]
    for image_id in splits["train"]:
        with Image.open(tree / "JPEGImages" / f"{image_id}.jpg") as jpeg:
            width, height = jpeg.size
        classes = labels[image_id]  # from the mask: every class it holds, ascending
        cam = load_npy(cams[image_id])
        assert cam.dtype == np.float16 and cam.shape == (len(classes), height, width)
        for path in (masks[image_id], crfs[image_id]):
            with Image.open(path) as png:
                assert png.mode == "P" and png.size == (width, height)
                values = set(np.unique(np.array(png)).tolist())
            assert values <= {0, IGNORE, *classes}, (path, values, classes)


def test_crowd_regions_are_not_scored(photos):
    """COCO's crowd regions are 255 in the masks: the val confusion matrix counts every other pixel, once."""
    workdir, tree, splits = photos
    assert any(
        (read_mask(tree / "SegmentationClass" / f"{i}.png", 21) == IGNORE).any()
        for i in splits["val"] + splits["train"]
    )
    scored = sum(int((read_mask(tree / "SegmentationClass" / f"{i}.png", 21) != IGNORE).sum()) for i in splits["val"])
    with np.load(workdir / "results/metrics/fully_supervised.npz", allow_pickle=False) as metrics:
        assert int(metrics["confusion"].sum()) == scored


def test_gallery_panels_are_photo_sized(photos):
    workdir, _, _ = photos
    settings = yaml.safe_load((REPO / "config/photos.yaml").read_text())["report"]
    panel = settings["panel_inches"] * 100
    files = sorted((workdir / "results/report/train_gallery").glob("*/*.png"))
    files += sorted((workdir / "results/report/val_gallery").glob("*.png"))
    assert files
    for path in files:
        with Image.open(path) as png:
            width, _ = png.size
        assert width % round(panel) <= 2 and width <= settings["columns"] * panel + 2, (path, width)


def test_benchmark_reads_the_runs_steps(photos):
    """benchmarks/photos.py (README, "Your own data") on the run: every step's time, memory and images/s."""
    workdir, _, splits = photos
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks/photos.py"), "results"],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=True,
    )
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line and line[0].isalpha()}
    for rule in ("train_classifier", "cams", "crf", "pseudo_masks", "train_segmentation"):
        assert rule in rows, result.stdout
    assert rows["cams"][1] == "2" and int(rows["cams"][5]) == len(splits["train"])  # 2 shard jobs, every image
    assert int(rows["predict_segmentation"][5]) == 2 * len(splits["val"])  # two networks' predictions
    assert re.search(r"== run: wall \d+\.\d min", result.stdout), result.stdout


def test_training_benchmark_scores_held_out_train_photos(photos):
    """benchmarks/photos_training.py (config/README.md: the optimiser's choice) on the subset: one line per
    variant, the network scored on train photos it did not train on."""
    _, tree, splits = photos
    command = [sys.executable, str(REPO / "benchmarks/photos_training.py"), "--voc-root", str(tree)]
    options = ["--fit-images", "6", "--held-images", "2", "--epochs", "1", "--variants", "sgd", "adamw_2.5e-4"]
    result = subprocess.run(command + options, capture_output=True, text=True, check=True)
    assert "6 train photos train, 2 other train photos score" in result.stdout, result.stdout
    lines = re.findall(r"(\S+): held-out train mIoU (\d\.\d+), on its own training photos (\d\.\d+)", result.stdout)
    assert [name for name, *_ in lines] == ["sgd", "adamw_2.5e-4"], result.stdout
    assert all(0 <= float(held) <= 1 and 0 <= float(own) <= 1 for _, held, own in lines)
    leaves_none = subprocess.run(command + ["--fit-images", str(len(splits["train"]))], capture_output=True, text=True)
    assert (
        leaves_none.returncode != 0 and f"leaves none of the {len(splits['train'])} train photos" in leaves_none.stderr
    )
