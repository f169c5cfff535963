"""Figures for the HTML report: mask and CAM overlays, the train and val galleries, per-class and
per-stage score plots, the confusion matrix and the classifier training curves (matplotlib, no pyplot)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure

from wsss.data.datasets import Dataset
from wsss.data.voc import IGNORE, index_files, indexed_file, load_npy, read_image, read_mask, voc_palette
from wsss.files import atomic_write
from wsss.pipeline.registry import BOUND_STAGE, RESULT_STAGE, stage_title
from wsss.seeds.masks import cam_to_label

PALETTE = np.asarray(voc_palette(), np.uint8).reshape(256, 3)
IGNORE_COLOUR = (255, 255, 255)  # VOC draws 255 in cream; white stands out better next to class colours
MASK_ALPHA = 0.6
CAM_ALPHA = 0.5
PANEL_INCHES = 1.7
DPI = 100


# --- overlays -----------------------------------------------------------------------------------------


def colour_mask(mask: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8: each class id in its VOC palette colour, 255 (ignore) in white."""
    colours = PALETTE[mask]
    colours[mask == IGNORE] = IGNORE_COLOUR
    return colours


def overlay_mask(image: np.ndarray, mask: np.ndarray, alpha: float = MASK_ALPHA) -> np.ndarray:
    """The image blended with the mask's palette colours (background's is black, so it darkens);
    ignored pixels are painted plain white so unlabelled regions are unmistakable."""
    if image.shape[:2] != mask.shape:
        raise ValueError(f"image {image.shape[:2]} and mask {mask.shape} differ in size")
    blended = (1 - alpha) * image.astype(np.float32) + alpha * PALETTE[mask].astype(np.float32)
    out = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    out[mask == IGNORE] = IGNORE_COLOUR
    return out


def cam_heatmap(image: np.ndarray, cam: np.ndarray, alpha: float = CAM_ALPHA) -> np.ndarray:
    """The image blended with a jet heat-map of one CAM channel (values clipped to [0, 1])."""
    if image.shape[:2] != cam.shape:
        raise ValueError(f"image {image.shape[:2]} and CAM {cam.shape} differ in size")
    heat = colormaps["jet"](np.clip(cam.astype(np.float32), 0, 1))[..., :3] * 255
    return np.clip(np.rint((1 - alpha) * image + alpha * heat), 0, 255).astype(np.uint8)


# --- choosing images ----------------------------------------------------------------------------------


def select_gallery(
    scores: pd.DataFrame, sample_size: int, best: int, worst: int, seed: int, rankable=None
) -> pd.DataFrame:
    """Which images a gallery shows: a seeded random sample (in id order), the `best` highest and the
    `worst` lowest by per-image mIoU (ties broken by id), among the ids in `rankable` if given (the train
    gallery ranks only images with an object: a background-only image scores a trivial 1).
    Columns: selection, rank (1-based), image_id, miou. An image may appear in the sample and in best or worst."""
    scores = scores.sort_values("image_id", kind="stable").reset_index(drop=True)
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(len(scores), size=min(sample_size, len(scores)), replace=False))
    candidates = scores if rankable is None else scores[scores["image_id"].isin(set(rankable))]
    ranked = candidates.sort_values(["miou", "image_id"], ascending=[False, True], kind="stable")
    worst_first = candidates.sort_values(["miou", "image_id"], ascending=[True, True], kind="stable")
    parts = [("sample", scores.iloc[picked]), ("best", ranked.head(best)), ("worst", worst_first.head(worst))]
    frames = [
        part[["image_id", "miou"]].assign(selection=name, rank=np.arange(1, len(part) + 1))
        for name, part in parts
        if len(part)
    ]
    columns = ["selection", "rank", "image_id", "miou"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def gallery_file_name(rank: int, image_id: str, class_names: list[str], scores: dict[str, float]) -> str:
    """<rank>__<image id>__<class+class>__<stage><IoU>...png ("none" for an image without a score: no mask). The
    report reads the caption's class names and IoUs back from these fields (Snakemake report patterns), so they
    are also visible in a file browser."""
    classes = "+".join(class_names) or "none"
    figures = {key: "none" if value is None or np.isnan(value) else f"{value:.3f}" for key, value in scores.items()}
    fields = [f"{rank:02d}", image_id, classes, *(f"{key}{value}" for key, value in figures.items())]
    for field in fields:
        if "__" in field or "/" in field:
            raise ValueError(f"gallery file name field {field!r} may not contain '__' or '/'")
    return "__".join(fields) + ".png"


# --- galleries ----------------------------------------------------------------------------------------


def save_figure(figure: Figure, path) -> None:
    """Write a PNG atomically (temporary name, then rename) with no software/date metadata."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp:
        figure.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})


def _panel_row(
    panels: list[tuple[str, np.ndarray]], title: str, panel_inches: float = PANEL_INCHES, columns: int | None = None
) -> Figure:
    """Image panels, each with its title, under a figure title: one row, or rows of at most columns panels
    (photos: panels large enough to read, in a figure a browser shows without shrinking them). Axes are placed
    by hand: matplotlib's layout engines cost about a second per gallery figure."""
    title_inches, panel_title_inches, margin = 0.35, 0.4, 0.05
    columns = len(panels) if not columns else min(columns, len(panels))
    rows = -(-len(panels) // columns)
    row_inches = panel_inches + panel_title_inches
    height = rows * row_inches + title_inches + 0.15
    width = panel_inches * columns
    figure = Figure(figsize=(width, height))
    figure.text(0.5, 1 - 0.05 / height, title, ha="center", va="top", fontsize=10)
    for k, (name, picture) in enumerate(panels):
        column, bottom = k % columns, (rows - 1 - k // columns) * row_inches
        box = [
            (column * panel_inches + margin) / width,
            (bottom + 0.1) / height,
            (panel_inches - 2 * margin) / width,
            (panel_inches - margin) / height,
        ]
        ax = figure.add_axes(box)
        ax.imshow(picture, interpolation="nearest")
        ax.set_axis_off()
        # figure text, not ax.set_title: placing axes titles measures every axis (slow)
        figure.text(
            (column + 0.5) * panel_inches / width,
            (bottom + panel_inches + 0.12) / height,
            name,
            ha="center",
            va="bottom",
            fontsize=8,
        )
    return figure


def _iou(scores: dict[str, float], stage: str) -> str:
    value = scores.get(stage)
    return "" if value is None or np.isnan(value) else f"\nIoU {value:.2f}"


def train_gallery_figure(
    image_id: str,
    image: np.ndarray,
    truth: np.ndarray | None,
    round_cams: list[np.ndarray],
    merged_cam: np.ndarray,
    label_maps: dict[str, np.ndarray],
    class_ids: list[int],
    class_names: list[str],
    bg_threshold: float,
    scores: dict[str, float],
    layout: dict | None = None,
) -> Figure:
    """image | CAM heat-map per class and round | merged CAM (labels at the background threshold) | each
    label map (stage -> map, e.g. CRF, pseudo-mask; ignore white) | ground truth (where the image has a mask).
    scores: stage -> this image's mIoU, shown in the titles. layout: _panel_row's panel_inches and columns (the
    report's)."""
    panels = [("image", image)]
    for round_index, cams in enumerate(round_cams):
        for channel, class_id in enumerate(class_ids):
            title = f"r{round_index} {class_names[class_id]}"
            if channel == 0:
                title += _iou(scores, f"cam_r{round_index}")
            panels.append((title, cam_heatmap(image, cams[channel])))
    merged_labels = cam_to_label(merged_cam, class_ids, bg_threshold)
    panels += [
        (f"{stage_title('cam')}, bg {bg_threshold:.2f}" + _iou(scores, "cam"), overlay_mask(image, merged_labels)),
        *(
            (stage_title(stage) + _iou(scores, stage), overlay_mask(image, labels))
            for stage, labels in label_maps.items()
        ),
        *([("ground truth", overlay_mask(image, truth))] if truth is not None else []),
    ]
    names = ", ".join(class_names[c] for c in class_ids) or "no object"
    return _panel_row(panels, f"{image_id}: {names}", **(layout or {}))


def val_gallery_figure(
    image_id: str,
    image: np.ndarray,
    truth: np.ndarray | None,
    segmentation: np.ndarray,
    fully_supervised: np.ndarray | None,
    class_names: list[str],
    scores: dict[str, float],
    layout: dict | None = None,
) -> Figure:
    """image | segmentation (trained on pseudo-masks) | fully-supervised prediction | ground truth; the last two
    where there are any (the bound needs train masks, the truth a mask of this image). The title names the
    classes of the truth, or else those the segmentation predicts."""
    panels = [
        ("image", image),
        (stage_title(RESULT_STAGE) + _iou(scores, RESULT_STAGE), overlay_mask(image, segmentation)),
    ]
    if fully_supervised is not None:
        panels.append((stage_title(BOUND_STAGE) + _iou(scores, BOUND_STAGE), overlay_mask(image, fully_supervised)))
    if truth is not None:
        panels.append(("ground truth", overlay_mask(image, truth)))
    return _panel_row(panels, f"{image_id}: {_val_title(truth, segmentation, class_names)}", **(layout or {}))


def _val_title(truth: np.ndarray | None, segmentation: np.ndarray, class_names: list[str]) -> str:
    shown = segmentation if truth is None else truth
    present = ", ".join(class_names[c] for c in np.unique(shown) if c not in (0, IGNORE)) or "no object"
    return present if truth is not None else f"predicted {present}"


# --- score plots --------------------------------------------------------------------------------------


def _stage_colours(stages: list[str]) -> dict[str, tuple]:
    cmap = colormaps["tab10"]
    return {stage: cmap(k % 10) for k, stage in enumerate(stages)}


def class_iou_figure(per_class: pd.DataFrame, stages: list[str]) -> Figure:
    """Grouped bars: per class (present in its split's ground truth), one bar per stage, in pipeline order."""
    table = per_class[per_class["present"] & per_class["stage"].isin(stages)]
    classes = table.sort_values("class_id").drop_duplicates("class_id")[["class_id", "class_name"]]
    figure = Figure(figsize=(max(8.0, 1.4 * len(classes) + 2), 5.4), layout="constrained")
    ax = figure.subplots()
    width = 0.85 / max(len(stages), 1)
    colours = _stage_colours(stages)
    positions = np.arange(len(classes))
    for k, stage in enumerate(stages):
        rows = table[table["stage"] == stage].set_index("class_id")["iou"]
        values = [rows.get(c, np.nan) for c in classes["class_id"]]
        split = table.loc[table["stage"] == stage, "split"]
        label = f"{stage_title(stage)} ({split.iloc[0] if len(split) else '?'})"
        ax.bar(positions + (k - (len(stages) - 1) / 2) * width, values, width, label=label, color=colours[stage])
    ax.set_xticks(positions, classes["class_name"])
    ax.set_ylim(0, 1)
    ax.set_ylabel("IoU")
    ax.set_title("Per-class IoU by stage (seeds and pseudo-masks on train, segmentation on val)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncols=min(4, max(len(stages), 1)), loc="upper center", bbox_to_anchor=(0.5, -0.08))
    return figure


def miou_by_stage_figure(summary: pd.DataFrame, reference: str = BOUND_STAGE) -> Figure:
    """The mIoU from stage to stage (x in pipeline order, split in the tick label), one line per experiment;
    oracle stages are left off the line; the reference stage (fully supervised) is a dashed horizontal line.
    A summary over seeds (a "miou_sd" column) draws mean ± sd error bars."""
    experiments = list(dict.fromkeys(summary["experiment"])) if "experiment" in summary else [None]
    rows = {name: summary if name is None else summary[summary["experiment"] == name] for name in experiments}
    lines = {name: own[~own["oracle"].astype(bool) & (own["stage"] != reference)] for name, own in rows.items()}
    axis = max(lines.values(), key=len)  # the experiment with the most stages (erasing rounds) sets the x axis
    position = {stage: k for k, stage in enumerate(axis["stage"])}
    figure = Figure(figsize=(max(7.0, 1.2 * len(axis) + 2), 4.2), layout="constrained")
    ax = figure.subplots()
    ax.set_xticks(
        np.arange(len(axis)),
        [f"{stage_title(s)}\n({split})" for s, split in zip(axis["stage"], axis["split"])],
        fontsize=8,
    )
    single = len(experiments) == 1
    for k, (name, line) in enumerate(lines.items()):
        own = rows[name]
        x = line["stage"].map(position).to_numpy()
        colour = "tab:blue" if single else colormaps["tab10"](k % 10)
        errors = line["miou_sd"].fillna(0).to_numpy() if "miou_sd" in line else None
        label = "mIoU" if single else name
        if errors is not None and (errors > 0).any():
            label += f" (mean ± sd over {int(line['seeds'].max())} seeds)"
        ax.errorbar(x, line["miou"], yerr=errors, marker="o", color=colour, capsize=3, label=label)
        if single:
            for xi, value in zip(x, line["miou"]):
                ax.annotate(
                    f"{value:.3f}", (xi, value), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=8
                )
        if reference in set(own["stage"]):
            ref = own.set_index("stage").loc[reference]
            spread = f" ± {ref['miou_sd']:.3f}" if "miou_sd" in ref and ref["miou_sd"] > 0 else ""
            ax.axhline(
                ref["miou"],
                color="tab:red" if single else colour,
                linestyle="--",
                label=f"{stage_title(reference)} ({ref['split']}): {ref['miou']:.3f}{spread}",
            )
    ax.set_ylim(0, 1)
    ax.set_ylabel("mIoU")
    ax.set_title("mIoU stage by stage", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return figure


def normalised_confusion(confusion: np.ndarray) -> np.ndarray:
    """Rows divided by their sums (rows = ground truth); empty rows stay 0."""
    sums = confusion.sum(1, keepdims=True).astype(np.float64)
    return np.divide(confusion, sums, out=np.zeros(confusion.shape, np.float64), where=sums > 0)


def confusion_figure(confusion: np.ndarray, class_names: list[str], title: str) -> Figure:
    """Row-normalised confusion matrix over the classes seen in ground truth or prediction."""
    shown = np.flatnonzero((confusion.sum(0) + confusion.sum(1)) > 0)
    matrix = normalised_confusion(confusion)[np.ix_(shown, shown)]
    names = [class_names[c] for c in shown]
    side = max(4.5, 0.7 * len(shown) + 2)
    figure = Figure(figsize=(side + 1, side), layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
    for (row, col), value in np.ndenumerate(matrix):
        ax.text(
            col, row, f"{value:.2f}", ha="center", va="center", fontsize=8, color="white" if value > 0.5 else "black"
        )
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    ax.set_title(title, fontsize=10)
    figure.colorbar(image, ax=ax, fraction=0.046, label="fraction of the row")
    return figure


def training_curves_figure(histories: list[pd.DataFrame]) -> Figure:
    """Loss and train mAP per epoch, one line per erasing round (history.parquet of each classifier)."""
    figure = Figure(figsize=(10, 3.8), layout="constrained")
    loss_ax, map_ax = figure.subplots(1, 2)
    for history in histories:
        label = f"round {int(history['round'].iloc[0])}"
        loss_ax.plot(history["epoch"], history["loss"], marker=".", label=label)
        map_ax.plot(history["epoch"], history["mAP"], marker=".", label=label)
    loss_ax.set(xlabel="epoch", ylabel="multi-label soft-margin loss", title="classifier training loss")
    map_ax.set(xlabel="epoch", ylabel="mAP (train, augmented batches)", title="classifier train mAP", ylim=(0, 1.02))
    for ax in (loss_ax, map_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return figure


# --- writing the galleries ----------------------------------------------------------------------------


def panel_layout(settings: dict) -> dict:
    """The report settings' panel size and columns (config report.panel_inches, report.columns)."""
    return {"panel_inches": settings.get("panel_inches", PANEL_INCHES), "columns": settings.get("columns")}


def _scores_by_image(image_scores: pd.DataFrame, split: str) -> dict[str, dict[str, float]]:
    """image id -> {stage: mIoU} for the stages scored on one split."""
    rows = image_scores[image_scores["split"] == split]
    return {image_id: dict(zip(group["stage"], group["miou"])) for image_id, group in rows.groupby("image_id")}


@dataclass(frozen=True)
class TrainGalleryRun:
    """What the train gallery draws, from one run: its dataset, image labels and per-image scores, its CAM
    folders (per erasing round, then merged), its label-map folders (stage -> shard directories of PNGs, one
    panel each), the class names and the CAMs' background threshold."""

    dataset: Dataset
    labels: dict[str, list[int]]
    image_scores: pd.DataFrame
    round_cam_dirs: list[list]
    merged_cam_dirs: list
    label_map_dirs: dict[str, list]
    class_names: list[str]
    bg_threshold: float


def write_train_gallery(run: TrainGalleryRun, split: str, rank_stage: str, settings: dict, out_dir) -> pd.DataFrame:
    """<out_dir>/<selection>/<gallery_file_name>.png for the sample, and the best and worst images of split
    with an object by rank_stage's IoU (settings: sample_size, best, worst, seed); only images with a mask are
    scored, so only those are ranked. Returns the selection."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)  # exists even when every selection is empty

    by_image = _scores_by_image(run.image_scores, split)
    ranked = _split_scores(run.image_scores, run.dataset.split_ids(split), split, rank_stage)
    with_objects = [
        i for i in ranked["image_id"] if run.labels[i] and not np.isnan(by_image.get(i, {}).get(rank_stage, np.nan))
    ]
    chosen = select_gallery(
        ranked, settings["sample_size"], settings["best"], settings["worst"], settings["seed"], rankable=with_objects
    )
    round_indexes = [index_files(dirs, ".npy") for dirs in run.round_cam_dirs]
    merged_index = index_files(run.merged_cam_dirs, ".npy")
    label_indexes = {stage: index_files(dirs, ".png") for stage, dirs in run.label_map_dirs.items()}
    num_classes = len(run.class_names)
    for row in chosen.itertuples():
        image_id, class_ids = row.image_id, run.labels[row.image_id]
        image = read_image(run.dataset.image_path(image_id))
        figure = train_gallery_figure(
            image_id,
            image,
            _truth(run.dataset, image_id, num_classes),
            [load_npy(indexed_file(index, image_id, f"round-{r} CAM")) for r, index in enumerate(round_indexes)],
            load_npy(indexed_file(merged_index, image_id, "merged CAM")),
            {
                stage: read_mask(indexed_file(index, image_id, f"{stage_title(stage)} map"), num_classes)
                for stage, index in label_indexes.items()
            },
            class_ids,
            run.class_names,
            run.bg_threshold,
            by_image.get(image_id, {}),
            panel_layout(settings),
        )
        name = gallery_file_name(row.rank, image_id, [run.class_names[c] for c in class_ids], {"iou": row.miou})
        save_figure(figure, Path(out_dir) / row.selection / name)
    return chosen


def write_val_gallery(
    dataset: Dataset,
    image_scores: pd.DataFrame,
    split: str,
    settings: dict,
    segmentation_dirs: list,
    fully_supervised_dirs: list,
    class_names: list[str],
    out_dir,
) -> pd.DataFrame:
    """<out_dir>/<gallery_file_name>.png for a seeded sample of val images (settings: val_sample_size, seed);
    the predictions are PNG label maps in segmentation_dirs and fully_supervised_dirs (none: no bound)."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    segmentation = index_files(segmentation_dirs, ".png")
    fully_supervised = index_files(fully_supervised_dirs, ".png") if fully_supervised_dirs else None

    by_image = _scores_by_image(image_scores, split)
    scores = _split_scores(image_scores, dataset.split_ids(split), split, RESULT_STAGE)
    chosen = select_gallery(scores, settings["val_sample_size"], 0, 0, settings["seed"])
    num_classes = len(class_names)
    for row in chosen.itertuples():
        image_id = row.image_id
        truth = _truth(dataset, image_id, num_classes)
        predicted = read_mask(
            indexed_file(segmentation, image_id, f"{stage_title(RESULT_STAGE)} prediction"), num_classes
        )
        bound = None
        if fully_supervised is not None:
            bound = read_mask(
                indexed_file(fully_supervised, image_id, f"{stage_title(BOUND_STAGE)} prediction"), num_classes
            )
        own = by_image.get(image_id, {})
        figure = val_gallery_figure(
            image_id,
            read_image(dataset.image_path(image_id)),
            truth,
            predicted,
            bound,
            class_names,
            own,
            panel_layout(settings),
        )
        shown = predicted if truth is None else truth
        present = [class_names[c] for c in np.unique(shown) if c not in (0, IGNORE)]
        scores_of = {"seg": own.get(RESULT_STAGE, np.nan), "fs": own.get(BOUND_STAGE, np.nan)}
        save_figure(figure, Path(out_dir) / gallery_file_name(row.rank, image_id, present, scores_of))
    return chosen


def _split_scores(image_scores: pd.DataFrame, image_ids: list[str], split: str, stage: str) -> pd.DataFrame:
    """image_id, miou of one stage for every image of a split (NaN where the image has no mask, so no score)."""
    rows = image_scores[(image_scores["split"] == split) & (image_scores["stage"] == stage)]
    miou = dict(zip(rows["image_id"], rows["miou"]))
    return pd.DataFrame({"image_id": image_ids, "miou": [miou.get(i, np.nan) for i in image_ids]})


def _truth(dataset: Dataset, image_id: str, num_classes: int) -> np.ndarray | None:
    """An image's mask, or None where it has none."""
    path = dataset.mask_path(image_id)
    return None if path is None else read_mask(path, num_classes)
