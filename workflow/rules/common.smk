# What all rules files read: the runs (the config's experiments, each once per seed), where the data comes
# from, and where a run reads each step's files. The steps, their folders and their upstream steps are
# wsss.pipeline.registry's; the rules take their outputs and inputs from it through these helpers.
import os
import re

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.utils import validate

from wsss.data import kinds
from wsss.pipeline import registry
from wsss.pipeline.config_checks import config_errors
from wsss.pipeline.resources import segmentation_train_mem_mb
from wsss.pipeline.experiments import DEFAULT, ExperimentError, Grid

# torch/torchvision cache here, inside the project, should anything try to download in a job.
os.environ.setdefault("TORCH_HOME", os.path.abspath("resources/torch"))

SCHEMA = os.path.join(workflow.basedir, "workflow/schemas/config.schema.yaml")
with open(SCHEMA) as schema_file:
    SCHEMA_RULES = yaml.safe_load(schema_file)  # read once: the config and every experiment are checked


def check_config(values, where=""):
    """The schema's validation, after the mistakes wsss.pipeline.config_checks says in words (renamed keys,
    impossible combinations); where names an experiment."""
    errors = config_errors(values, SCHEMA_RULES, where)
    if errors:
        raise WorkflowError("\n".join(errors))
    try:
        validate(values, SCHEMA)
    except WorkflowError as error:
        raise WorkflowError(f"{where}{error}") if where else error


check_config(config)
SHARDS = list(range(config["shards"]))


def existing_path(key, path, folder=True):
    """A path a config key gives, checked: a clear error names the key when it is not there."""
    if not (os.path.isdir(path) if folder else os.path.isfile(path)):
        raise WorkflowError(f"config key {key}: {path!r} is not {'a directory' if folder else 'a file'}")
    return path


def existing_dir(key):
    """The directory a config key points at (None when unset)."""
    return existing_path(key, config[key]) if config.get(key) else None


# Downloads (when config download.<source>.mirrors are set), on the submit host. The literature's data: VOC 2012
# trainval and the SBD release (Hariharan et al.) used for train_aug, MS COCO 2014's images and annotations;
# their published md5 sums are config values (download.<source>.md5: one sum, or one per archive of the
# source). Archive -> its source:
ARCHIVES = {
    "VOCtrainval_11-May-2012.tar": "voc",
    "benchmark.tgz": "sbd",
    "train2014.zip": "coco",
    "val2014.zip": "coco",
    "annotations_trainval2014.zip": "coco",
}
# Where and how patiently a file is fetched (the mirrors, download.retries / backoff_s / timeout_s) is no param:
# the checksum decides what is accepted, so a changed mirror list or timeout refetches nothing and retrains no
# network. The scripts read them from the config (wsss.data.download.fetch_settings).
# resources/<folder> -> the archive it is extracted from and the part of it the workflow reads.
DOWNLOADED = {
    "VOC2012": dict(archive="VOCtrainval_11-May-2012.tar", member_root="VOCdevkit/VOC2012",
                    keep=["JPEGImages", "SegmentationClass", "ImageSets/Segmentation"]),
    "SBD": dict(archive="benchmark.tgz", member_root="benchmark_RELEASE/dataset", keep=["cls", "train.txt", "val.txt"]),
    "COCO2014/train2014": dict(archive="train2014.zip", member_root="train2014", keep=[]),
    "COCO2014/val2014": dict(archive="val2014.zip", member_root="val2014", keep=[]),
    "COCO2014/annotations": dict(archive="annotations_trainval2014.zip", member_root="annotations",
                                 keep=["instances_train2014.json", "instances_val2014.json"]),
}


def archive_md5(archive):
    """The published md5 of an archive (download.<source>.md5: the source's one, or its entry for the file)."""
    md5 = config["download"][ARCHIVES[archive]]["md5"]
    return md5.get(archive) if isinstance(md5, dict) else md5


def download_folder(path):
    """The resources/<folder> a missing path of the config lies in, when that folder is downloaded (its source
    has mirrors): the rule that extracts it makes the path. None otherwise."""
    for folder, spec in DOWNLOADED.items():
        inside = os.path.normpath(path) == f"resources/{folder}" or os.path.normpath(path).startswith(f"resources/{folder}/")
        if inside and config["download"][ARCHIVES[spec["archive"]]]["mirrors"]:
            return f"resources/{folder}"
    return None


# The data: a dataset kind (wsss.data.kinds) read once by the dataset_index rule into results/data, the one form
# every later step reads. The voc kind reads an existing tree (voc_root / sbd_root), else a verified download
# when mirrors are configured (data.smk), else the built-in demo dataset; the other kinds name their files in
# the dataset section.
DATASET_KIND = kinds.kind(config["dataset"]["kind"])
DATASET = f"results/{registry.DATA}"  # the dataset index every step reads: lists, images, masks, tags
LABELS = f"results/{registry.LABELS_FILE}"
SPLITS = dict(config["splits"])
if DATASET_KIND.name == "voc":
    VOC_ROOT = existing_dir("voc_root") or (
        "resources/VOC2012" if config["download"]["voc"]["mirrors"] else "resources/demo/VOC2012"
    )
    SBD_ROOT = existing_dir("sbd_root") or ("resources/SBD" if config["download"]["sbd"]["mirrors"] else None)
    DATASET_INPUTS = {"voc": VOC_ROOT, "sbd": SBD_ROOT or []}
    if SPLITS["train"] == "train_aug" and SBD_ROOT is None:
        logger.warning("No SBD configured (sbd_root or download.sbd): training on VOC train instead of train_aug.")
        SPLITS["train"] = "train"
else:  # the kind's files, or the downloaded folders they will be in (config/coco2014.yaml)
    DATASET_INPUTS = {}
    for name, paths in DATASET_KIND.inputs(config["dataset"]).items():
        declared = []
        for path in [paths] if isinstance(paths, str) else paths:
            folder = None if os.path.exists(path) else download_folder(path)
            declared.append(folder or existing_path(f"dataset.{name}", path, folder=name in ("images", "masks")))
        DATASET_INPUTS[name] = declared[0] if isinstance(paths, str) else list(dict.fromkeys(declared))
if config["segment"]["images"]:
    existing_path("segment.images", config["segment"]["images"])

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
    """A run's erasing rounds: their classifiers and CAMs (none where cam.source is not the classifier)."""
    return registry.step("cams").args(GRID.configs[name])


def step_output(step, file=None):
    """A step's output path pattern (registry folder with the rules' wildcards), or a file in it."""
    pattern = f"results/{{expdir}}{registry.step(step).pattern}"
    return f"{pattern}/{file}" if file else pattern


def step_benchmark(step, rule_name):
    return f"results/{{expdir}}{registry.step(step).benchmark(rule_name)}"


def job_arg(step, wildcards):
    """The step's argument (its round or supervision) from a job's wildcards."""
    arg = registry.step(step).arg
    return getattr(wildcards, arg) if arg else None


def step_params(step):
    """Params function: the config values the job's step reads (registry Step.settings, their one statement),
    so that a changed value reruns exactly the steps that read it."""
    return lambda wildcards: registry.own_settings(settings(wildcards), step, job_arg(step, wildcards))


def upstream(step, only=None):
    """Input function: the files of the step's upstream steps (registry) that the job reads, those of step
    `only` alone if given. A per-shard step reads its own shard of a per-shard upstream step."""

    def files(wildcards):
        name, paths = run_name(wildcards), []
        for up, arg in registry.step(step).upstream(GRID.configs[name], job_arg(step, wildcards)):
            if only in (None, up):
                outputs = GRID.step_outputs(name, up, arg)
                same_shard = registry.step(step).per_shard and registry.step(up).per_shard
                paths += [outputs[int(wildcards.shard)]] if same_shard else outputs
        return paths

    return files


def upstream_path(step, only=None):
    """Input function: the one file or shard directory upstream(step, only) gives (a path, not a list)."""
    paths = upstream(step, only)

    def path(wildcards):
        (one,) = paths(wildcards)
        return one

    return path


def saliency_folder(values):
    """A run's folder of precomputed saliency maps (saliency.source), checked; None where the run uses none."""
    if not registry.uses_saliency(values) or registry.computes_saliency(values):
        return None
    methods = ", ".join(registry.SALIENCY_METHODS)
    return existing_path(f"saliency.source (a method: {methods}; or a folder of maps)", values["saliency"]["source"])


for name in RUNS:  # every run's folder, when the workflow is planned
    saliency_folder(GRID.configs[name])


def saliency_maps(step):
    """Input function: the saliency maps a per-shard step reads, one directory: its shard of the saliency step
    (a method), or the folder saliency.source; nothing where the run uses no saliency."""
    computed = upstream(step, only="saliency")

    def maps(wildcards):
        values = settings(wildcards)
        if registry.computes_saliency(values):
            (shard,) = computed(wildcards)
            return shard
        return saliency_folder(values) or []

    return maps


def run_saliency_maps(name):
    """Every directory of a run's saliency maps: the saliency step's shards, or the folder saliency.source."""
    if registry.computes_saliency(GRID.configs[name]):
        return GRID.step_outputs(name, "saliency")
    return [saliency_folder(GRID.configs[name])]


def stages(name):
    """Every scored stage of a run, in pipeline order."""
    return registry.stage_names(GRID.configs[name])


def train_gallery_stages(name):
    """The run's stages the train gallery shows as panels, scored or not (a run without the walk has no walk
    panel)."""
    made = registry.stage_names(GRID.configs[name], scored=False)
    return [stage for stage in made if registry.stage_named(stage).gallery == "train"]


def segment_photos_folder(wildcards):
    """segment.images, which results/segmented needs."""
    if not registry.segments(settings(wildcards)):
        raise WorkflowError("results/segmented needs segment.images: a folder of photos to segment (it is null)")
    return config["segment"]["images"]


def has_bound(name):
    """Whether a run trains the fully-supervised bound (it needs masks of the train split)."""
    return registry.GROUND_TRUTH in registry.step("segmentation").args(GRID.configs[name])


def per_image_stages(name):
    """The stages scored image by image (an oracle is a threshold sweep over the whole split)."""
    return [stage for stage in stages(name) if registry.stage_named(stage).per_image]


# Every image's own scores per stage (evaluate.smk), which the report's galleries choose from.
IMAGE_SCORES = f"results/{{expdir}}{registry.METRICS}/image_scores.parquet"


def unique(paths):
    return list(dict.fromkeys(paths))


def all_artifacts():
    """Every step's outputs (models, predictions, shard directories) of every run, shared ones once, and the
    segmented photos of a run with segment.images."""
    return unique(
        [
            path
            for name in RUNS
            for step in registry.STEPS.values()
            for arg in step.args(GRID.configs[name])
            for path in GRID.step_outputs(name, step.name, arg)
        ]
        + [f"results/{GRID.folder(name)}{registry.SEGMENTED}" for name in RUNS if registry.segments(GRID.configs[name])]
    )


def stage_spec(name, stage):
    """What a stage of a run scores (registry.STAGES): its step's outputs, their kind, the split, the CAM
    thresholds (the saliency oracle's: saliency thresholds), and for the saliency oracle its maps and how the
    CAMs claim the salient pixels (what the pseudo-masks read: pseudo_mask.fg_threshold, crf)."""
    scored = registry.stage_named(stage)
    values = GRID.configs[name]
    thresholds = {
        registry.CAM: [values["cam"]["eval_threshold"]],
        registry.CAM_ORACLE: values["cam"]["oracle_thresholds"],
        registry.SALIENCY_ORACLE: values["saliency"]["oracle_thresholds"],
    }
    spec = dict(kind=scored.kind, inputs=GRID.scored_outputs(name, stage), split=config["splits"][scored.split],
                thresholds=thresholds.get(scored.kind, []))
    if scored.kind == registry.SALIENCY_ORACLE:  # its rule: evaluate_saliency_oracle
        spec["saliency"] = dict(maps=run_saliency_maps(name), fg_threshold=values["pseudo_mask"]["fg_threshold"],
                                crf=values["crf"])
    return spec


def job_benchmarks(name):
    """(step, benchmark file) of every job that makes a run's WSSS result (the segmentation network on
    pseudo-masks) and everything upstream of it, shared jobs included: what the method costs from scratch
    (scoring and the fully-supervised bound aside)."""
    result, arg = registry.stage(registry.RESULT_STAGE, GRID.configs[name])
    jobs = []
    for step, step_arg in registry.closure(GRID.configs[name], result.step, arg):
        spec = registry.step(step)
        for rule_name in spec.rules:
            pattern = f"results/{GRID.owner_folder(name, step, step_arg)}{spec.benchmark(rule_name)}"
            wildcards = {spec.arg: step_arg} if spec.arg else {}
            jobs += [(step, pattern.format(**wildcards, shard=shard)) for shard in (SHARDS if spec.per_shard else [0])]
    return jobs


def sec_labels(wildcards):
    """The image-level labels a segmentation network trained with SEC's loss reads (its expansion loss); no
    input otherwise."""
    return [LABELS] if registry.trains_with_sec(settings(wildcards), wildcards.supervision) else []


def pretrained_weights(settings):
    """The ImageNet weights file a network starts from, or nothing for a random initialisation."""
    return [f"resources/weights/{settings['backbone']}.{settings['pretrained']}.pth"] if settings.get("pretrained") else []


# CLIP-ES's weights (clip_es.weights, else downloaded here by the rule clip_weights); the sha256 decides, not the path
CLIP_WEIGHTS = "resources/weights/clip/ViT-B-16.pt"


def clip_weights(values):
    """The CLIP weights file a run of CLIP-ES reads (clip_es.weights, checked), or nothing without CLIP-ES."""
    if not registry.uses_clip_es(values):
        return []
    local = values["clip_es"]["weights"]
    return existing_path("clip_es.weights", local, folder=False) if local else CLIP_WEIGHTS


for name in RUNS:  # every run's CLIP weights file, when the workflow is planned
    clip_weights(GRID.configs[name])


def gallery_title(selection, rank_stage):
    """A train gallery's subcategory; best and worst are ranked by the run's own pseudo-labels (rank_stage)."""
    shown = config["report"]  # (`report` is a Snakemake keyword)
    if selection == "sample":
        return f"random sample of {shown['sample_size']} (seed {shown['seed']})"
    return f"{selection} {shown[selection]} by {registry.stage_title(rank_stage)} IoU"


# Sections of the HTML report, in reading order (tables and figures: evaluate.smk, report.smk).
SCORES_CATEGORY = "1. Scores"
TRAIN_GALLERY_CATEGORY = "2. Train gallery: CAMs to pseudo-masks"
VAL_GALLERY_CATEGORY = "3. Val gallery: segmentation"
TRAINING_CATEGORY = "4. Classifier training"
# The report's figures of a single run, and those of a grid or a replicated run: the tables of every run
# and the stage plot of each experiment over its seeds (each run's own figures are targets too:
# results/<run>/report/...). Score plots need a scored stage, the confusion matrix a scored segmentation.
def report_figures(name):
    scored = stages(name)
    figures = ["train_gallery", "val_gallery"] + ["classifier_curves.png"] * bool(rounds(name))
    figures += ["class_iou.png", "miou_by_stage.png"] if scored else []
    figures += ["confusion_segmentation.png"] if registry.RESULT_STAGE in scored else []
    return [f"results/{GRID.folder(name)}{registry.REPORT}/{figure}" for figure in figures]


REPORT_FIGURES = report_figures(RUNS[0])
GRID_FIGURES = ["results/ranking.txt", "results/summary.txt", f"results/{registry.REPORT}/miou_by_stage.png"]
