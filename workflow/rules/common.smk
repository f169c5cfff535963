# Helpers shared across the workflow: the data source, paths, shard lists, the stages and their inputs.
import os
import re

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

# torch/torchvision cache here, inside the project, should anything try to download in a job.
os.environ.setdefault("TORCH_HOME", os.path.abspath("resources/torch"))

ROUNDS = list(range(config["erasing"]["rounds"]))
SHARDS = list(range(config["shards"]))


def existing_dir(key):
    """The directory a config key points at; a clear error names the key when it is not there."""
    path = config.get(key)
    if path and not os.path.isdir(path):
        raise WorkflowError(f"config key {key}: {path!r} is not a directory")
    return path


# Where the data comes from: an existing tree (voc_root / sbd_root), else a verified download when
# mirrors are configured, else (VOC only) the built-in demo dataset.
# The literature's data: VOC 2012 trainval and the SBD release (Hariharan et al.) used for train_aug;
# their published md5 sums are config values (download.voc.md5, download.sbd.md5).
ARCHIVES = {"voc": "VOCtrainval_11-May-2012.tar", "sbd": "benchmark.tgz"}
DOWNLOAD_SETTINGS = {key: config["download"][key] for key in ("retries", "backoff_s", "timeout_s")}
DOWNLOADED = {"VOC2012": dict(source="voc", member_root="VOCdevkit/VOC2012",
                              keep=["JPEGImages", "SegmentationClass", "ImageSets/Segmentation"]),
              "SBD": dict(source="sbd", member_root="benchmark_RELEASE/dataset", keep=["cls", "train.txt", "val.txt"])}
ARCHIVE_SOURCE = {file: source for source, file in ARCHIVES.items()}
VOC_ROOT = existing_dir("voc_root") or ("resources/VOC2012" if config["download"]["voc"]["mirrors"] else "resources/demo/VOC2012")
SBD_ROOT = existing_dir("sbd_root") or ("resources/SBD" if config["download"]["sbd"]["mirrors"] else None)
DATASET = "results/data"  # the dataset index every step reads: lists, SBD masks, where the images are
LABELS = "results/labels/image_labels.parquet"

SPLITS = dict(config["splits"])
if SPLITS["train"] == "train_aug" and SBD_ROOT is None:
    logger.warning("No SBD configured (sbd_root or download.sbd): training on VOC train instead of train_aug.")
    SPLITS["train"] = "train"
SUPERVISION = {"segmentation": "pseudo_mask", "fully_supervised": "ground_truth"}
# Sections of the HTML report (snakemake --report), in reading order.
SCORES_CATEGORY = "1. Scores"
TRAIN_GALLERY_CATEGORY = "2. Train gallery: CAMs to pseudo-masks"
VAL_GALLERY_CATEGORY = "3. Val gallery: segmentation"
TRAINING_CATEGORY = "4. Classifier training"

def cam_shards(round_):
    return expand("results/cams/r{round}/shard{shard}", round=round_, shard=SHARDS)


def earlier_cam_shards(wildcards):
    """CAM shards of every round before this one: what this round's classifier has erased."""
    return [d for r in range(int(wildcards.round)) for d in cam_shards(r)]


def stages():
    """Every scored stage, in pipeline order."""
    names = [f"cam_r{r}" for r in ROUNDS] + ["cam"]
    if config["cam"]["oracle_thresholds"]:
        names.append("cam_oracle")
    return names + ["crf", "pseudo_mask", "segmentation", "fully_supervised"]


def all_artifacts():
    """Every model and per-shard output directory of the workflow."""
    return (
        expand("results/classifier/r{round}/model.pt", round=ROUNDS)
        + [d for r in ROUNDS for d in cam_shards(r)]
        + expand("results/{stage}/shard{shard}", stage=["cams/merged", "crf", "pseudo_masks"], shard=SHARDS)
        + expand("results/segmentation/{supervision}/predictions", supervision=SUPERVISION.values())
    )


def segmentation_masks(wildcards):
    if wildcards.supervision == "pseudo_mask":
        return expand("results/pseudo_masks/shard{shard}", shard=SHARDS)
    return []


def stage_spec(stage):
    """What a stage scores: its per-image outputs, their kind, the split, the CAM thresholds."""
    seed_eval, val = config["splits"]["seed_eval"], config["splits"]["val"]
    merged = expand("results/cams/merged/shard{shard}", shard=SHARDS)
    threshold = [config["cam"]["eval_threshold"]]
    if stage.startswith("cam_r"):
        return dict(kind="cam", inputs=cam_shards(int(stage[5:])), split=seed_eval, thresholds=threshold)
    if stage == "cam":
        return dict(kind="cam", inputs=merged, split=seed_eval, thresholds=threshold)
    if stage == "cam_oracle":
        return dict(kind="cam_oracle", inputs=merged, split=seed_eval, thresholds=config["cam"]["oracle_thresholds"])
    if stage in ("crf", "pseudo_mask"):
        folder = "crf" if stage == "crf" else "pseudo_masks"
        return dict(kind="labels", inputs=expand(f"results/{folder}/shard{{shard}}", shard=SHARDS), split=seed_eval, thresholds=[])
    return dict(kind="labels", inputs=[f"results/segmentation/{SUPERVISION[stage]}/predictions"], split=val, thresholds=[])


def pretrained_weights(settings):
    """The ImageNet weights file a network starts from, or nothing for a random initialisation."""
    arch = settings.get("backbone", settings["arch"])
    return [f"resources/weights/{arch}.{settings['pretrained']}.pth"] if settings.get("pretrained") else []


def per_image_stages():
    """The stages scored image by image (the oracle is a threshold sweep over the whole split)."""
    return [stage for stage in stages() if stage != "cam_oracle"]
