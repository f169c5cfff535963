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


def build_tables(stages: list[tuple[str, str, dict]], class_names: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-class table, per-stage summary) from (stage, split, scores) triples, in pipeline order."""
    per_class = pd.concat([stage_rows(s, split, sc, class_names) for s, split, sc in stages], ignore_index=True)
    per_class["iou"] = per_class["iou"].astype(float)
    summary = pd.DataFrame([stage_summary(s, split, sc) for s, split, sc in stages])
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


def write_tables(stage_files, class_names, miou_path, summary_path, text_path, metrics_path=None, plots_path=None) -> str:
    """Load each stage's scores, write the per-class and summary parquet files and the text summary.

    metrics_path (JSON) and plots_path (CSV, class x stage IoU) are the same figures in DVC's formats.
    """
    stages = [(stage, split, load_scores(path)) for stage, split, path in stage_files]
    per_class, summary = build_tables(stages, list(class_names))
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
