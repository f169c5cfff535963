"""The result tables (per-class IoU and per-stage summary) and the printed summary."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from wsss.pipeline import registry
from wsss.pipeline.registry import BOUND_STAGE, RANKED_STAGES, RESULT_STAGE
from wsss.scoring.evaluate import confident_precision, coverage, load_scores, pixel_counts
from wsss.scoring.metrics import mean_iou, per_class_scores, pixel_accuracy

# The figures of a stage, averaged over seeds in a replicated run (with their standard deviation, "<name>_sd").
FIGURES = ("miou", "pixel_accuracy", "mean_class_accuracy", "coverage", "confident_precision")


def stage_rows(stage: str, split: str, scores: dict, class_names: list[str]) -> pd.DataFrame:
    """One row per class present in truth or prediction (the classes in the mIoU), with the pixel counts
    behind its IoU."""
    per_class = per_class_scores(scores["confusion"])
    frame = pd.DataFrame(
        {
            "stage": stage,
            "split": split,
            "class_id": np.arange(len(class_names)),
            "class_name": class_names,
            **per_class,
        }
    )
    frame["present"] = frame["gt_pixels"] > 0
    return frame[(frame["gt_pixels"] > 0) | (frame["pred_pixels"] > 0)].reset_index(drop=True)


def stage_summary(stage: str, split: str, scores: dict) -> dict:
    confusion = scores["confusion"]
    per_class = per_class_scores(confusion)
    present = per_class["gt_pixels"] > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = per_class["tp"][present] / per_class["gt_pixels"][present]
    counts = pixel_counts(scores)
    return {
        "stage": stage,
        "split": split,
        "miou": mean_iou(confusion),
        "pixel_accuracy": pixel_accuracy(confusion),
        "mean_class_accuracy": float(np.mean(recall)) if present.any() else float("nan"),
        "coverage": coverage(counts),
        "confident_precision": confident_precision(counts),
        "num_images": int(scores["num_images"]),
        "num_classes": int((~np.isnan(per_class["iou"])).sum()),
        "oracle": bool(scores.get("oracle", False)),
        "bg_threshold": float(scores["bg_threshold"]) if "bg_threshold" in scores else float("nan"),
    }


def build_tables(
    stages: list[tuple[str, str, dict]],
    class_names: list[str],
    experiment: str = "default",
    seed: int | None = None,
    notes: list[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-class table, per-stage summary) from (stage, split, scores) triples, in pipeline order; both
    start with the experiment's name and the training seed, so the tables of a grid concatenate. notes: per
    stage, how its files were made (registry.stage_note), the summary's note column."""
    if not stages:  # nothing scored (no masks): the tables keep their columns
        nothing = {"confusion": np.zeros((len(class_names),) * 2, np.int64), "num_images": 0}
        nothing.update({f"{key}_pixels": 0 for key in ("scored", "labelled", "labelled_correct")})
        stages = [("", "", nothing)]
        empty = True
    else:
        empty = False
    per_class = pd.concat([stage_rows(s, split, sc, class_names) for s, split, sc in stages], ignore_index=True)
    per_class["iou"] = per_class["iou"].astype(float)
    summary = pd.DataFrame([stage_summary(s, split, sc) for s, split, sc in stages])
    if empty:
        per_class, summary = per_class.iloc[:0], summary.iloc[:0]
    summary["note"] = list(notes) if notes is not None else ""
    for frame in (per_class, summary):
        frame.insert(0, "experiment", experiment)
        frame.insert(1, "seed", pd.array([seed] * len(frame), dtype="Int64"))
    return per_class, summary


def summary_over_seeds(runs: pd.DataFrame) -> pd.DataFrame:
    """Per experiment and stage (in run order): the mean of each figure over the runs (seeds), its sample
    standard deviation ("<figure>_sd", NaN for one seed) and the number of seeds."""
    if "note" not in runs:  # summaries written before stages had notes
        runs = runs.assign(note="")
    grouped = runs.groupby(["experiment", "stage", "split"], sort=False)
    table = grouped[list(FIGURES)].mean().join(grouped[list(FIGURES)].std(ddof=1).add_suffix("_sd"))
    table["seeds"] = grouped["seed"].count()
    table["num_images"] = grouped["num_images"].first()
    table["oracle"] = grouped["oracle"].first()
    table["bg_threshold"] = grouped["bg_threshold"].mean()  # an oracle's threshold may differ per seed
    table["note"] = grouped["note"].first()
    order = [f for figure in FIGURES for f in (figure, f"{figure}_sd")]
    return table.reset_index()[
        ["experiment", "stage", "split", *order, "seeds", "num_images", "oracle", "bg_threshold", "note"]
    ]


def miou_by_run(runs: pd.DataFrame) -> pd.DataFrame:
    """The mIoU of each stage (columns) of each (experiment, seed) run (rows), in run order."""
    return runs.pivot_table(index=["experiment", "seed"], columns="stage", values="miou", sort=False, dropna=False)


def ratio_to_fully_supervised(wide: pd.DataFrame) -> pd.Series:
    """The WSSS result's mIoU over the fully-supervised bound's (segmentation / fully_supervised) of each run
    (a miou_by_run table) that has both stages."""
    if not {RESULT_STAGE, BOUND_STAGE} <= set(wide.columns):
        return pd.Series(dtype=float)
    return wide[RESULT_STAGE] / wide[BOUND_STAGE]


def mean_sd(values, decimals: int = 3) -> str:
    """ "0.472" for one value, "0.472 ± 0.012" (sample standard deviation) for several."""
    values = pd.Series(values, dtype=float).dropna()
    if len(values) == 0:
        return "n/a"
    if len(values) == 1:
        return f"{values.iloc[0]:.{decimals}f}"
    return f"{values.mean():.{decimals}f} ± {values.std(ddof=1):.{decimals}f}"


SCORING_NOTE = (
    "mIoU as chainercv/IRN: mean over the classes predicted or present; unlabelled (255) pixels count as\n"
    "background; coverage: the fraction of pixels labelled; conf.prec: pixel accuracy where labelled."
)


# The figures summary.txt shows, with their column headers.
SHOWN = {"miou": "mIoU", "pixel_accuracy": "pix.acc", "coverage": "coverage", "confident_precision": "conf.prec"}


def not_scored_lines(unscored: dict[str, str] | None) -> list[str]:
    """ "not scored: cam, crf, pseudo_mask (no masks for train)": the stages a run makes but cannot score, by
    reason (registry.unscored_stages)."""
    by_reason: dict[str, list[str]] = {}
    for stage, reason in (unscored or {}).items():
        by_reason.setdefault(reason, []).append(stage)
    return [f"not scored: {', '.join(stages)} ({reason})" for reason, stages in by_reason.items()]


def format_summary(runs: pd.DataFrame, unscored: dict[str, str] | None = None) -> str:
    """A readable per-stage table of one or more runs (rows of per-run summaries, an experiment and a seed
    column): each figure as the mean ± sd over the seeds of its experiment; the segmentation /
    fully-supervised ratio (per seed, then averaged) when both stages are there; the stages not scored and
    why (unscored: stage -> reason)."""
    experiments = list(dict.fromkeys(runs["experiment"]))
    lines = []
    for name in experiments:
        own = runs[runs["experiment"] == name]
        seeds = sorted(own["seed"].dropna().unique())
        if len(experiments) > 1 or len(seeds) > 1:
            lines.append(
                f"{name}: "
                + (
                    f"mean ± sd over {len(seeds)} seeds {list(map(int, seeds))}"
                    if len(seeds) > 1
                    else f"seed {seeds[0] if seeds else '?'}"
                )
            )
        width = 17 if len(seeds) > 1 else 10
        lines.append(
            f"{'stage':<18}{'split':<8}" + "".join(f"{h:>{width}}" for h in SHOWN.values()) + f"{'images':>8}  note"
        )
        for (stage, split), group in own.groupby(["stage", "split"], sort=False):
            oracle = bool(group["oracle"].iloc[0])
            note = group["note"].iloc[0] if "note" in group else ""
            if oracle:
                note = f"ORACLE (bg threshold {group['bg_threshold'].mean():.2f}, chosen on ground truth)"
            figures = "".join(f"{mean_sd(group[f]):>{width}}" for f in SHOWN)
            lines.append(f"{stage:<18}{split:<8}{figures}{int(group['num_images'].iloc[0]):>8d}  {note}".rstrip())
        ratio = ratio_to_fully_supervised(miou_by_run(own))
        if len(ratio):
            lines.append(f"segmentation / fully-supervised mIoU: {mean_sd(ratio.values)}")
        lines.append("")
    if not experiments:
        lines += [
            f"{'stage':<18}{'split':<8}" + "".join(f"{h:>10}" for h in SHOWN.values()) + f"{'images':>8}  note",
            "",
        ]
    if unscored:
        lines += [*not_scored_lines(unscored), ""]
    lines.append(SCORING_NOTE)
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


def write_text(path, text: str, what: str) -> str:
    with open(path, "w") as handle:
        handle.write(text + "\n")
    logging.getLogger(__name__).info("%s:\n%s", what, text)
    return text


def write_tables(
    stage_files,
    class_names,
    miou_path,
    summary_path,
    text_path,
    metrics_path=None,
    plots_path=None,
    experiment: str = "default",
    seed: int | None = None,
    notes: list[str] | None = None,
    unscored: dict[str, str] | None = None,
) -> str:
    """Load each stage's scores, write the per-class and summary parquet files and the text summary (which
    also names the stages not scored: unscored, stage -> reason).

    metrics_path (JSON) and plots_path (CSV, class x stage IoU) are the same figures in DVC's formats.
    """
    stages = [(stage, split, load_scores(path)) for stage, split, path in stage_files]
    per_class, summary = build_tables(stages, list(class_names), experiment, seed, notes)
    per_class.to_parquet(miou_path, index=False)
    summary.to_parquet(summary_path, index=False)
    if metrics_path:
        with open(metrics_path, "w") as handle:
            json.dump(metrics_json(summary), handle, indent=2)
    if plots_path:
        per_class_wide(per_class).to_csv(plots_path, index=False)
    return write_text(text_path, format_summary(summary, unscored), "summary")


# The parts of an experiment's compute time: one column per registry cost ("<cost>_s").
COST_PARTS = tuple(dict.fromkeys(f"{step.cost}_s" for step in registry.STEPS.values()))


def job_seconds(benchmark_path) -> float:
    """Wall-clock seconds of a job from its Snakemake benchmark file (the mean over repeats)."""
    return float(pd.read_csv(benchmark_path, sep="\t")["s"].mean())


def experiment_costs(jobs: list[tuple[str, str]], own_folder: str) -> dict:
    """Compute time of an experiment's jobs ((step, benchmark file) pairs): in total, per part, and for the
    jobs it ran itself (the rest it shares with an earlier experiment of the grid)."""
    costs = dict.fromkeys(["total_s", "own_s", *COST_PARTS], 0.0)
    for step, path in jobs:
        seconds = job_seconds(path)
        costs["total_s"] += seconds
        costs[f"{registry.step(step).cost}_s"] += seconds
        if str(path).startswith(own_folder):
            costs["own_s"] += seconds
    return costs


def ranking_table(
    runs: pd.DataFrame, costs: dict[str, dict], run_experiments: dict[str, str], rank_by: str
) -> pd.DataFrame:
    """One row per experiment, best mean rank_by mIoU first (ties keep config order): the mean and sample
    standard deviation over its seeds ("<stage>_sd") of the mIoU at each ranked stage and of the ratio to
    the fully-supervised bound, of rank_by's pixel accuracy ("pixel_accuracy"), the mean compute time of its
    runs, and the ranks of the experiments it is within noise of ("within_noise_of": their mean ± sd
    intervals of rank_by overlap)."""
    experiments = list(dict.fromkeys(runs["experiment"]))
    wide = miou_by_run(runs)
    stages = [s for s in RANKED_STAGES if s in wide.columns]
    per_run = wide[stages].copy()
    ratio = ratio_to_fully_supervised(wide)
    if len(ratio):
        per_run["ratio_to_fully_supervised"] = ratio
    if "pixel_accuracy" in runs:
        ranked = runs[runs["stage"] == rank_by].set_index(["experiment", "seed"])
        per_run["pixel_accuracy"] = ranked["pixel_accuracy"].reindex(per_run.index)  # of the rank_by stage
    grouped = per_run.groupby(level="experiment", sort=False)
    table = grouped.mean().join(grouped.std(ddof=1).add_suffix("_sd"))
    table["seeds"] = grouped.size()
    run_costs = pd.DataFrame.from_dict(costs, orient="index")
    table = table.join(run_costs.groupby(pd.Series(run_experiments)).mean()).reindex(experiments)
    table = table.rename_axis("experiment").reset_index()
    table = table.sort_values(rank_by, ascending=False, kind="stable").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    low, high = table[rank_by] - table[f"{rank_by}_sd"], table[rank_by] + table[f"{rank_by}_sd"]
    table["within_noise_of"] = [
        ",".join(str(table["rank"][j]) for j in range(len(table)) if j != i and low[i] <= high[j] and low[j] <= high[i])
        for i in range(len(table))
    ]
    return table


def format_ranking(table: pd.DataFrame, rank_by: str, splits: dict[str, str]) -> str:
    """The ranking as text: mIoU per stage (its split in the header), rank_by's pixel accuracy and the ratio to
    the fully-supervised bound, as mean ± sd over seeds; which experiments are within noise; compute minutes
    per part."""
    stages = [s for s in RANKED_STAGES if s in table.columns]
    replicated = int(table["seeds"].max()) > 1
    width = 15 if replicated else 7

    def spread(row, key):
        if not replicated or np.isnan(row[f"{key}_sd"]):
            return f"{row[key]:.3f}"
        return f"{row[key]:.3f}±{row[f'{key}_sd']:.3f}"

    columns = [(f"{s} ({splits[s]})", s) for s in stages]
    if "pixel_accuracy" in table.columns:
        columns.append((f"{rank_by} pix.acc", "pixel_accuracy"))
    if "ratio_to_fully_supervised" in table.columns:
        columns.append(("seg/fully", "ratio_to_fully_supervised"))
    minutes = [(f"{key[:-2]} min", key) for key in (*COST_PARTS, "own_s", "total_s")]
    name_width = max([len("experiment"), *map(len, table["experiment"])]) + 2
    header = f"Experiments ranked by {rank_by} mIoU ({splits[rank_by]})"
    if replicated:
        header += f", mean ± sd over {int(table['seeds'].max())} seeds"
    lines = [
        header,
        f"{'rank':<6}{'experiment':<{name_width}}"
        + "".join(f"{label:>{max(len(label), width) + 2}}" for label, _ in columns)
        + ("  within noise of" if replicated else "")
        + "".join(f"{label:>{len(label) + 2}}" for label, _ in minutes),
    ]
    for row in table.to_dict("records"):
        lines.append(
            f"{row['rank']:<6}{row['experiment']:<{name_width}}"
            + "".join(f"{spread(row, key):>{max(len(label), width) + 2}}" for label, key in columns)
            + (f"  {row['within_noise_of'] or '-':<14}" if replicated else "")
            + "".join(f"{row[key] / 60:>{len(label) + 2}.1f}" for label, key in minutes)
        )
    lines += [
        "min: compute minutes from Snakemake's per-job benchmarks (mean over seeds) of the jobs behind the",
        "segmentation network: masks: merging CAMs and pseudo-masks (their CRF included); own: the jobs this",
        "experiment ran itself; total: every job it needs, shared ones included (scoring, the CRF stage and",
        "the fully-supervised bound aside).",
    ]
    if replicated:
        lines.append("within noise of: the ranks whose mean ± sd interval of the ranked mIoU overlaps this one's.")
    if "ratio_to_fully_supervised" in table.columns:
        above = table.loc[table["ratio_to_fully_supervised"] > 1, "experiment"].tolist()
        if above:
            lines.append(
                f"seg/fully above 1 ({', '.join(above)}): the network on ground truth scores below the one on "
                "pseudo-labels, so it is no bound there (it underfits: see its training history)."
            )
    return "\n".join(lines)


@dataclass(frozen=True)
class GridTableFiles:
    """Where the grid's tables go: every run's per-class rows (miou), each experiment's figures over its
    seeds (summary, summary_text) and the experiments ranked (ranking, ranking_text)."""

    miou: str
    summary: str
    summary_text: str
    ranking: str
    ranking_text: str


def write_grid_tables(
    miou_paths,
    summary_paths,
    jobs: dict,
    folders: dict,
    run_experiments: dict,
    rank_by: str,
    files: GridTableFiles,
    unscored: dict[str, str] | None = None,
) -> str:
    """Concatenate the runs' tables (each carries its experiment and seed columns) into files: every run's
    per-class rows, each experiment's figures as mean ± sd over its seeds, and the experiments ranked by
    rank_by's mIoU with their compute time (jobs: run -> its job benchmarks, folders: run -> its results)."""
    pd.concat(map(pd.read_parquet, miou_paths), ignore_index=True).to_parquet(files.miou, index=False)
    runs = pd.concat(map(pd.read_parquet, summary_paths), ignore_index=True)
    summary_over_seeds(runs).to_parquet(files.summary, index=False)
    write_text(files.summary_text, format_summary(runs, unscored), "summary")
    costs = {run: experiment_costs(jobs[run], folders[run]) for run in jobs}
    table = ranking_table(runs, costs, run_experiments, rank_by)
    table.to_parquet(files.ranking, index=False)
    splits = dict(zip(runs["stage"], runs["split"]))
    return write_text(files.ranking_text, format_ranking(table, rank_by, splits), "ranking")
