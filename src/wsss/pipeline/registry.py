"""The pipeline's vocabulary, defined once: its steps and its scored stages.

A *step* is what one rule computes for a run: a round's classifier, its CAMs, the merged CAMs, the CRF
maps, the pseudo-masks, a segmentation network, its predictions, a stage's scores. The
registry names its folder under results/<run folder>/, the config values that decide its files (its
settings) and the steps it reads (its upstream). From this one graph come the rules' inputs and params
(workflow/rules/common.smk: a changed value reruns exactly the steps whose settings hold it), the
fingerprints of partial work, which runs share a step (wsss.pipeline.experiments), what a grid's compute
time is made of (wsss.scoring.tables) and the DVC stages and their params (workflow/rules/dvc.smk, checked
against dvc.yaml by tests/unit/test_dvc_yaml.py).

A *scored stage* is a step's output scored against ground truth: its name in every table, its title in the
report, which step's files it scores, how (CAM + threshold, a threshold sweep, or label maps), on which
split, and whether the ranking and the galleries show it. Tables, figures, the evaluation rules and the
schema's rank_by enum (tests/unit/test_registry.py) all read STAGES; nothing else lists stages.

Adding a step: a Step here plus its rule and script. Adding a scored stage: a Stage here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from wsss.data.kinds import masked_splits

# --- steps --------------------------------------------------------------------------------------------

# The arguments a step can take, by the wildcard that carries it in the rules.
ROUND, SUPERVISION = "round", "supervision"
# The steps whose label maps the pseudo-label network may train on, by their segmentation.labels value:
# the confident pseudo-masks (255 where neither threshold is sure), IRN's dense random-walk labels, or CLIP-ES's
# confidence-masked CRF labels (cam.source: clip_es).
LABEL_STEPS = {"pseudo_mask": "pseudo_masks", "random_walk": "random_walk", "clip_es": "clip_es_labels"}
# What a segmentation network is trained on, which names its folder (segmentation/<supervision>/): the
# pseudo-labels of segmentation.labels (the WSSS result), or the ground truth (the fully-supervised bound
# it is compared with).
GROUND_TRUTH = "ground_truth"
SUPERVISIONS = (*LABEL_STEPS, GROUND_TRUTH)
# Folders of results/ besides the steps': the dataset index, the image labels, scores, figures, benchmarks,
# and the new photos the network segmented (segment.images), gathered from the segment step's shards.
DATA, LABELS_FILE, METRICS, REPORT, BENCHMARKS, SEGMENTED = (
    "data",
    "labels/image_labels.parquet",
    "metrics",
    "report",
    "benchmarks",
    "segmented",
)
# classifier.method: classic CAM, or a CAM expansion trained into the classifier (wsss.nets.expansion); each
# expansion method has its own settings sub-section classifier.<method>, read only when it is the method
CLASSIFIER_METHODS = ("cam", "seam", "acol", "multi_dilation")
CLASSIFIER_METHOD_SECTIONS = CLASSIFIER_METHODS[1:]
# cam keys that only score or threshold CAMs; the rest decide the CAM files themselves.
CAM_SCORING_KEYS = ("eval_threshold", "oracle_thresholds")
# cam.source -> the step whose maps are the merged CAMs the chain reads: the erasing rounds' classifier CAMs (their
# per-pixel maximum), ReCAM's re-activated maps of the round-0 classifier, or a training-free method's (no classifier
# then). cam.source is no setting of the cams step, so runs that differ only in it share the classifier and its CAMs;
# the source's own step reads its own section.
CAM_SOURCES = {"classifier": "cams", "recam": "recam_cams", "clip_es": "clip_es"}
TRAINING_FREE_SOURCES = ("clip_es",)  # no classifier, no cams step


def cam_source(config: dict) -> str:
    """cam.source (classifier where a config predates the key)."""
    return config["cam"].get("source", "classifier")


def trains_classifier(config: dict) -> bool:
    return cam_source(config) not in TRAINING_FREE_SOURCES


def uses_recam(config: dict) -> bool:
    """Whether a run's merged CAMs are ReCAM's re-activated maps (cam.source recam; wsss.training.recam)."""
    return cam_source(config) == "recam"


def uses_clip_es(config: dict) -> bool:
    return cam_source(config) == "clip_es"


def _merged_upstream(config: dict) -> list[tuple[str, object]]:
    step = CAM_SOURCES[cam_source(config)]
    return [("cams", r) for r in _rounds(config)] if step == "cams" else [(step, None)]


# the clip_es keys of CLIP-ES's labels; the rest decide its maps (weights: its checksum does, see config/README.md)
CLIP_ES_LABEL_KEYS = ("crf", "confidence")


def _rounds(config: dict) -> range:
    return range(config["erasing"]["rounds"])


def has_masks(config: dict, split_key: str) -> bool:
    """Whether the configured split of split_key ("train", "seed_eval", "val") has masks: a stage is scored on
    the images of its split that have masks, and the fully-supervised bound trains on the train split's."""
    return config["splits"][split_key] in masked_splits(config)


def walks(config: dict) -> bool:
    """Whether a run has IRN's boundary network and random walk (random_walk.enabled)."""
    return config["random_walk"]["enabled"]


# saliency.source: a saliency method run offline by the saliency step (OpenCV contrib's static saliency,
# wsss.seeds.saliency.METHODS), or else a folder of precomputed maps (<folder>/<image id>.png) the steps read
SALIENCY_METHODS = ("spectral_residual", "fine_grained")


def uses_saliency(config: dict) -> bool:
    """Whether a run's pseudo-masks take their background from saliency maps (pseudo_mask.saliency_threshold
    set; saliency.source then names the maps, checked by wsss.pipeline.config_checks)."""
    return config["pseudo_mask"]["saliency_threshold"] is not None


def computes_saliency(config: dict) -> bool:
    """Whether a run computes its saliency maps (a method), rather than reading a folder of them."""
    return uses_saliency(config) and config["saliency"]["source"] in SALIENCY_METHODS


def _without(section: dict, unread) -> dict:
    return {k: v for k, v in section.items() if k not in unread}


def _erasing(config: dict, r) -> dict:
    """Round r > 0 erases the earlier rounds' CAM regions above the erasing threshold; round 0 erases nothing."""
    return {"erasing": {"threshold": config["erasing"]["threshold"]}} if int(r) > 0 else {}


def _classifier_settings(config: dict, r) -> dict:
    # each expansion method reads its own sub-section only (classifier.<method>)
    unread = set(CLASSIFIER_METHOD_SECTIONS) - {config["classifier"]["method"]}
    return {"seed": config["seed"], "classifier": _without(config["classifier"], unread), **_erasing(config, r)}


# The networks whose decoder reads segmentation.upsampling (nets.models: reads_upsampling, checked by
# tests/unit/test_registry.py); the others neither read it nor name it
UPSAMPLING_ARCHS = ("unet",)
# The segmentation keys that decide a network's predictions, not the network: changing them re-predicts
# with the trained network (one network serves every inference experiment of a grid).
PREDICTION_KEYS = ("long_side", "inference")


# segmentation.loss: the default cross-entropy, or SEC's seeding, expansion and constrain loss
# (wsss.training.sec), whose settings are segmentation.sec.
SEGMENTATION_LOSSES = CROSS_ENTROPY, SEC_LOSS = ("cross_entropy", "sec")


def trains_with_sec(config: dict, supervision) -> bool:
    """Whether the network on supervision trains with SEC's loss: the pseudo-label network of a run with
    segmentation.loss sec (its cues are the pseudo-masks); the fully-supervised bound always trains with
    cross-entropy on the ground truth."""
    return supervision != GROUND_TRUTH and config["segmentation"]["loss"] == SEC_LOSS


def _segmentation_settings(config: dict, supervision) -> dict:
    # labels is the supervision (the folder and the upstream step); upsampling: UPSAMPLING_ARCHS only;
    # loss and sec only for SEC's loss, so a cross-entropy network's settings are those from before the key
    unread = {"labels", *PREDICTION_KEYS} | (
        set() if config["segmentation"]["arch"] in UPSAMPLING_ARCHS else {"upsampling"}
    )
    unread |= set() if trains_with_sec(config, supervision) else {"loss", "sec"}
    return {"seed": config["seed"], "segmentation": _without(config["segmentation"], unread)}


def segments(config: dict) -> bool:
    """Whether a run segments a folder of new photos (segment.images)."""
    return bool(config.get("segment", {}).get("images"))


def _inference_settings(config: dict) -> dict:
    """How a trained network predicts (PREDICTION_KEYS): its val predictions and the photos it segments;
    inference.tile only when set: null (whole images) predicts as before tiles existed, so it leaves the params
    and partial-work fingerprints of earlier runs as they were."""
    settings = {key: config["segmentation"][key] for key in PREDICTION_KEYS}
    if settings["inference"].get("tile") is None:
        settings["inference"] = _without(settings["inference"], {"tile"})
    return {"segmentation": settings}


def _pseudo_mask_settings(config: dict, arg) -> dict:
    """Without saliency the keys of IRN's pseudo-masks, as before it existed (the same params, so nothing reruns);
    with it the saliency source, and no bg_threshold: saliency, not the CRF at bg_threshold, finds the
    background (wsss.seeds.saliency.saliency_pseudo_mask)."""
    if not uses_saliency(config):
        return {"crf": config["crf"], "pseudo_mask": _without(config["pseudo_mask"], {"saliency_threshold"})}
    return {
        "crf": config["crf"],
        "pseudo_mask": _without(config["pseudo_mask"], {"bg_threshold"}),
        "saliency": {"source": config["saliency"]["source"]},
    }


def _saliency_upstream(config: dict) -> list[tuple[str, object]]:
    return [("saliency", None)] if computes_saliency(config) else []


def _prediction_settings(config: dict, supervision) -> dict:
    return {**_inference_settings(config), "splits": {"val": config["splits"]["val"]}}  # the images it predicts


@dataclass(frozen=True)
class Step:
    """One step of a run.

    folder: where its files live under results/<run folder>/ ("{round}" / "{supervision}" filled in);
    per_shard: one output directory per shard (shard<k>) inside that folder, else files in it;
    settings: (config, arg) -> the config values that decide its files, besides its upstream steps', as a
    nested mapping of the config's own sections and keys: the one statement of what it reads, from which
    its rules' params (workflow/rules/common.smk), the fingerprints of its partial work, which runs share it
    (wsss.pipeline.experiments) and dvc.yaml's params (tests/unit/test_dvc_yaml.py) follow;
    upstream: (config, arg) -> the (step, arg) pairs whose files it reads;
    files: its files in the folder (a per-shard step: none, the shard directories are its output), the
    first of them the one its consumers read;
    rules: the rules that compute it (their benchmark files make up its compute time);
    cost: the part of an experiment's compute time it counts towards;
    when: (config) -> whether a run of config has the step at all (a switched-off step has no arguments).
    """

    name: str
    folder: str
    arg: str | None = None
    per_shard: bool = False
    settings: Callable[[dict, object], dict] = lambda config, arg: {}
    upstream: Callable[[dict, object], list[tuple[str, object]]] = lambda config, arg: []
    files: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    cost: str | None = None
    when: Callable[[dict], bool] = lambda config: True

    def path(self, arg=None) -> str:
        return self.folder.format(**({self.arg: arg} if self.arg else {}))

    @property
    def pattern(self) -> str:
        """Its output under a run's folder, with the rules' wildcards ({round}, {supervision}, {shard})."""
        return f"{self.folder}/shard{{shard}}" if self.per_shard else self.folder

    def benchmark(self, rule: str) -> str:
        """A rule's benchmark file of this step under benchmarks/, with the rules' wildcards."""
        parts = [{ROUND: "r{round}", SUPERVISION: "{supervision}"}[self.arg]] if self.arg else []
        return "/".join([BENCHMARKS, rule, *parts, *(["shard{shard}"] if self.per_shard else [])]) + ".tsv"

    def args(self, config: dict) -> list:
        """The arguments this step runs with in a run of config ([None] for a step without one, [] for a step
        the run leaves out)."""
        if not self.when(config):
            return []
        if self.arg == ROUND:
            return list(_rounds(config))
        if self.arg == SUPERVISION:  # the fully-supervised bound needs masks of the train split
            return [config["segmentation"]["labels"], *([GROUND_TRUTH] if has_masks(config, "train") else [])]
        return [None]


STEPS = {
    step.name: step
    for step in (
        Step(
            "classifier",
            "classifier/r{round}",
            arg=ROUND,
            settings=_classifier_settings,
            # round r trains on images erased by every earlier round's CAMs
            upstream=lambda config, r: [("cams", k) for k in range(int(r))],
            files=("model.pt", "history.parquet"),
            rules=("train_classifier",),
            cost="classifier",
            when=trains_classifier,
        ),
        Step(
            "cams",
            "cams/r{round}",
            arg=ROUND,
            per_shard=True,
            settings=lambda config, r: {"cam": cam_settings(config), **_erasing(config, r)},
            upstream=lambda config, r: [("classifier", int(r)), *(("cams", k) for k in range(int(r)))],
            rules=("cams",),
            cost="cams",
            when=trains_classifier,
        ),
        Step(
            "clip_es",
            "cams/clip_es",
            per_shard=True,
            # (the classes it prompts are the dataset's: a change of classes reruns every step)
            settings=lambda config, arg: {"clip_es": _without(config["clip_es"], {"weights", *CLIP_ES_LABEL_KEYS})},
            rules=("clip_es",),
            cost="cams",
            when=uses_clip_es,
        ),
        Step(
            "recam",
            "classifier/recam",
            # the round-0 classifier fine-tuned with ReCAM's class predictor, its head folded (W_recam * W_cls),
            # on the classifier's crops
            settings=lambda config, arg: {
                "seed": config["seed"],
                "recam": config["recam"],
                "classifier": {k: config["classifier"][k] for k in ("resize_long", "crop_size")},
            },
            upstream=lambda config, arg: [("classifier", 0)],
            files=("model.pt", "history.parquet"),
            rules=("train_recam",),
            cost="classifier",
            when=uses_recam,
        ),
        Step(
            "recam_cams",
            "cams/recam",
            per_shard=True,
            settings=lambda config, arg: {"cam": cam_settings(config)},
            upstream=lambda config, arg: [("recam", None)],
            rules=("recam_cams",),
            cost="cams",
            when=uses_recam,
        ),
        Step(
            "merged_cams",
            "cams/merged",
            per_shard=True,
            upstream=lambda config, arg: _merged_upstream(config),
            rules=("merge_cams",),
            cost="masks",
        ),
        Step(
            "crf",
            "crf",
            per_shard=True,
            # the CRF's unary is the CAM with the background at cam.eval_threshold
            settings=lambda config, arg: {
                "crf": config["crf"],
                "cam": {"eval_threshold": config["cam"]["eval_threshold"]},
            },
            upstream=lambda config, arg: [("merged_cams", None)],
            rules=("crf",),
            cost="masks",
        ),
        Step(
            "saliency",
            "saliency",
            per_shard=True,
            settings=lambda config, arg: {"saliency": {"source": config["saliency"]["source"]}},
            rules=("saliency",),
            cost="masks",
            when=computes_saliency,  # a folder of maps is read where it is
        ),
        Step(
            "pseudo_masks",
            "pseudo_masks",
            per_shard=True,
            settings=_pseudo_mask_settings,
            upstream=lambda config, arg: [("merged_cams", None), *_saliency_upstream(config)],
            rules=("pseudo_masks",),
            cost="masks",
        ),
        Step(
            "clip_es_labels",
            "clip_es_labels",
            per_shard=True,
            settings=lambda config, arg: {"clip_es": {k: config["clip_es"][k] for k in CLIP_ES_LABEL_KEYS}},
            upstream=lambda config, arg: [("merged_cams", None)],  # the maps as CLIP-ES saves them: float16
            rules=("clip_es_labels",),
            cost="masks",
            when=uses_clip_es,
        ),
        Step(
            "irn",
            "irn",
            settings=lambda config, arg: {"seed": config["seed"], "irn": config["irn"]},
            upstream=lambda config, arg: [("pseudo_masks", None)],
            files=("model.pt", "history.parquet"),
            rules=("train_irn",),
            cost="masks",
            when=walks,
        ),
        Step(
            "random_walk",
            "random_walk",
            per_shard=True,
            # enabled decides whether the step runs, not its files
            settings=lambda config, arg: {"random_walk": _without(config["random_walk"], {"enabled"})},
            upstream=lambda config, arg: [("irn", None), ("merged_cams", None)],
            rules=("random_walk",),
            cost="masks",
            when=walks,
        ),
        Step(
            "segmentation",
            "segmentation/{supervision}",
            arg=SUPERVISION,
            settings=_segmentation_settings,
            upstream=lambda config, supervision: (
                [] if supervision == GROUND_TRUTH else [(LABEL_STEPS[supervision], None)]
            ),
            files=("model.pt", "history.parquet", "class_weights.json"),
            rules=("train_segmentation",),
            cost="segmentation",
        ),
        Step(
            "predictions",
            "segmentation/{supervision}",
            arg=SUPERVISION,
            settings=_prediction_settings,
            upstream=lambda config, supervision: [("segmentation", supervision)],
            files=("predictions",),
            rules=("predict_segmentation",),
            cost="segmentation",
        ),
        Step(
            "segment",
            "segment",
            per_shard=True,
            # the photos, and how the network on the run's pseudo-labels predicts (as its val predictions)
            settings=lambda config, arg: {"segment": config["segment"], **_inference_settings(config)},
            upstream=lambda config, arg: [("segmentation", config["segmentation"]["labels"])],
            rules=("segment_photos",),
            cost="segmentation",
            when=segments,
        ),
    )
}


def step(name: str) -> Step:
    if name not in STEPS:
        raise ValueError(f"unknown step {name!r}; the steps are {', '.join(STEPS)}")
    return STEPS[name]


def cam_settings(config: dict) -> dict:
    """The cam keys that decide the CAM files (method, scales, ...), not how they are scored."""
    return {k: v for k, v in config["cam"].items() if k not in (*CAM_SCORING_KEYS, "source")}


def setting(config: dict, key: str):
    """A config value by its key, "section" or "section.key" (what a kind of scoring reads: KIND_READS)."""
    section, _, sub = key.partition(".")
    return config[section][sub] if sub else config[section]


def own_settings(config: dict, name: str, arg=None) -> dict:
    """The config values a step reads itself (not through its upstream steps): its Step.settings, and for a
    per-shard step the number of shards its images are split into."""
    spec = step(name)
    return {**spec.settings(config, arg), **({"shards": config["shards"]} if spec.per_shard else {})}


def read_sections(config: dict) -> list[str]:
    """The config sections the steps of a run of config read (with every round's settings)."""
    return list(dict.fromkeys(key for s in STEPS.values() for arg in s.args(config) for key in s.settings(config, arg)))


# Sections an experiment may override: the ones the steps read (read_sections of the default config, checked
# by tests/unit/test_registry.py). The data (dataset, splits, shards) is the same for every experiment, so their
# scores compare.
OVERRIDABLE = (
    "seed",
    "classifier",
    "erasing",
    "cam",
    "recam",
    "clip_es",
    "crf",
    "saliency",
    "pseudo_mask",
    "irn",
    "random_walk",
    "segmentation",
)
# Names a run's folder must not take (it would shadow one of these).
RESERVED = tuple(
    dict.fromkeys(
        [s.folder.partition("/")[0] for s in STEPS.values()]
        + [DATA, LABELS_FILE.partition("/")[0], METRICS, REPORT, BENCHMARKS, SEGMENTED]
    )
)


def segmentation_note(config: dict) -> str:
    """A segmentation network and its test-time inference in a few words, e.g. "deeplabv3 on resnet101;
    scales 0.5-1.75 (6) + flip + CRF", "+ tiles 256/64" for tiles of 256 px overlapping by 64 (the literature's
    figures depend on both), and its loss's class weights unless they are "none" ("...; median_frequency class
    weights")."""
    settings = config["segmentation"]
    inference = settings["inference"]
    tile = inference.get("tile")  # absent in configs older than the key: whole images
    scales = [f"{scale:g}" for scale in inference["scales"]]
    scales = f"scales {scales[0]}-{scales[-1]} ({len(scales)})" if len(scales) > 2 else f"scale {', '.join(scales)}"
    arch = settings["arch"] + (f" ({settings['upsampling']})" if settings["arch"] in UPSAMPLING_ARCHS else "")
    return (
        f"{arch} on {settings['backbone']}; {scales}"
        + " + flip" * inference["flip"]
        + (f" + tiles {tile['size']}/{tile['overlap']}" if tile else "")
        + " + CRF" * bool(inference["crf"])
        + (f"; {settings['class_weights']} class weights" if settings.get("class_weights", "none") != "none" else "")
    )


# --- scored stages ------------------------------------------------------------------------------------

# How a stage's files are scored (wsss.scoring.evaluate); SALIENCY_ORACLE: merged CAMs made into pseudo-masks
# with saliency at each saliency threshold, the best kept
CAM, CAM_ORACLE, LABELS, SALIENCY_ORACLE = "cam", "cam_oracle", "labels", "saliency_oracle"
# The config keys each kind of scoring reads besides the files it scores (the background threshold(s) of CAMs;
# the saliency oracle: the maps, their thresholds and how the CAMs claim the salient pixels).
KIND_READS = {
    CAM: ("cam.eval_threshold",),
    CAM_ORACLE: ("cam.oracle_thresholds",),
    LABELS: (),
    SALIENCY_ORACLE: ("saliency", "pseudo_mask.fg_threshold", "crf"),
}
# What a stage is to the others: the WSSS result, or the fully-supervised bound it is compared with (the
# seg/full ratio; the dashed line of the stage plot).
RESULT, BOUND = "result", "bound"


@dataclass(frozen=True)
class Stage:
    """A scored stage (one per round for a step with a round argument: name "cam_r{round}").

    step / arg: the step whose files it scores (arg: its argument, or (config) -> its argument, unless the
    stage is per round);
    kind: CAM (label maps at cam.eval_threshold), CAM_ORACLE (the best of cam.oracle_thresholds, chosen on
    ground truth), SALIENCY_ORACLE (pseudo-masks with saliency at the best of saliency.oracle_thresholds, chosen
    on ground truth) or LABELS (PNG label maps); split: the config["splits"] key it is scored on;
    ranked: a column of a grid's ranking and a choice of rank_by; gallery: "train" or "val" when the
    report's galleries show it as a panel; per_image: scored image by image (the report's best and worst);
    role: RESULT or BOUND (see there), or None;
    when: (config) -> whether a run scores it;
    note: (config) -> how its files were made, for the tables (e.g. a network's test-time inference).
    """

    name: str
    title: str
    step: str
    kind: str
    split: str
    arg: object = None
    ranked: bool = False
    gallery: str | None = None
    per_image: bool = True
    role: str | None = None
    when: Callable[[dict], bool] = field(default=lambda config: True)
    note: Callable[[dict], str] = field(default=lambda config: "")

    @property
    def per_round(self) -> bool:
        return "{round}" in self.name

    @property
    def pattern(self) -> str:
        """A regular expression of its name(s), the round (if any) in group 1."""
        return re.escape(self.name).replace(re.escape("{round}"), r"(\d+)")


def result_note(config: dict) -> str:
    """segmentation_note of the network on pseudo-labels, which says when it trained with SEC's loss."""
    return segmentation_note(config) + "; SEC loss" * (config["segmentation"]["loss"] == SEC_LOSS)


STAGES = (
    Stage("cam_r{round}", "CAM round {round}", "cams", CAM, "seed_eval", when=trains_classifier),
    Stage("cam", "merged CAM", "merged_cams", CAM, "seed_eval", ranked=True),
    Stage(
        "cam_oracle",
        "merged CAM, ORACLE threshold",
        "merged_cams",
        CAM_ORACLE,
        "seed_eval",
        per_image=False,
        when=lambda config: bool(config["cam"]["oracle_thresholds"]),
    ),
    Stage("crf", "CRF", "crf", LABELS, "seed_eval", ranked=True, gallery="train"),
    Stage("pseudo_mask", "pseudo-mask", "pseudo_masks", LABELS, "seed_eval", ranked=True, gallery="train"),
    Stage(
        "saliency_oracle",
        "pseudo-mask with saliency, ORACLE threshold",
        "merged_cams",  # and the saliency maps (workflow/rules/common.smk: stage_spec)
        SALIENCY_ORACLE,
        "seed_eval",
        per_image=False,
        when=lambda config: uses_saliency(config) and bool(config["saliency"]["oracle_thresholds"]),
    ),
    Stage("clip_es", "CLIP-ES labels", "clip_es_labels", LABELS, "seed_eval", gallery="train", when=uses_clip_es),
    Stage("random_walk", "random walk", "random_walk", LABELS, "seed_eval", ranked=True, gallery="train", when=walks),
    Stage(
        "segmentation",
        "segmentation",
        "predictions",
        LABELS,
        "val",
        arg=lambda config: config["segmentation"]["labels"],  # the network on the run's pseudo-labels
        ranked=True,
        gallery="val",
        role=RESULT,
        note=result_note,
    ),
    Stage(
        "fully_supervised",
        "fully supervised",
        "predictions",
        LABELS,
        "val",
        arg=GROUND_TRUTH,
        gallery="val",
        role=BOUND,
        note=segmentation_note,
    ),
)
# The {stage} wildcard of the rule evaluate_stage: every stage but the saliency oracle, which reads saliency maps
# besides its step's files and has a rule of its own (workflow/rules/evaluate.smk)
STAGE_PATTERN = "|".join(stage.pattern.replace("(", "(?:") for stage in STAGES if stage.kind != SALIENCY_ORACLE)


def _match(name: str) -> tuple[Stage, re.Match]:
    for candidate in STAGES:
        match = re.fullmatch(candidate.pattern, name)
        if match:
            return candidate, match
    raise ValueError(f"unknown stage {name!r}; the stages are {', '.join(s.name for s in STAGES)}")


def stage(name: str, config: dict) -> tuple[Stage, object]:
    """(the Stage, the argument of the step it scores in a run of config) of a stage name such as "crf" or
    "cam_r1"."""
    candidate, match = _match(name)
    if candidate.per_round:
        return candidate, int(match[1])
    return candidate, candidate.arg(config) if callable(candidate.arg) else candidate.arg


def stage_named(name: str) -> Stage:
    """The Stage of a stage name such as "crf" or "cam_r1"."""
    return _match(name)[0]


def _stage_instances(config: dict, candidate: Stage) -> list[str]:
    rounds = _rounds(config) if candidate.per_round else [None]
    return [candidate.name.format(round=r) for r in rounds]


def _produced(config: dict, candidate: Stage) -> bool:
    """Whether a run of config makes the files a stage scores (the bound: only with train masks)."""
    return candidate.when(config) and (candidate.arg != GROUND_TRUTH or has_masks(config, "train"))


def stage_names(config: dict, scored: bool = True) -> list[str]:
    """Every stage a run of config scores, in pipeline order: those whose split has masks (scored=False: every
    stage whose files it makes, scored or not, e.g. the galleries' panels)."""
    names = []
    for candidate in STAGES:
        if _produced(config, candidate) and (has_masks(config, candidate.split) or not scored):
            names += _stage_instances(config, candidate)
    return names


def unscored_stages(config: dict) -> dict[str, str]:
    """The stages a run of config does not score, each with the reason in words (summary.txt says it): a
    stage whose split has no masks ("no masks for train"), the bound without train masks to train on."""
    reasons = {}
    for candidate in STAGES:
        if not candidate.when(config):
            continue
        if not _produced(config, candidate):
            reason = f"not trained: no masks for {config['splits']['train']}"
        elif not has_masks(config, candidate.split):
            reason = f"no masks for {config['splits'][candidate.split]}"
        else:
            continue
        reasons.update(dict.fromkeys(_stage_instances(config, candidate), reason))
    return reasons


def stage_note(config: dict, name: str) -> str:
    return stage_named(name).note(config)


def stage_title(name: str) -> str:
    """The report's title of a stage ("CAM round 1", "pseudo-mask"); an unknown name is its own title."""
    try:
        candidate, match = _match(name)
    except ValueError:
        return name
    return candidate.title.format(round=match[1]) if candidate.per_round else candidate.title


def stages_where(**attributes) -> list[str]:
    """The names of the stages (per-round ones as templates) whose attributes have the given values."""
    return [s.name for s in STAGES if all(getattr(s, key) == value for key, value in attributes.items())]


RANKED_STAGES = tuple(stages_where(ranked=True))
RESULT_STAGE, BOUND_STAGE = stages_where(role=RESULT)[0], stages_where(role=BOUND)[0]


def closure(config: dict, name: str, arg=None) -> list[tuple[str, object]]:
    """(step, arg) of a step and of everything upstream of it, each once, upstream first."""
    found: dict[tuple[str, object], None] = {}

    def visit(key):
        if key not in found:
            for upstream in step(key[0]).upstream(config, key[1]):
                visit(upstream)
            found[key] = None

    visit((name, arg))
    return list(found)


# DVC's stages over a single run (dvc.yaml; workflow/rules/dvc.smk): name -> the steps whose files it tracks.
# Besides these: "data" (the dataset index and labels), "evaluate" (scores and tables) and "report".
DVC_STEP_STAGES = {
    "cams_r{round}": ("classifier", "cams"),
    "pseudo_masks": ("clip_es", "merged_cams", "crf", "saliency", "pseudo_masks", "clip_es_labels"),
    "random_walk": ("irn", "random_walk"),
    "segmentation": ("segmentation", "predictions"),
}


def dvc_step_stages(config: dict) -> dict[str, list[tuple[str, object]]]:
    """DVC_STEP_STAGES for a run of config: each stage's name (one per round for a per-round template)
    -> the (step, arg) pairs whose files it tracks (a per-round stage: of its round)."""
    stages = {}
    for template, steps in DVC_STEP_STAGES.items():
        for round_ in _rounds(config) if "{round}" in template else [None]:
            stages[template.format(round=round_)] = [
                (name, arg)
                for name in steps
                for arg in step(name).args(config)
                if step(name).arg != ROUND or arg == round_  # a per-round stage: its round (when the step runs)
            ]
    return stages


def dvc_target(stage: str) -> str:
    """The Snakemake target rule a DVC stage runs (and `make pull` touches)."""
    return f"dvc_{stage}"
