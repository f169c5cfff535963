"""VOC scale: how long Snakemake takes to plan the VOC experiment, and how big the per-image CAM files are.

    .venv/bin/python benchmarks/scale.py [--rounds 3] [--repeats 5]

1. Builds a VOC-sized tree of ids (VOC train 1,464 / val 1,449 and SBD train 8,498 / val 2,857 lists,
   giving train_aug = 10,582; empty image files), copies the workflow next to it, and times
   `snakemake -n results/miou.parquet` with config/voc2012.yaml, the tree as voc_root / sbd_root and
   the given number of erasing rounds. Target: <= 3 s.
2. Writes one CAM file the way the workflow does (float16, one channel per image-level class) and IRN's
   equivalent (an np.save'd dict with the stride-4 "cam" and full-size "high_res", float32) for a
   500x375 VOC image with 1-3 classes, and compares their sizes on disk. Target: <= 0.5x.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from wsss.data.voc import save_npy
from wsss.data.voc_sbd import train_aug_ids

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
# VOC 2012 segmentation lists and SBD's release lists: sizes and overlaps as in the real data.
VOC_TRAIN, VOC_VAL, SBD_TRAIN, SBD_VAL = 1464, 1449, 8498, 2857


def voc_sized_tree(root: Path) -> tuple[Path, Path, int]:
    """VOC + SBD id lists whose train_aug has the real size (10,582); empty files stand in for images."""
    ids = [f"2007_{i:06d}" for i in range(17125)]
    voc_train, voc_val = ids[:VOC_TRAIN], ids[VOC_TRAIN : VOC_TRAIN + VOC_VAL]
    # Overlaps chosen so train_aug has its real size: |SBD ∩ VOC train| + |SBD ∩ VOC val| = 2,237.
    rest = ids[VOC_TRAIN + VOC_VAL :]
    sbd = voc_train[:1130] + voc_val[:1107] + rest[: SBD_TRAIN + SBD_VAL - 1130 - 1107]
    sbd_train, sbd_val = sbd[:SBD_TRAIN], sbd[SBD_TRAIN:]
    voc, sbd_dir = root / "VOC2012", root / "SBD"
    for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / d).mkdir(parents=True)
    (sbd_dir / "cls").mkdir(parents=True)
    for name, lst in (("train", voc_train), ("val", voc_val)):
        (voc / "ImageSets/Segmentation" / f"{name}.txt").write_text("".join(f"{i}\n" for i in lst))
    for name, lst in (("train", sbd_train), ("val", sbd_val)):
        (sbd_dir / f"{name}.txt").write_text("".join(f"{i}\n" for i in lst))
    for image_id in ids:
        (voc / "JPEGImages" / f"{image_id}.jpg").touch()
    return voc, sbd_dir, len(train_aug_ids(voc_train, voc_val, sbd_train, sbd_val))


def time_dry_runs(work: Path, configfiles: list[str], extra: str, repeats: int) -> tuple[list[float], str]:
    """Wall times of `snakemake -n results/miou.parquet --configfile <configfiles> extra.yaml` in a copy of the
    workflow in work (extra: that file's YAML), and the last run's output. benchmarks/coco_scale.py uses it too."""
    for name in ("Snakefile", "workflow", "scripts", "config"):
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, work / name)
    (work / "extra.yaml").write_text(extra)
    command = [str(SNAKEMAKE), "-n", "results/miou.parquet", "--configfile", *configfiles, "extra.yaml"]
    times, out = [], ""
    for _ in range(repeats):
        start = time.perf_counter()
        result = subprocess.run(command, cwd=work, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if result.returncode != 0:
            raise SystemExit(f"dry run failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
        out = result.stdout
    return times, out


def cam_file_sizes(work: Path, height: int = 375, width: int = 500) -> list[tuple[int, int, int]]:
    """(classes, our bytes, IRN's bytes) for one image."""
    rng = np.random.default_rng(0)
    sizes = []
    for k in (1, 2, 3):
        ours = work / f"ours_{k}.npy"
        save_npy(ours, rng.random((k, height, width)).astype(np.float16))
        strided = rng.random((k, (height + 3) // 4, (width + 3) // 4)).astype(np.float32)
        irn = {"keys": np.arange(k), "cam": strided, "high_res": rng.random((k, height, width)).astype(np.float32)}
        irn_path = work / f"irn_{k}.npy"
        np.save(irn_path, irn, allow_pickle=True)  # written only to measure its size; never loaded
        sizes.append((k, ours.stat().st_size, irn_path.stat().st_size))
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        voc, sbd, train_aug = voc_sized_tree(tmp / "data")
        (tmp / "work").mkdir()
        # Nested values go through a file: Snakemake's --config parses them with YAML's BaseLoader (strings).
        extra = f"voc_root: {voc}\nsbd_root: {sbd}\nerasing: {{rounds: {args.rounds}, threshold: 0.5}}\n"
        times, out = time_dry_runs(tmp / "work", ["config/voc2012.yaml"], extra, args.repeats)
        total = next(line.split()[1] for line in out.splitlines() if line.startswith("total"))
        print(f"tree: train_aug {train_aug} images, val {VOC_VAL}; {args.rounds} erasing rounds; {total} jobs planned")
        print(
            f"snakemake -n results/miou.parquet: median {statistics.median(times):.2f} s, "
            f"min {min(times):.2f} s, max {max(times):.2f} s over {len(times)} runs (target <= 3 s)"
        )
        for k, ours, irn in cam_file_sizes(tmp):
            print(
                f"CAM file, 500x375 image, {k} class(es): {ours / 1e3:.0f} kB float16 vs IRN {irn / 1e3:.0f} kB "
                f"float32 dict: {ours / irn:.2f}x (target <= 0.5x); {ours / (500 * 375):.2f} bytes per image pixel"
            )


if __name__ == "__main__":
    main()
