"""COCO scale: how long the coco kind takes to read a COCO-2014-train-sized instances JSON, in how much memory,
and how fast it rasterises masks.

    .venv/bin/python benchmarks/coco_scale.py [--images 82783] [--sample 2000] [--vertices 24]

1. Writes a synthetic instances JSON of COCO 2014 train's size into a temporary folder: 82,783 images of
   COCO's sizes (640x480, 640x427, ...), ~605,000 annotations of COCO's 80 categories (~7.3 per image, 0.85 %
   of the images with none), polygons of --vertices x, y pairs on average (COCO: about 20-25) in 1.1 parts,
   1 % crowd regions as uncompressed RLE, written compactly as COCO's own files are (~450 MB: the size is
   printed). --images N scales it all down proportionally, for a quick check.
2. In a fresh process each (figures from resource.getrusage's ru_maxrss):
   a. json.load of the file as it is, for reference;
   b. wsss.data.coco.read_coco with categories "all": read, checked, grouped by image (wall time, peak RSS);
   c. the masks of --sample images with a class, rasterised (wsss.data.coco.rasterise) and then rasterised
      and written as palette PNGs (write_masks): masks/s and the time projected for all images with a class.
3. Planning config/coco2014.yaml (layered on config/voc2012.yaml, as the README types it) with that JSON as both
   splits' annotations: `snakemake -n results/miou.parquet`, wall time over --repeats runs. Planning reads no
   JSON (the DAG grows with shards, not images), so it should not depend on --images.
Prints figures only; the temporary folder is removed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scale import time_dry_runs  # benchmarks/scale.py: this folder is the script's first import path

COCO_TRAIN2014_IMAGES, COCO_TRAIN2014_ANNOTATIONS = 82_783, 604_907
NO_ANNOTATION_SHARE = 702 / 82_783  # train2014's images without an annotation
CROWD_SHARE, EXTRA_PARTS_SHARE = 0.01, 0.08
IMAGE_SIZES = [(640, 480), (480, 640), (640, 427), (427, 640), (500, 375), (640, 360), (612, 612)]
CATEGORY_IDS = [i for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)]
CATEGORY_NAMES = (
    "person bicycle car motorcycle airplane bus train truck boat traffic_light fire_hydrant stop_sign "
    "parking_meter bench bird cat dog horse sheep cow elephant bear zebra giraffe backpack umbrella handbag tie "
    "suitcase frisbee skis snowboard sports_ball kite baseball_bat baseball_glove skateboard surfboard "
    "tennis_racket bottle wine_glass cup fork knife spoon bowl banana apple sandwich orange broccoli carrot "
    "hot_dog pizza donut cake chair couch potted_plant bed dining_table toilet tv laptop mouse remote keyboard "
    "cell_phone microwave oven toaster sink refrigerator book clock vase scissors teddy_bear hair_drier toothbrush"
).replace("_", " ")
CATEGORIES = [{"supercategory": "thing", "id": i, "name": n} for i, n in zip(CATEGORY_IDS, CATEGORY_NAMES.split())]
COMPACT = {"separators": (",", ":")}

JSON_LOAD = r"""
import json, resource, sys, time
start = time.perf_counter()
with open(sys.argv[1]) as handle:
    data = json.load(handle)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mb": peak, "annotations": len(data["annotations"])}))
"""

READ = r"""
import json, resource, sys, time
from wsss.data.coco import read_coco
start = time.perf_counter()
coco = read_coco(sys.argv[1], "all", json.loads(sys.argv[2]))
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
kept = sum(map(len, coco.annotations_of.values()))
print(json.dumps({"seconds": seconds, "peak_mb": peak, "images": len(coco.images), "annotations": kept}))
"""

RASTERISE = r"""
import json, logging, random, sys, time
from pathlib import Path
from wsss.data.coco import rasterise, read_coco, split_images, write_masks
path, classes, sample, masks_dir = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
coco = read_coco(path, "all", classes)
indexed, coco_id_of = split_images(coco, Path("images"), masks_dir)
chosen = dict(random.Random(0).sample(sorted(coco_id_of.items()), min(sample, len(coco_id_of))))
start = time.perf_counter()
for coco_id in chosen.values():
    record = coco.images[coco_id]
    rasterise(coco.annotations_of[coco_id], record.height, record.width, coco.class_of_category)
rasterise_s = time.perf_counter() - start
start = time.perf_counter()
write_masks(coco, chosen, masks_dir, "sample")
write_s = time.perf_counter() - start
print(json.dumps({"rasterise_s": rasterise_s, "write_s": write_s, "masks": len(chosen), "with_class": len(indexed)}))
"""


def polygon(rng, centre, radius: float, pairs: int, width: int, height: int) -> list[float]:
    """A star-shaped polygon of pairs x, y points around centre, inside the image, 2 decimals as in COCO."""
    angles = np.sort(rng.uniform(0, 2 * math.pi, pairs))
    radii = radius * rng.uniform(0.6, 1.0, pairs)
    xs = np.clip(centre[0] + radii * np.cos(angles), 0, width - 1)
    ys = np.clip(centre[1] + radii * np.sin(angles), 0, height - 1)
    return np.round(np.column_stack([xs, ys]).ravel(), 2).tolist()


def shoelace(points: list[float]) -> float:
    xs, ys = np.asarray(points[0::2]), np.asarray(points[1::2])
    return float(abs(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1))) / 2)


def crowd_rle(rng, width: int, height: int) -> tuple[dict, int]:
    """An ellipse covering a good part of the image (a crowd of people, a shelf of books) as uncompressed RLE:
    run lengths in column-major order, starting with zeros."""
    rows, columns = np.ogrid[:height, :width]
    cx, cy = rng.uniform(0.2, 0.8) * width, rng.uniform(0.2, 0.8) * height
    rx, ry = rng.uniform(0.1, 0.4) * width, rng.uniform(0.1, 0.4) * height
    region = ((columns - cx) / rx) ** 2 + ((rows - cy) / ry) ** 2 <= 1
    flat = region.flatten(order="F").astype(np.int8)
    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    return {"size": [height, width], "counts": np.diff(np.concatenate([[0], changes])).tolist()}, int(region.sum())


def annotation(rng, annotation_id: int, image: dict, mean_pairs: float) -> dict:
    width, height = image["width"], image["height"]
    category = int(rng.choice(CATEGORY_IDS)) if rng.random() > 0.3 else 1  # person: ~30 % as in COCO
    record = {"id": annotation_id, "image_id": image["id"], "category_id": category, "iscrowd": 0}
    if rng.random() < CROWD_SHARE:
        record["segmentation"], area = crowd_rle(rng, width, height)
        record.update(iscrowd=1, area=area, bbox=[0.0, 0.0, float(width), float(height)])
        return record
    radius = math.exp(rng.uniform(math.log(4), math.log(0.4 * min(width, height))))
    parts = 1 + (rng.integers(1, 4) if rng.random() < EXTRA_PARTS_SHARE else 0)
    polygons = []
    for _ in range(parts):
        pairs = max(3, int(rng.lognormal(math.log(mean_pairs) - 0.28, 0.75)))
        centre = (rng.uniform(0, width), rng.uniform(0, height))
        polygons.append(polygon(rng, centre, radius / parts, pairs, width, height))
    xs = [x for points in polygons for x in points[0::2]]
    ys = [y for points in polygons for y in points[1::2]]
    area = round(sum(map(shoelace, polygons)), 4)
    bbox = [min(xs), min(ys), round(max(xs) - min(xs), 2), round(max(ys) - min(ys), 2)]
    record.update(segmentation=polygons, area=area, bbox=bbox)
    return record


def write_instances(path: Path, num_images: int, mean_pairs: float, seed: int = 0) -> int:
    """The synthetic instances JSON, written piece by piece (it is never all in memory); its annotations."""
    rng = np.random.default_rng(seed)
    images = []
    for index in range(num_images):
        width, height = IMAGE_SIZES[rng.integers(len(IMAGE_SIZES))]
        name = f"COCO_train2014_{index + 1:012d}.jpg"
        images.append({"license": 1, "file_name": name, "height": height, "width": width, "id": index + 1})
    num_annotations = round(COCO_TRAIN2014_ANNOTATIONS * num_images / COCO_TRAIN2014_IMAGES)
    annotated = rng.random(num_images) >= NO_ANNOTATION_SHARE
    owners = np.sort(rng.choice(np.flatnonzero(annotated), num_annotations))
    with open(path, "w") as handle:
        handle.write('{"info":{"description":"synthetic, COCO 2014 train sized"},"licenses":[],"images":[')
        handle.write(",".join(json.dumps(image, **COMPACT) for image in images))
        handle.write('],"annotations":[')
        for annotation_id, owner in enumerate(owners, start=1):
            handle.write("," if annotation_id > 1 else "")
            handle.write(json.dumps(annotation(rng, annotation_id, images[owner], mean_pairs), **COMPACT))
        handle.write('],"categories":' + json.dumps(CATEGORIES, **COMPACT) + "}")
    return num_annotations


def measure(script: str, *arguments) -> dict:
    done = subprocess.run([sys.executable, "-c", script, *map(str, arguments)], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"the measurement failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def planning_seconds(work: Path, annotations: Path, repeats: int) -> tuple[list[float], str]:
    """Wall times of `snakemake -n` for config/coco2014.yaml with the JSON as both splits' annotations, and its
    job table."""
    (work / "images").mkdir(exist_ok=True)
    (work / "project").mkdir()
    paths = {"images": str(work / "images"), "annotations": {"train": str(annotations), "val": str(annotations)}}
    configfiles = ["config/voc2012.yaml", "config/coco2014.yaml"]
    times, out = time_dry_runs(work / "project", configfiles, json.dumps({"dataset": paths}), repeats)  # JSON is YAML
    return times, out[out.find("Job stats:") :].split("\n\n")[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=COCO_TRAIN2014_IMAGES, help="images in the synthetic JSON")
    parser.add_argument("--sample", type=int, default=2000, help="masks rasterised and written")
    parser.add_argument("--vertices", type=float, default=24.0, help="mean x, y pairs per polygon")
    parser.add_argument("--repeats", type=int, default=3, help="dry runs of config/coco2014.yaml timed")
    args = parser.parse_args()
    classes = json.dumps(["background"] + [category["name"] for category in CATEGORIES])
    with tempfile.TemporaryDirectory(prefix="coco_scale_") as work:
        path = Path(work) / "instances_train.json"
        start = time.perf_counter()
        num_annotations = write_instances(path, args.images, args.vertices)
        print(
            f"synthetic JSON: {args.images:,} images, {num_annotations:,} annotations, "
            f"{os.path.getsize(path) / 1e6:,.0f} MB, written in {time.perf_counter() - start:.0f} s"
        )
        plain = measure(JSON_LOAD, path)
        print(f"json.load alone:          {plain['seconds']:6.1f} s, peak RSS {plain['peak_mb']:7,.0f} MB")
        read = measure(READ, path, classes)
        print(
            f"read_coco (read, check, group): {read['seconds']:6.1f} s, peak RSS {read['peak_mb']:7,.0f} MB "
            f"({read['images']:,} images, {read['annotations']:,} annotations kept)"
        )
        masks = measure(RASTERISE, path, classes, args.sample, Path(work) / "masks")
        for what, seconds in (("rasterise", masks["rasterise_s"]), ("rasterise + write PNG", masks["write_s"])):
            rate = masks["masks"] / seconds
            print(
                f"{what:22s} {masks['masks']:,} masks in {seconds:.1f} s: {rate:,.0f} masks/s, "
                f"all {masks['with_class']:,} images with a class: {masks['with_class'] / rate / 60:.1f} min"
            )
        times, table = planning_seconds(Path(work), path, args.repeats)
        print(
            f"planning config/coco2014.yaml (snakemake -n): median {statistics.median(times):.2f} s over "
            f"{len(times)} runs ({', '.join(f'{t:.2f}' for t in times)})\n{table}"
        )


if __name__ == "__main__":
    main()
