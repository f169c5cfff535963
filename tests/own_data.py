"""The README's "Your own data" commands on real photos: a subset of the coco340 development set (COCO JPEGs up to
640 px, read from ../shared) in the three forms a user may have it (a VOC-layout tree, COCO's own annotations, a
folder of photos with a tags CSV written from those annotations), each run as the README types it in its own
project copy (tests/workflow/conftest.py's own_data fixture, once a session; test_readme.py and test_photos.py read
the runs).

Each copy has the tiny settings in config/config.yaml and one epoch per network in config/photos.yaml (QUICK), as
the README's other places have the tiny settings: the commands stay as written, the networks train for seconds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from tests.readme_runner import (
    OWN_COCO,
    OWN_TAGGED,
    OWN_VOC,
    commands_of,
    copy_project,
    run_readme_command,
    tiny_config,
)
from tests.workflow_helpers import REPO, TINY, fake_venv
from wsss.data.voc import IGNORE, VOC_CLASSES

COCO340 = REPO.parent / "shared" / "data" / "coco340-voc"
NUM_TRAIN, NUM_VAL, NUM_NEW = 8, 4, 3
# one epoch per network and one CAM scale pair: the profile's resolutions and CRF stay as they are
QUICK = {
    "classifier": {"epochs": 1},
    "cam": {"scales": [1.0, 2.0]},
    "segmentation": {"epochs": 1},
    "report": {"sample_size": 2, "best": 1, "worst": 1, "val_sample_size": 2},
    "threads": TINY["threads"],
}


@dataclass(frozen=True)
class OwnDataRuns:
    coco340: Path  # the subset, laid out as ../shared/data/coco340-voc (VOC2012/, coco/)
    photos: Path  # the tagged kind's photos (the subset's JPEGs), its tags CSV and its masks (val only)
    tags: Path
    masks: Path
    new_photos: Path  # photos of neither split, for results/segmented
    splits: dict  # split -> image ids
    voc: Path  # the finished projects
    tagged: Path
    coco: Path


def crowd_ids(root: Path, ids) -> list[str]:
    """The images whose masks hold a crowd region (255)."""
    return [i for i in ids if (np.array(Image.open(root / "SegmentationClass" / f"{i}.png")) == IGNORE).any()]


def subset_ids(root: Path, split: str, count: int) -> list[str]:
    """The first count ids of a split, with up to two crowd images among them (255 regions in the masks)."""
    ids = (root / "ImageSets" / "Segmentation" / f"{split}.txt").read_text().split()
    crowd = crowd_ids(root, ids)[:2]
    return sorted(crowd + [i for i in ids if i not in crowd][: count - len(crowd)])


def link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(source)


def coco_subset(source: Path, target: Path, ids: set[str]) -> dict:
    """A COCO instances JSON of the images of ids (file-name stems) and their annotations, written to target;
    returns it."""
    data = json.loads(source.read_text())
    images = [image for image in data["images"] if Path(image["file_name"]).stem in ids]
    kept = {image["id"] for image in images}
    subset = {**data, "images": images, "annotations": [a for a in data["annotations"] if a["image_id"] in kept]}
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(subset))
    return subset


def voc_tags(data: dict) -> dict[str, list[str]]:
    """image id -> the VOC classes of its non-crowd annotations (config/coco-voc.yaml's map), in class order."""
    categories = yaml.safe_load((REPO / "config/coco-voc.yaml").read_text())["dataset"]["categories"]
    names = {c["id"]: categories.get(c["name"]) for c in data["categories"]}
    stems = {image["id"]: Path(image["file_name"]).stem for image in data["images"]}
    tags: dict[str, set[str]] = {stem: set() for stem in stems.values()}
    for annotation in data["annotations"]:
        name = names[annotation["category_id"]]
        if name and not annotation["iscrowd"]:
            tags[stems[annotation["image_id"]]].add(name)
    return {stem: sorted(found, key=VOC_CLASSES.index) for stem, found in tags.items()}


def make_subset(base: Path) -> dict:
    """The subset in the three forms, and new photos: the paths the README's placeholders stand for."""
    voc = COCO340 / "VOC2012"
    splits = {"train": subset_ids(voc, "train", NUM_TRAIN), "val": subset_ids(voc, "val", NUM_VAL)}
    root = base / "coco340-voc"
    rows = ["image,classes,split"]
    for split, ids in splits.items():
        for image_id in ids:
            for folder, suffix in (("JPEGImages", ".jpg"), ("SegmentationClass", ".png")):
                link(voc / folder / f"{image_id}{suffix}", root / "VOC2012" / folder / f"{image_id}{suffix}")
            link(voc / "JPEGImages" / f"{image_id}.jpg", base / "photos" / f"{image_id}.jpg")
            if split == "val":  # the tagged photos have masks of val only: train is not scored
                link(voc / "SegmentationClass" / f"{image_id}.png", base / "masks" / f"{image_id}.png")
        (root / "VOC2012/ImageSets/Segmentation").mkdir(parents=True, exist_ok=True)
        (root / "VOC2012/ImageSets/Segmentation" / f"{split}.txt").write_text("\n".join(ids) + "\n")
        data = coco_subset(
            COCO340 / "coco" / f"instances_{split}.json", root / "coco" / f"instances_{split}.json", set(ids)
        )
        tags = voc_tags(data)
        rows += [f"{image_id},{' '.join(tags[image_id])},{split}" for image_id in ids]
    (base / "tags.csv").write_text("\n".join(rows) + "\n")
    others = (voc / "ImageSets/Segmentation/val.txt").read_text().split()
    for image_id in [i for i in others if i not in splits["val"]][-NUM_NEW:]:
        link(voc / "JPEGImages" / f"{image_id}.jpg", base / "new_photos" / f"{image_id}.jpg")
    return {
        "coco340": root,
        "photos": base / "photos",
        "tags": base / "tags.csv",
        "masks": base / "masks",
        "new_photos": base / "new_photos",
        "splits": splits,
    }


def own_project(root: Path) -> Path:
    """A project copy for the own-data commands: tiny settings, one epoch per network in config/photos.yaml."""
    copy_project(root)
    tiny_config(root)
    photos = yaml.safe_load((root / "config/photos.yaml").read_text())
    for key, value in QUICK.items():
        photos[key] = {**photos.get(key, {}), **value}
    (root / "config/photos.yaml").write_text(yaml.safe_dump(photos, sort_keys=False))
    fake_venv(root)
    return root


def make_own_data_runs(base: Path) -> OwnDataRuns:
    """The subset, and the README's own-data commands of each place run in its project copy, in README order."""
    paths = make_subset(base / "subset")  # not .../data/: readme_runner.substitute refuses a left-over /data/
    places = {
        OWN_VOC: own_project(base / "voc"),
        OWN_TAGGED: own_project(base / "tagged"),
        OWN_COCO: own_project(base / "coco"),
        "coco340": paths["coco340"],
        "my_photos": paths["photos"],
        "my_tags.csv": paths["tags"],
        "my_masks": paths["masks"],
        "new_photos": paths["new_photos"],
    }
    for place in (OWN_VOC, OWN_TAGGED, OWN_COCO):
        for command in commands_of(place):
            run_readme_command(command, places)
    return OwnDataRuns(**paths, voc=places[OWN_VOC], tagged=places[OWN_TAGGED], coco=places[OWN_COCO])
