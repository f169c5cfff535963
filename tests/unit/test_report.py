"""The report's figures: overlays, gallery selection and files, score plots, per-image scores."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from wsss.data.labels import image_labels
from wsss.data.voc import IGNORE, VOC_CLASSES, read_mask, save_npy, write_mask
from wsss.scoring.evaluate import evaluate_label_maps, image_scores_table, label_map_predictor, per_image_scores
from wsss.scoring.figures import (
    DPI,
    IGNORE_COLOUR,
    MASK_ALPHA,
    PALETTE,
    TrainGalleryRun,
    cam_heatmap,
    class_iou_figure,
    colour_mask,
    confusion_figure,
    gallery_file_name,
    miou_by_stage_figure,
    normalised_confusion,
    overlay_mask,
    save_figure,
    select_gallery,
    training_curves_figure,
    write_train_gallery,
    write_val_gallery,
)
from wsss.scoring.metrics import mean_iou


def png_size(path):
    with Image.open(path) as image:
        return image.size


def test_overlay_colours_match_the_mask_classes(rng):
    image = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    mask = np.zeros((20, 30), np.uint8)
    mask[2:8, 3:12] = 8  # cat
    mask[10:18, 15:28] = 15  # person
    mask[0, :] = IGNORE
    out = overlay_mask(image, mask)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert (out[mask == IGNORE] == IGNORE_COLOUR).all()
    for class_id in (0, 8, 15):
        pixels = mask == class_id
        # undo the blend: what was painted over the image is the class's palette colour
        painted = (out[pixels].astype(float) - (1 - MASK_ALPHA) * image[pixels]) / MASK_ALPHA
        assert np.abs(painted - PALETTE[class_id]).max() <= 1 / MASK_ALPHA + 1e-6
    # on a grey image, the classes come out in different colours
    grey = overlay_mask(np.full_like(image, 128), mask)
    colours = {tuple(grey[mask == c][0]) for c in (0, 8, 15, IGNORE)}
    assert len(colours) == 4


def test_colour_mask_and_size_check():
    mask = np.array([[0, 1], [8, IGNORE]], np.uint8)
    colours = colour_mask(mask)
    assert tuple(colours[0, 0]) == (0, 0, 0) and tuple(colours[0, 1]) == tuple(PALETTE[1])
    assert tuple(colours[1, 0]) == (64, 0, 0) and tuple(colours[1, 1]) == IGNORE_COLOUR  # VOC cat, ignore
    with pytest.raises(ValueError, match="differ in size"):
        overlay_mask(np.zeros((3, 3, 3), np.uint8), mask)


def test_cam_heatmap_is_red_where_the_cam_fires():
    image = np.full((10, 10, 3), 128, np.uint8)
    cam = np.zeros((10, 10), np.float16)
    cam[:, 5:] = 1
    heat = cam_heatmap(image, cam).astype(int)
    assert heat[0, 9, 0] > heat[0, 9, 2]  # red at 1
    assert heat[0, 0, 2] > heat[0, 0, 0]  # blue at 0


def test_select_gallery_is_seeded_and_ranks_by_iou():
    scores = pd.DataFrame({"image_id": [f"im{i:02d}" for i in range(40)], "miou": np.linspace(0, 1, 40)[::-1]})
    chosen = select_gallery(scores, sample_size=12, best=4, worst=4, seed=0)
    assert list(chosen["selection"].value_counts().sort_index()) == [4, 12, 4]  # best, sample, worst
    sample = chosen[chosen["selection"] == "sample"]["image_id"].tolist()
    assert sample == sorted(sample) and len(set(sample)) == 12
    assert chosen[chosen["selection"] == "best"]["image_id"].tolist() == ["im00", "im01", "im02", "im03"]
    assert chosen[chosen["selection"] == "worst"]["image_id"].tolist() == ["im39", "im38", "im37", "im36"]
    assert list(chosen[chosen["selection"] == "best"]["rank"]) == [1, 2, 3, 4]
    pd.testing.assert_frame_equal(chosen, select_gallery(scores, 12, 4, 4, seed=0))
    other = select_gallery(scores, 12, 4, 4, seed=1)
    assert other[other["selection"] == "sample"]["image_id"].tolist() != sample
    assert len(select_gallery(scores.head(5), 12, 0, 0, seed=0)) == 5  # never more than there are
    only = select_gallery(scores, 0, 2, 2, seed=0, rankable=["im05", "im09", "im20"])
    assert only["image_id"].tolist() == ["im05", "im09", "im20", "im09"]


def test_gallery_file_name():
    name = gallery_file_name(3, "2007_000032", ["aeroplane", "person"], {"iou": 0.81234})
    assert name == "03__2007_000032__aeroplane+person__iou0.812.png"
    assert gallery_file_name(1, "x", [], {"seg": 0.5, "fs": 1.0}) == "01__x__none__seg0.500__fs1.000.png"
    with pytest.raises(ValueError, match="may not contain"):
        gallery_file_name(1, "a__b", ["cat"], {"iou": 0.5})


def test_per_image_scores_match_the_stage_score(demo_data, num_classes, tmp_path):
    """A single image's mIoU is the stage mIoU of that image alone; a perfect map scores 1."""
    truths = {i: read_mask(demo_data.mask_path(i), num_classes) for i in demo_data.split_ids("train")}
    ids = [i for i, truth in truths.items() if ((truth > 0) & (truth != IGNORE)).any()][:4]
    (tmp_path / "pred").mkdir()
    for image_id in ids:
        prediction = truths[image_id].copy()
        if image_id == ids[0]:
            prediction[: prediction.shape[0] // 2] = 0  # top half called background
            prediction[prediction.shape[0] // 2 :] = prediction.max(initial=0, where=prediction != IGNORE)
        write_mask(tmp_path / "pred" / f"{image_id}.png", prediction)

    frame = per_image_scores(demo_data, ids, num_classes, label_map_predictor([tmp_path / "pred"], num_classes))
    assert frame["image_id"].tolist() == ids
    assert frame.loc[1:, "miou"].tolist() == [1.0, 1.0, 1.0]
    alone = evaluate_label_maps(demo_data, ids[:1], [tmp_path / "pred"], num_classes)
    assert frame.loc[0, "miou"] == pytest.approx(mean_iou(alone["confusion"])) and frame.loc[0, "miou"] < 1


@pytest.fixture(scope="module")
def fake_run(demo_data, tmp_path_factory):
    """Per-image outputs of a pretend run on the demo tree: CAMs, CRF, pseudo-masks and predictions
    derived from the ground truth, plus the per-image score table (computed, not typed)."""
    root = tmp_path_factory.mktemp("run")
    num_classes = len(VOC_CLASSES)
    train, val = demo_data.split_ids("train"), demo_data.split_ids("val")
    labels_frame = image_labels(demo_data, train + val, num_classes)
    labels = {row.image_id: list(row.class_ids) for row in labels_frame.itertuples()}
    folders = {name: root / name for name in ("r0", "r1", "merged", "crf", "pseudo", "seg", "fs")}
    for folder in folders.values():
        folder.mkdir()
    for k, image_id in enumerate(train):
        truth = read_mask(demo_data.mask_path(image_id), num_classes)
        cams = np.array([truth == c for c in labels[image_id]], np.float16).reshape(-1, *truth.shape)
        save_npy(folders["r0"] / f"{image_id}.npy", (cams * 0.9).astype(np.float16))
        save_npy(folders["r1"] / f"{image_id}.npy", cams)
        save_npy(folders["merged"] / f"{image_id}.npy", cams)
        crf = np.where(truth == IGNORE, 0, truth).astype(np.uint8)
        write_mask(folders["crf"] / f"{image_id}.png", crf)
        pseudo = truth.copy()
        pseudo[: k % truth.shape[0]] = IGNORE  # a different ignored band per image
        pseudo[truth.shape[0] - k :, :] = 0  # and a different amount of lost foreground
        write_mask(folders["pseudo"] / f"{image_id}.png", pseudo)
    for image_id in val:
        truth = read_mask(demo_data.mask_path(image_id), num_classes)
        write_mask(folders["seg"] / f"{image_id}.png", np.zeros_like(truth))
        write_mask(folders["fs"] / f"{image_id}.png", np.where(truth == IGNORE, 0, truth).astype(np.uint8))
    specs = {
        "cam_r0": dict(kind="cam", inputs=[folders["r0"]], split="train", thresholds=[0.5]),
        "cam_r1": dict(kind="cam", inputs=[folders["r1"]], split="train", thresholds=[0.5]),
        "cam": dict(kind="cam", inputs=[folders["merged"]], split="train", thresholds=[0.5]),
        "crf": dict(kind="labels", inputs=[folders["crf"]], split="train", thresholds=[]),
        "pseudo_mask": dict(kind="labels", inputs=[folders["pseudo"]], split="train", thresholds=[]),
        "segmentation": dict(kind="labels", inputs=[folders["seg"]], split="val", thresholds=[]),
        "fully_supervised": dict(kind="labels", inputs=[folders["fs"]], split="val", thresholds=[]),
    }
    scores = image_scores_table(demo_data, specs, labels, num_classes)
    return dict(root=root, folders=folders, labels=labels, scores=scores, train=train, val=val)


def test_image_scores_table(fake_run):
    scores = fake_run["scores"]
    assert list(scores.columns) == [
        "stage",
        "split",
        "image_id",
        "miou",
        "pixel_accuracy",
        "coverage",
        "confident_precision",
    ]
    counts = scores.groupby("stage").size()
    assert counts["pseudo_mask"] == len(fake_run["train"]) and counts["segmentation"] == len(fake_run["val"])
    by_stage = scores.groupby("stage")["miou"]
    assert by_stage.min()["cam_r1"] == 1.0 and by_stage.min()["fully_supervised"] == 1.0  # perfect maps
    assert by_stage.max()["segmentation"] < 1  # all background misses every object
    pseudo = scores[scores["stage"] == "pseudo_mask"]
    assert pseudo["coverage"].min() < 1 and scores.loc[scores["stage"] == "crf", "coverage"].eq(1).all()


def fake_train_gallery(demo_data, run, settings, out):
    """The fake run's train gallery: two rounds, CRF and pseudo-mask panels, ranked by pseudo-mask IoU."""
    gallery_run = TrainGalleryRun(
        dataset=demo_data,
        labels=run["labels"],
        image_scores=run["scores"],
        round_cam_dirs=[[run["folders"]["r0"]], [run["folders"]["r1"]]],
        merged_cam_dirs=[run["folders"]["merged"]],
        label_map_dirs={"crf": [run["folders"]["crf"]], "pseudo_mask": [run["folders"]["pseudo"]]},
        class_names=list(VOC_CLASSES),
        bg_threshold=0.5,
    )
    return write_train_gallery(gallery_run, "train", "pseudo_mask", settings, out)


def test_train_gallery_files(demo_data, fake_run, tmp_path):
    run = fake_run
    settings = {"sample_size": 3, "best": 2, "worst": 2, "seed": 0}
    out = tmp_path / "train_gallery"
    chosen = fake_train_gallery(demo_data, run, settings, out)
    files = sorted(out.glob("*/*.png"))
    assert len(files) == len(chosen) == 7
    assert {p.parent.name for p in files} == {"sample", "best", "worst"}
    pseudo = run["scores"][run["scores"]["stage"] == "pseudo_mask"].set_index("image_id")["miou"]
    best = [p.name.split("__") for p in (out / "best").glob("*.png")]
    worst = [p.name.split("__") for p in (out / "worst").glob("*.png")]
    assert min(pseudo[f[1]] for f in best) >= max(pseudo[f[1]] for f in worst)
    assert all(run["labels"][f[1]] for f in best + worst)  # background-only images are not ranked
    for path in files:
        rank, image_id, classes, iou = path.stem.split("__")
        assert classes == ("+".join(VOC_CLASSES[c] for c in run["labels"][image_id]) or "none")
        assert float(iou[3:]) == pytest.approx(pseudo[image_id], abs=5e-4)
        # panels: image + 2 rounds x classes + merged, CRF, pseudo-mask, ground truth
        panels = 1 + 2 * len(run["labels"][image_id]) + 4
        width, height = png_size(path)
        assert width == pytest.approx(panels * 1.7 * DPI, abs=2) and height == pytest.approx(2.6 * DPI, abs=2)
        assert path.stat().st_size > 5000


def test_train_gallery_wraps_large_panels_into_rows(demo_data, fake_run, tmp_path):
    """report.panel_inches and report.columns (config/photos.yaml): rows of at most `columns` panels of that size."""
    run = fake_run
    settings = {"sample_size": 3, "best": 0, "worst": 0, "seed": 0, "panel_inches": 3.2, "columns": 4}
    out = tmp_path / "train_gallery"
    fake_train_gallery(demo_data, run, settings, out)
    files = sorted(out.glob("*/*.png"))
    assert len(files) == 3
    for path in files:
        image_id = path.stem.split("__")[1]
        panels = 1 + 2 * len(run["labels"][image_id]) + 4
        rows = -(-panels // 4)
        width, height = png_size(path)
        assert width == pytest.approx(min(panels, 4) * 3.2 * DPI, abs=2)
        assert height == pytest.approx((rows * 3.6 + 0.5) * DPI, abs=2)


def test_val_gallery_files(demo_data, fake_run, tmp_path):
    run = fake_run
    out = tmp_path / "val_gallery"
    write_val_gallery(
        demo_data,
        run["scores"],
        "val",
        {"val_sample_size": 5, "seed": 0},
        [run["folders"]["seg"]],
        [run["folders"]["fs"]],
        list(VOC_CLASSES),
        out,
    )
    files = sorted(out.glob("*.png"))
    assert len(files) == 5 and files[0].name.startswith("01__")
    for path in files:
        seg, fs = path.stem.split("__")[3:]
        assert fs == "fs1.000" and float(seg[3:]) < 1
        assert png_size(path) == pytest.approx((4 * 1.7 * DPI, 2.6 * DPI), abs=2)


def test_normalised_confusion():
    confusion = np.array([[8, 2, 0], [1, 3, 0], [0, 0, 0]])
    normalised = normalised_confusion(confusion)
    assert normalised[0].tolist() == [0.8, 0.2, 0.0] and normalised[1].sum() == pytest.approx(1)
    assert normalised[2].tolist() == [0, 0, 0]  # empty row stays 0


def test_score_figures_are_written(tmp_path):
    classes = list(VOC_CLASSES)
    per_class = pd.DataFrame(
        {
            "stage": ["cam_r0", "cam_r0", "crf", "crf", "segmentation", "segmentation"],
            "split": ["train", "train", "train", "train", "val", "val"],
            "class_id": [0, 8, 0, 8, 0, 8],
            "class_name": ["background", "cat"] * 3,
            "iou": [0.7, 0.3, 0.8, 0.5, 0.75, 0.4],
            "present": True,
        }
    )
    summary = pd.DataFrame(
        {
            "stage": ["cam_r0", "cam", "cam_oracle", "crf", "segmentation", "fully_supervised"],
            "split": ["train"] * 4 + ["val"] * 2,
            "miou": [0.4, 0.45, 0.5, 0.6, 0.35, 0.45],
            "oracle": [False, False, True, False, False, False],
        }
    )
    confusion = np.zeros((21, 21), np.int64)
    confusion[0, 0], confusion[0, 8], confusion[8, 8], confusion[8, 0] = 90, 10, 30, 10
    history = [
        pd.DataFrame({"epoch": [1, 2, 3], "loss": [0.7, 0.5, 0.4], "mAP": [0.3, 0.6, 0.8], "round": r}) for r in (0, 1)
    ]
    figures = {
        "class_iou.png": class_iou_figure(per_class, ["cam_r0", "crf", "segmentation"]),
        "miou.png": miou_by_stage_figure(summary),
        "confusion.png": confusion_figure(confusion, classes, "test"),
        "curves.png": training_curves_figure(history),
    }
    for name, figure in figures.items():
        save_figure(figure, tmp_path / name)
        width, height = png_size(tmp_path / name)
        assert width >= 400 and height >= 300 and (tmp_path / name).stat().st_size > 10_000
    assert not list(tmp_path.glob(".*.tmp"))
    # the line leaves the oracle out and draws the fully-supervised reference separately
    ax = figures["miou.png"].axes[0]
    assert [t.get_text().split("\n")[0] for t in ax.get_xticklabels()] == [
        "CAM round 0",
        "merged CAM",
        "CRF",
        "segmentation",
    ]
    assert ax.lines[0].get_ydata().tolist() == [0.4, 0.45, 0.6, 0.35]
    assert not ax.containers[0].has_yerr or not np.any(ax.containers[0].lines[2][0].get_segments())
    # the confusion matrix shows only classes seen in truth or prediction, rows normalised
    labels = [t.get_text() for t in figures["confusion.png"].axes[0].get_yticklabels()]
    assert labels == ["background", "cat"]


def test_stage_plot_over_seeds_draws_error_bars_per_experiment(tmp_path):
    """A summary over seeds: one line per experiment, mean ± sd error bars, stages placed by name (an
    experiment with fewer erasing rounds skips a tick)."""
    rows = []
    for name, stages in {
        "one_round": ["cam_r0", "cam", "segmentation"],
        "two_rounds": ["cam_r0", "cam_r1", "cam", "segmentation"],
    }.items():
        for k, stage in enumerate(stages + ["fully_supervised"]):
            rows.append(
                {
                    "experiment": name,
                    "stage": stage,
                    "split": "val" if "seg" in stage or "fully" in stage else "train",
                    "miou": 0.3 + 0.05 * k,
                    "miou_sd": 0.02,
                    "seeds": 3,
                    "oracle": False,
                }
            )
    figure = miou_by_stage_figure(pd.DataFrame(rows))
    save_figure(figure, tmp_path / "seeds.png")
    ax = figure.axes[0]
    assert [t.get_text().split("\n")[0] for t in ax.get_xticklabels()] == [
        "CAM round 0",
        "CAM round 1",
        "merged CAM",
        "segmentation",
    ]
    first, second = ax.containers[:2]
    assert first.lines[0].get_xdata().tolist() == [0, 2, 3] and second.lines[0].get_xdata().tolist() == [0, 1, 2, 3]
    bars = first.lines[2][0].get_segments()
    assert [round(float(b[1, 1] - b[0, 1]), 6) for b in bars] == [0.04] * 3  # ± one sd
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "one_round (mean ± sd over 3 seeds)" in legend
    assert any(t.startswith("fully supervised (val): ") and t.endswith(" ± 0.020") for t in legend)
