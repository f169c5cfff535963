"""The workflow on data in the published VOC 2012 / SBD layouts: an existing tree (its JPEGs grayscale, CMYK or
EXIF-rotated in turn, as photos come), or the download rules."""

import hashlib
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from tests.servers import FileServer
from tests.voc_data import PHOTO_KINDS, make_voc_and_sbd, tar_bytes
from tests.workflow_helpers import (
    DEFAULT_WEIGHTS,
    REPO,
    TINY,
    copy_workflow,
    job_counts,
    planned_jobs,
    resource_files,
    run,
)
from wsss.data.datasets import Dataset
from wsss.data.voc import read_mask, voc_palette
from wsss.data.voc_sbd import read_sbd_mask

# Demo-sized training on the tree: one erasing round and one shard keep the test short.
VOC_TINY = {
    **TINY,
    "shards": 1,
    "classifier": {**TINY["classifier"], "epochs": 1},
    "erasing": {"rounds": 1},
    "splits": {"train": "train_aug"},
}


def workflow_copy(root, overrides):
    return copy_workflow(root, {**VOC_TINY, **overrides})


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_voc_and_sbd(tmp_path_factory.mktemp("voc"), stored_as=PHOTO_KINDS)


def tree_settings(data) -> tuple[str, ...]:
    """The existing tree's keys on the command line, after the targets (as the README gives them)."""
    voc, sbd, _ = data
    return ("--config", f"voc_root={voc}", f"sbd_root={sbd}")


@pytest.fixture(scope="module")
def existing(data, tmp_path_factory):
    workdir = workflow_copy(tmp_path_factory.mktemp("existing") / "w", {})
    run(workdir, "results/miou.parquet", *tree_settings(data))
    return workdir


def test_existing_tree_runs_end_to_end_on_train_aug(data, existing):
    voc, sbd, train_aug = data
    lists = existing / "results" / "data" / "lists"
    assert (lists / "train_aug.txt").read_text().split() == train_aug
    summary = pd.read_parquet(existing / "results" / "summary.parquet").set_index("stage")
    voc_train = (voc / "ImageSets/Segmentation/train.txt").read_text().split()
    assert summary.loc["cam", "num_images"] == len(voc_train)  # seeds scored on VOC train
    assert summary.loc["pseudo_mask", "num_images"] == len(voc_train)
    assert summary.loc["segmentation", "num_images"] == 6  # the network on val
    assert {"cam", "crf", "pseudo_mask", "segmentation", "fully_supervised"} <= set(summary.index)
    assert summary["miou"].between(0, 1).all()
    # CAMs (each round's and the merged ones) and pseudo-masks cover all of train_aug
    for folder in ("cams/r0", "cams/merged"):
        assert sorted(p.stem for p in (existing / "results" / folder).glob("shard*/*.npy")) == train_aug
    assert sorted(p.stem for p in (existing / "results/pseudo_masks").glob("shard*/*.png")) == train_aug
    assert resource_files(existing) == [DEFAULT_WEIGHTS]  # nothing downloaded, no demo built; the package's weights


def test_every_artefact_has_its_images_stored_size(data, existing):
    """Grayscale, CMYK and EXIF-rotated JPEGs are read as RGB at their stored size (their masks' size): CAMs,
    pseudo-masks and predictions have it, whatever size the networks see (cam/segmentation.long_side)."""
    voc, _, _ = data
    modes = {Image.open(p).mode for p in (voc / "JPEGImages").glob("*.jpg")}
    assert modes == {"RGB", "L", "CMYK"}
    tree = Dataset.open(existing / "results/data")
    sizes = {p.stem: Image.open(p).size[::-1] for p in (voc / "JPEGImages").glob("*.jpg")}
    labels = pd.read_parquet(existing / "results/labels/image_labels.parquet").set_index("image_id")
    for folder in ("cams/r0", "cams/merged"):
        for path in (existing / "results" / folder).glob("shard*/*.npy"):
            assert np.load(path).shape == (len(labels.loc[path.stem, "class_ids"]), *sizes[path.stem]), path
    for path in (existing / "results/pseudo_masks").glob("shard*/*.png"):
        assert read_mask(path, 21).shape == sizes[path.stem], path
    for supervision in ("pseudo_mask", "ground_truth"):
        predictions = sorted((existing / "results/segmentation" / supervision / "predictions").glob("*.png"))
        assert [p.stem for p in predictions] == sorted(tree.split_ids("val"))
        for path in predictions:
            assert read_mask(path, 21).shape == sizes[path.stem], path
    rows = pd.read_parquet(existing / "results/miou.parquet")
    summary = pd.read_parquet(existing / "results/summary.parquet")
    assert set(summary["stage"]) <= set(rows["stage"])
    assert rows.loc[rows["present"], "iou"].notna().all() and rows["iou"].dropna().between(0, 1).all()


def test_another_long_side_reruns_only_what_it_decides(data, existing):
    """The networks are not retrained for another prediction size; another CAM size retrains only the network
    on the new pseudo-masks (the fully-supervised one is kept)."""
    (existing / "seg48.yaml").write_text("segmentation: {long_side: 48}\n")
    (existing / "cam48.yaml").write_text("cam: {long_side: 48}\n")
    replan = {
        name: job_counts(
            run(
                existing, "-n", "results/miou.parquet", *tree_settings(data), configfiles=("tiny.yaml", f"{name}.yaml")
            ).stdout
        )
        for name in ("seg48", "cam48")
    }
    assert replan["seg48"] == {"predict_segmentation": 2, "evaluate_stage": 2, "miou_table": 1}
    assert "train_classifier" not in replan["cam48"] and replan["cam48"]["cams"] == 1
    assert replan["cam48"]["train_segmentation"] == 1


def test_sbd_masks_are_converted_for_images_voc_does_not_annotate(data, existing):
    voc, sbd, train_aug = data
    converted = sorted((existing / "results/data/masks").glob("*.png"))
    without_voc_mask = [i for i in train_aug if not (voc / "SegmentationClass" / f"{i}.png").exists()]
    assert [p.stem for p in converted] == without_voc_mask and len(converted) == 8
    for path in converted:
        np.testing.assert_array_equal(read_mask(path, 21), read_sbd_mask(sbd / "cls" / f"{path.stem}.mat", 21))


def test_download_rules_fetch_verify_and_extract_the_same_dataset(data, existing, tmp_path):
    voc, sbd, _ = data
    voc_tar = tar_bytes(voc.parent, "VOCdevkit")
    sbd_tgz = tar_bytes(sbd.parent, "benchmark_RELEASE", mode="w:gz")
    files = {"VOCtrainval_11-May-2012.tar": voc_tar, "benchmark.tgz": sbd_tgz}
    with FileServer(files) as server:
        download = {
            "voc": {
                "mirrors": [f"{server.url}/gone/", f"{server.url}/files/"],
                "md5": hashlib.md5(voc_tar).hexdigest(),
            },
            "sbd": {"mirrors": [f"{server.url}/files/"], "md5": hashlib.md5(sbd_tgz).hexdigest()},
            "weights": [],
            "retries": 1,
            "backoff_s": 0,
            "timeout_s": 10,
        }
        workdir = workflow_copy(tmp_path / "w", {"download": download})
        run(workdir, "results/labels/image_labels.parquet")
    assert sorted(p.name for p in (workdir / "resources/VOC2012").glob("[!.]*")) == [
        "ImageSets",
        "JPEGImages",
        "SegmentationClass",
    ]
    assert sorted(p.name for p in (workdir / "resources/SBD").glob("[!.]*")) == ["cls", "train.txt", "val.txt"]
    for name in ("train", "val", "train_aug"):
        assert (workdir / f"results/data/lists/{name}.txt").read_text() == (
            existing / f"results/data/lists/{name}.txt"
        ).read_text()
    pd.testing.assert_frame_equal(
        pd.read_parquet(workdir / "results/labels/image_labels.parquet"),
        pd.read_parquet(existing / "results/labels/image_labels.parquet"),
    )
    assert planned_jobs(workdir, "results/labels/image_labels.parquet") == {}  # the server is gone: nothing refetched


def test_without_sbd_the_workflow_trains_on_train_and_says_so(data, tmp_path):
    voc, _, _ = data
    workdir = workflow_copy(tmp_path / "w", {"voc_root": str(voc)})
    result = run(workdir, "-n", "results/miou.parquet")
    assert "training on VOC train instead of train_aug" in result.stdout + result.stderr
    assert "download_archive" not in result.stdout


def test_missing_voc_root_names_the_key(tmp_path):
    workdir = workflow_copy(tmp_path / "w", {"voc_root": str(tmp_path / "nowhere")})
    result = run(workdir, "-n", check=False)
    assert result.returncode != 0 and "config key voc_root" in result.stderr + result.stdout


def test_mask_ids_beyond_the_class_list_name_the_file_and_value(data, tmp_path):
    voc, _, _ = data
    tree = tmp_path / "VOC2012"
    shutil.copytree(voc, tree)
    bad = sorted((tree / "SegmentationClass").glob("*.png"))[0]
    mask = read_mask(bad, 21).copy()
    mask[0, 0] = 30
    image = Image.fromarray(mask)
    image.putpalette(voc_palette())
    image.save(bad)
    workdir = workflow_copy(tmp_path / "w", {"voc_root": str(tree)})
    result = run(workdir, "results/labels/image_labels.parquet", check=False)
    assert result.returncode != 0
    log = (workdir / "logs/image_labels.log").read_text()
    assert f"mask {bad} has class id 30" in log and "21 classes" in log
    assert (workdir / "results/data/lists/train.txt").exists()  # the finished index is kept


def test_voc_config_plans_the_full_experiment_with_downloads_first(tmp_path):
    """config/voc2012.yaml from a fresh tree: the data and weights come only through the download rules, and
    it plans IRN's chain only: one classifier (no erasing), IRN, the walk, DeepLab v2 on its labels + its bound,
    every network on ResNet-50."""
    workdir = workflow_copy(tmp_path / "w", {})
    result = run(workdir, "-n", "results/miou.parquet", configfiles=("config/voc2012.yaml",))
    jobs = job_counts(result.stdout)
    assert jobs["download_archive"] == 2 and jobs["extract_archive"] == 2 and jobs["pretrained_weights"] == 1
    assert jobs["train_classifier"] == 1 and jobs["cams"] == 16 and jobs["crf"] == 16 and jobs["train_irn"] == 1
    assert jobs["random_walk"] == 16 and jobs["train_segmentation"] == 2
    assert "demo_dataset" not in jobs and "merge_cams" in jobs
    assert "resources/weights/resnet50.IMAGENET1K_V1.pth" in result.stdout
    assert "results/segmentation/random_walk/model.pt" in result.stdout
    assert not (workdir / "resources").exists()
    segmentation = yaml.safe_load((REPO / "config/voc2012.yaml").read_text())["segmentation"]
    network = (segmentation["arch"], segmentation["backbone"], segmentation["output_stride"])
    assert network == ("deeplabv2", "resnet50", 8)
    assert segmentation["inference"]["crf"] is not None
