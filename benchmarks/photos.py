"""Wall time, peak memory and images/s per step of a finished run, from Snakemake's benchmark files.

    python benchmarks/photos.py [RESULTS] [--runs seed0 seed1 seed2]

RESULTS (default results/) holds the run: a single run's benchmarks/ folder, or one folder per run (seed<k>/,
a grid's experiments). Meant for config/photos.yaml on the coco340 development set (README, "Your own data"),
but reads any run. Per rule: its jobs, their summed and longest seconds, the largest peak RSS, and for the
per-image steps the images each second of job time covers (start-up included: a job's first ~4 s load torch).
The run's wall time is from the first job's start (its benchmark file's mtime less its seconds) to the last
job's end; jobs of one rule may have run side by side (shards), so wall < sum. Where several runs (seeds) were
scheduled together their jobs interleave and that wall time means little: "alone" estimates a run by itself
on --cores cores: each per-image rule's job time divided by min(its jobs, cores) (its jobs take one thread
each), the training rules' job time as it is (each takes every core). Steps a run read from another
run's folder (a grid's shared steps) have no benchmark file in it.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import pandas as pd

# per-image steps: the split whose images each job of the rule writes a file for (predictions: once per network)
PER_IMAGE = {
    "cams": "train",
    "merge_cams": "train",
    "crf": "train",
    "pseudo_masks": "train",
    "random_walk": "train",
    "predict_segmentation": "val",
}


def split_sizes(results: Path) -> dict[str, int]:
    lists = results / "data" / "lists"
    return {path.stem: len(path.read_text().split()) for path in lists.glob("*.txt")} if lists.is_dir() else {}


def run_table(run_dir: Path, sizes: dict[str, int]) -> tuple[pd.DataFrame, float]:
    """One row per rule of a run folder's benchmarks, and the run's wall seconds."""
    rows, starts, ends = [], [], []
    for path in sorted((run_dir / "benchmarks").rglob("*.tsv")):
        parts = path.relative_to(run_dir / "benchmarks").parts
        rule = parts[0] if len(parts) > 1 else path.stem  # benchmarks/<rule>/<args>.tsv or benchmarks/<rule>.tsv
        frame = pd.read_csv(path, sep="\t")
        seconds, rss = float(frame["s"].iloc[-1]), float(frame["max_rss"].iloc[-1])
        ends.append(path.stat().st_mtime)
        starts.append(ends[-1] - seconds)
        rows.append({"rule": rule, "s": seconds, "max_rss_mb": rss})
    if not rows:
        return pd.DataFrame(), 0.0
    jobs = pd.DataFrame(rows)
    table = jobs.groupby("rule", sort=False).agg(
        jobs=("s", "size"), sum_s=("s", "sum"), max_s=("s", "max"), peak_rss_mb=("max_rss_mb", "max")
    )
    table["images"] = [
        sizes.get(PER_IMAGE[rule], 0) * (table.loc[rule, "jobs"] if rule == "predict_segmentation" else 1)
        if rule in PER_IMAGE
        else 0
        for rule in table.index
    ]
    table["images_per_s"] = (table["images"] / table["sum_s"]).where(table["images"] > 0)
    return table, max(ends) - min(starts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", default="results", type=Path)
    parser.add_argument("--runs", nargs="*", help="run folders under RESULTS (default: every one with benchmarks/)")
    parser.add_argument("--cores", type=int, default=2, help="cores for the 'alone' estimate (default 2)")
    args = parser.parse_args()
    sizes = split_sizes(args.results)
    runs = args.runs or sorted(
        str(p.parent.relative_to(args.results)) for p in args.results.rglob("benchmarks") if p.is_dir()
    )
    walls = {}
    for name in runs:
        table, wall = run_table(args.results / name, sizes)
        if table.empty:
            continue
        label = "run" if name == "." else name
        walls[label] = wall
        side_by_side = [table.loc[r, "jobs"] if r in PER_IMAGE else 1 for r in table.index]  # 1-thread jobs
        alone = (table["sum_s"] / pd.Series(side_by_side, table.index).clip(upper=args.cores)).sum()
        print(
            f"\n== {label}: wall {wall / 60:.1f} min, job time {table['sum_s'].sum() / 60:.1f} min, "
            f"alone on {args.cores} cores ~{alone / 60:.1f} min =="
        )
        print(table.round({"sum_s": 1, "max_s": 1, "peak_rss_mb": 0, "images_per_s": 2}).to_string())
    if len(walls) > 1:
        minutes = [w / 60 for w in walls.values()]
        print(f"\nwall per run: {statistics.mean(minutes):.1f} ± {statistics.stdev(minutes):.1f} min over {len(walls)}")


if __name__ == "__main__":
    main()
