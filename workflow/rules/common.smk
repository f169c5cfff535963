# Helpers shared across the workflow: the data source, paths, shard lists, the stages and their inputs.
import os
import re

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

from wsss.pipeline.experiments import DEFAULT, ExperimentError, Grid, cam_settings

# torch/torchvision cache here, inside the project, should anything try to download in a job.
os.environ.setdefault("TORCH_HOME", os.path.abspath("resources/torch"))

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

# The runs: the config itself, or each entry of its `experiments` grid (the config with that entry's
# overrides), each once per training seed when `seeds` replicates them. A run's files live under
# results/<folder>, where the folder is "" for a single run and "<run name>/" otherwise ("<experiment>/",
# "seed<k>/" or "<experiment>/seed<k>/"); a step whose settings equal an earlier run's is read from that
# one's folder instead of being run again (wsss.pipeline.experiments).
try:
    GRID = Grid(config)
except ExperimentError as error:
    raise WorkflowError(str(error))
RUNS = GRID.names


def run_name(wildcards):
    """The run a job belongs to, from its {expdir} wildcard."""
    return GRID.name_of(wildcards.expdir)


def settings(wildcards):
    """The full config of the job's run."""
    return GRID.configs[run_name(wildcards)]


def rounds(name):
    return list(range(GRID.configs[name]["erasing"]["rounds"]))


def step_dir(name, step, arg=None):
    """results/<owner's folder>: where the experiment reads this step's files from."""
    return f"results/{GRID.owner_folder(name, step, arg)}"


def classifier_file(name, round_, file="model.pt"):
    return f"{step_dir(name, 'classifier', round_)}classifier/r{round_}/{file}"


def cam_shards(name, round_):
    return [f"{step_dir(name, 'cams', round_)}cams/r{round_}/shard{shard}" for shard in SHARDS]


def shard_dirs(name, step):
    """The per-shard folders of merged (cams/merged), crf or pseudo_masks."""
    folder = {"merged": "cams/merged"}.get(step, step)
    return [f"{step_dir(name, step)}{folder}/shard{shard}" for shard in SHARDS]


def segmentation_file(name, supervision, file):
    return f"{step_dir(name, 'segmentation', supervision)}segmentation/{supervision}/{file}"


def metrics_file(name, stage):
    return f"{step_dir(name, 'metrics', stage)}metrics/{stage}.npz"


def earlier_cam_shards(wildcards):
    """CAM shards of every round before this one: what this round's classifier has erased."""
    name = run_name(wildcards)
    return [d for r in range(int(wildcards.round)) for d in cam_shards(name, r)]


def stages(name):
    """Every scored stage of an experiment, in pipeline order."""
    names = [f"cam_r{r}" for r in rounds(name)] + ["cam"]
    if GRID.configs[name]["cam"]["oracle_thresholds"]:
        names.append("cam_oracle")
    return names + ["crf", "pseudo_mask", "segmentation", "fully_supervised"]


def unique(paths):
    return list(dict.fromkeys(paths))


def all_artifacts():
    """Every model and per-shard output directory of every experiment (shared ones once)."""
    return unique(
        path
        for name in RUNS
        for path in (
            [classifier_file(name, r) for r in rounds(name)]
            + [d for r in rounds(name) for d in cam_shards(name, r)]
            + [d for step in ("merged", "crf", "pseudo_masks") for d in shard_dirs(name, step)]
            + [segmentation_file(name, supervision, "predictions") for supervision in SUPERVISION.values()]
        )
    )


def segmentation_masks(wildcards):
    if wildcards.supervision == "pseudo_mask":
        return shard_dirs(run_name(wildcards), "pseudo_masks")
    return []


def stage_spec(name, stage):
    """What a stage of an experiment scores: its per-image outputs, their kind, the split, the CAM thresholds."""
    seed_eval, val = config["splits"]["seed_eval"], config["splits"]["val"]
    cam = GRID.configs[name]["cam"]
    threshold = [cam["eval_threshold"]]
    if stage.startswith("cam_r"):
        return dict(kind="cam", inputs=cam_shards(name, int(stage[5:])), split=seed_eval, thresholds=threshold)
    if stage == "cam":
        return dict(kind="cam", inputs=shard_dirs(name, "merged"), split=seed_eval, thresholds=threshold)
    if stage == "cam_oracle":
        return dict(kind="cam_oracle", inputs=shard_dirs(name, "merged"), split=seed_eval,
                    thresholds=cam["oracle_thresholds"])
    if stage in ("crf", "pseudo_mask"):
        step = "crf" if stage == "crf" else "pseudo_masks"
        return dict(kind="labels", inputs=shard_dirs(name, step), split=seed_eval, thresholds=[])
    supervision = SUPERVISION[stage]
    return dict(kind="labels", inputs=[segmentation_file(name, supervision, "predictions")], split=val, thresholds=[])


def job_benchmarks(name):
    """(step, benchmark file) of every job that makes an experiment's pseudo-masks and segmentation network,
    shared jobs included: what the method costs from scratch (evaluation and the fully-supervised bound aside)."""
    jobs = [("classifier", f"{step_dir(name, 'classifier', r)}benchmarks/train_classifier/r{r}.tsv") for r in rounds(name)]
    jobs += [("cams", f"{step_dir(name, 'cams', r)}benchmarks/cams/r{r}/shard{s}.tsv") for r in rounds(name) for s in SHARDS]
    jobs += [(step, f"{step_dir(name, step)}benchmarks/{rule}/shard{s}.tsv") for step, rule in
             (("merged", "merge_cams"), ("crf", "crf"), ("pseudo_masks", "pseudo_masks")) for s in SHARDS]
    seg = step_dir(name, "segmentation", "pseudo_mask")
    jobs += [("segmentation", f"{seg}benchmarks/{rule}/pseudo_mask.tsv") for rule in ("train_segmentation", "predict_segmentation")]
    return jobs


def per_image_stages(name):
    """The stages scored image by image (the oracle is a threshold sweep over the whole split)."""
    return [stage for stage in stages(name) if stage != "cam_oracle"]


def pretrained_weights(settings):
    """The ImageNet weights file a network starts from, or nothing for a random initialisation."""
    arch = settings.get("backbone", settings["arch"])
    return [f"resources/weights/{arch}.{settings['pretrained']}.pth"] if settings.get("pretrained") else []
