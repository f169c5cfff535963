"""The result tables (per-class IoU and per-stage summary) and the printed summary."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd

from .evaluate import load_scores
from .metrics import mean_iou, per_class_scores, pixel_accuracy


def stage_rows(stage: str, split: str, scores: dict, class_names: list[str]) -> pd.DataFrame:
    """One row per class present in truth or prediction, with the pixel counts behind its IoU."""
    per_class = per_class_scores(scores["confusion"])
    frame = pd.DataFrame({"stage": stage, "split": split, "class_id": np.arange(len(class_names)),
                          "class_name": class_names, **per_class})
    frame["present"] = frame["gt_pixels"] > 0
    return frame[(frame["gt_pixels"] > 0) | (frame["pred_pixels"] > 0)].reset_index(drop=True)


def stage_summary(stage: str, split: str, scores: dict) -> dict:
    confusion = scores["confusion"]
    per_class = per_class_scores(confusion)
    present = per_class["gt_pixels"] > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = per_class["tp"][present] / per_class["gt_pixels"][present]
    return {
        "stage": stage,
        "split": split,
        "miou": mean_iou(confusion),
        "pixel_accuracy": pixel_accuracy(confusion),
        "mean_class_accuracy": float(np.mean(recall)) if present.any() else float("nan"),
        "ignored_fraction": float(scores["ignored_pixels"] / max(int(scores["scored_pixels"]), 1)),
        "num_images": int(scores["num_images"]),
        "num_classes": int(present.sum()),
        "oracle": bool(scores.get("oracle", False)),
        "bg_threshold": float(scores["bg_threshold"]) if "bg_threshold" in scores else float("nan"),
    }


def build_tables(stages: list[tuple[str, str, dict]], class_names: list[str],
                 experiment: str = "default") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-class table, per-stage summary) from (stage, split, scores) triples, in pipeline order; both
    start with the experiment's name, so the tables of a grid concatenate."""
    per_class = pd.concat([stage_rows(s, split, sc, class_names) for s, split, sc in stages], ignore_index=True)
    per_class["iou"] = per_class["iou"].astype(float)
    summary = pd.DataFrame([stage_summary(s, split, sc) for s, split, sc in stages])
    per_class.insert(0, "experiment", experiment)
    summary.insert(0, "experiment", experiment)
    return per_class, summary


def format_summary(summary: pd.DataFrame) -> str:
    """A readable per-stage table, with the segmentation / fully-supervised ratio when both are there."""
    lines = [f"{'stage':<18}{'split':<8}{'mIoU':>7}{'pix.acc':>9}{'ignored':>9}{'images':>8}  note"]
    for row in summary.itertuples():
        note = f"ORACLE (bg threshold {row.bg_threshold:.2f}, chosen on ground truth)" if row.oracle else ""
        lines.append(
            f"{row.stage:<18}{row.split:<8}{row.miou:>7.3f}{row.pixel_accuracy:>9.3f}"
            f"{row.ignored_fraction:>9.3f}{row.num_images:>8d}  {note}".rstrip()
        )
    by_stage = summary.set_index("stage")["miou"]
    if {"segmentation", "fully_supervised"} <= set(by_stage.index):
        ratio = by_stage["segmentation"] / by_stage["fully_supervised"]
        lines.append(f"segmentation / fully-supervised mIoU: {ratio:.3f}")
    return "\n".join(lines)


def metrics_json(summary: pd.DataFrame) -> dict:
    """Per-stage figures for `dvc metrics show`: {stage: {miou, pixel_accuracy}} (the oracle stage is cam_oracle)."""
    return {
        row.stage: {"miou": round(float(row.miou), 6), "pixel_accuracy": round(float(row.pixel_accuracy), 6)}
        for row in summary.itertuples()
    }


def per_class_wide(per_class: pd.DataFrame) -> pd.DataFrame:
    """IoU of each class present in ground truth: one row per class, one column per stage (for `dvc plots`)."""
    present = per_class[per_class["present"]]
    wide = present.pivot(index="class_name", columns="stage", values="iou")
    order = list(dict.fromkeys(per_class["stage"]))
    classes = list(dict.fromkeys(present.sort_values("class_id")["class_name"]))
    return wide.reindex(index=classes, columns=order).round(6).reset_index()


def write_tables(stage_files, class_names, miou_path, summary_path, text_path, metrics_path=None, plots_path=None,
                 experiment: str = "default") -> str:
    """Load each stage's scores, write the per-class and summary parquet files and the text summary.

    metrics_path (JSON) and plots_path (CSV, class x stage IoU) are the same figures in DVC's formats.
    """
    stages = [(stage, split, load_scores(path)) for stage, split, path in stage_files]
    per_class, summary = build_tables(stages, list(class_names), experiment)
    per_class.to_parquet(miou_path, index=False)
    summary.to_parquet(summary_path, index=False)
    if metrics_path:
        with open(metrics_path, "w") as handle:
            json.dump(metrics_json(summary), handle, indent=2)
    if plots_path:
        per_class_wide(per_class).to_csv(plots_path, index=False)
    text = format_summary(summary)
    with open(text_path, "w") as handle:
        handle.write(text + "\n")
    logging.getLogger(__name__).info("summary:\n%s", text)
    return text


# The stages a grid's ranking shows: seeds and pseudo-masks on train, the segmentation network on val.
RANKED_STAGES = ("cam", "crf", "pseudo_mask", "segmentation")
# Which jobs count towards each part of an experiment's compute time (wsss.experiments' step names).
COST_PARTS = {"classifier": "classifier_s", "cams": "cams_s", "merged": "masks_s", "crf": "masks_s",
              "pseudo_masks": "masks_s", "segmentation": "segmentation_s"}


def job_seconds(benchmark_path) -> float:
    """Wall-clock seconds of a job from its Snakemake benchmark file (the mean over repeats)."""
    return float(pd.read_csv(benchmark_path, sep="\t")["s"].mean())


def experiment_costs(jobs: list[tuple[str, str]], own_folder: str) -> dict:
    """Compute time of an experiment's jobs ((step, benchmark file) pairs): in total, per part, and for the
    jobs it ran itself (the rest it shares with an earlier experiment of the grid)."""
    costs = dict.fromkeys(["total_s", "own_s", *dict.fromkeys(COST_PARTS.values())], 0.0)
    for step, path in jobs:
        seconds = job_seconds(path)
        costs["total_s"] += seconds
        costs[COST_PARTS[step]] += seconds
        if str(path).startswith(own_folder):
            costs["own_s"] += seconds
    return costs


def ranking_table(summary: pd.DataFrame, costs: dict[str, dict], rank_by: str) -> pd.DataFrame:
    """One row per experiment: its mIoU at each ranked stage and its compute time, best rank_by mIoU first
    (ties keep config order)."""
    wide = summary.pivot(index="experiment", columns="stage", values="miou")
    experiments = list(dict.fromkeys(summary["experiment"]))
    table = wide.reindex(index=experiments, columns=[s for s in RANKED_STAGES if s in wide.columns])
    if "fully_supervised" in wide.columns:
        table["ratio_to_fully_supervised"] = wide["segmentation"] / wide["fully_supervised"]
    table = table.join(pd.DataFrame.from_dict(costs, orient="index"))
    table = table.rename_axis("experiment").reset_index()
    table = table.sort_values(rank_by, ascending=False, kind="stable").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table


def format_ranking(table: pd.DataFrame, rank_by: str, splits: dict[str, str]) -> str:
    """The ranking as text: mIoU per stage (its split in the header), the ratio to the fully-supervised
    bound, and compute minutes per part, own and in total."""
    stages = [s for s in RANKED_STAGES if s in table.columns]
    columns = [(f"{s} ({splits[s]})", s, ".3f", 1) for s in stages]
    if "ratio_to_fully_supervised" in table.columns:
        columns.append(("seg/fully", "ratio_to_fully_supervised", ".3f", 1))
    columns += [(f"{label} min", key, ".1f", 60) for label, key in (
        ("classifier", "classifier_s"), ("cams", "cams_s"), ("masks", "masks_s"), ("segment.", "segmentation_s"),
        ("own", "own_s"), ("total", "total_s"))]
    width = max([len("experiment"), *map(len, table["experiment"])]) + 2
    lines = [f"Experiments ranked by {rank_by} mIoU ({splits[rank_by]})",
             f"{'rank':<6}{'experiment':<{width}}" + "".join(f"{label:>{len(label) + 2}}" for label, *_ in columns)]
    for row in table.to_dict("records"):
        lines.append(f"{row['rank']:<6}{row['experiment']:<{width}}" + "".join(
            f"{row[key] / scale:>{len(label) + 2}{spec}}" for label, key, spec, scale in columns))
    lines += ["min: compute minutes from Snakemake's per-job benchmarks; masks: merging, CRF and pseudo-masks;",
              "own: the jobs this experiment ran itself; total: every job it needs, shared ones included",
              "(scoring and the fully-supervised bound aside)."]
    return "\n".join(lines)


def write_grid_tables(miou_paths, summary_paths, jobs: dict, folders: dict, rank_by: str,
                      miou_path, summary_path, ranking_path, text_path) -> str:
    """Concatenate the experiments' tables (each carries its experiment column) and rank the experiments."""
    pd.concat(map(pd.read_parquet, miou_paths), ignore_index=True).to_parquet(miou_path, index=False)
    summary = pd.concat(map(pd.read_parquet, summary_paths), ignore_index=True)
    summary.to_parquet(summary_path, index=False)
    costs = {name: experiment_costs(jobs[name], folders[name]) for name in jobs}
    table = ranking_table(summary, costs, rank_by)
    table.to_parquet(ranking_path, index=False)
    splits = dict(zip(summary["stage"], summary["split"]))
    text = format_ranking(table, rank_by, splits)
    with open(text_path, "w") as handle:
        handle.write(text + "\n")
    logging.getLogger(__name__).info("ranking:\n%s", text)
    return text
