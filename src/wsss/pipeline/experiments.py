"""The experiments grid: named overrides of the base config, replicated over training seeds, and which
steps the runs share.

Every experiment is the base config with its overrides merged in. With a `seeds` list, each experiment
runs once per seed (a run: results/<experiment>/seed<k>/, or results/seed<k>/ outside a grid), and its
figures are reported as mean ± sd over them; the data (dataset, splits, shards, the demo's own seed) is
the same for every run.

A step (a round's classifier, its CAMs, the CRF, ...) is computed once for all runs whose settings *for
that step and everything upstream of it* are equal; the first such run, in config order, owns it and the
others read its files.
Only the keys a step reads enter its settings, so changing the CAM method keeps the classifier shared, and
changing erasing.rounds keeps the rounds both experiments run shared.
"""

from __future__ import annotations

import copy
import json
import re

# Sections an experiment may override. The data (dataset, splits, shards) is the same for every experiment,
# so their scores compare.
OVERRIDABLE = ("seed", "classifier", "cam", "erasing", "crf", "pseudo_mask", "segmentation")
# Folders of results/ that an experiment's folder must not shadow.
RESERVED = ("data", "labels", "classifier", "cams", "crf", "pseudo_masks", "segmentation", "metrics", "report",
            "benchmarks", "grid")
DEFAULT = "default"  # the experiment's name when the config lists none
# cam keys that only score or threshold CAMs; the rest decide the CAM files themselves.
CAM_SCORING_KEYS = ("eval_threshold", "oracle_thresholds")


SEED_FOLDER = re.compile(r"seed\d+")


class ExperimentError(ValueError):
    pass


def deep_merge(base: dict, overrides: dict) -> dict:
    """base with overrides merged in: nested mappings merge key by key; anything else is replaced."""
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def experiment_configs(config: dict) -> dict[str, dict]:
    """{name: full config} in config order; {"default": config} when config["experiments"] is empty."""
    experiments = config.get("experiments") or {}
    if not experiments:
        return {DEFAULT: config}
    configs = {}
    for name, overrides in experiments.items():
        if name in RESERVED or name == DEFAULT or SEED_FOLDER.fullmatch(str(name)):
            raise ExperimentError(f"experiments.{name}: the name is reserved (a results/ folder); choose another")
        unknown = sorted(set(overrides or {}) - set(OVERRIDABLE))
        if unknown:
            raise ExperimentError(
                f"experiments.{name}: cannot override {', '.join(unknown)}; an experiment overrides only "
                f"{', '.join(OVERRIDABLE)}"
            )
        configs[name] = deep_merge({k: v for k, v in config.items() if k != "experiments"}, overrides or {})
    return configs


def cam_settings(config: dict) -> dict:
    """The cam keys that decide the CAM files (method, scales, ...), not how they are scored."""
    return {k: v for k, v in config["cam"].items() if k not in CAM_SCORING_KEYS}


def step_settings(config: dict, step: str, arg=None) -> dict:
    """Everything that decides a step's files: its own keys and its upstream steps' settings.

    step / arg: classifier / round, cams / round, merged, crf, pseudo_masks, segmentation / supervision
    ("pseudo_mask" or "ground_truth"), metrics / stage name.
    """
    if step == "classifier":
        settings = {"seed": config["seed"], "classifier": config["classifier"], "round": int(arg)}
        if int(arg) > 0:  # trains on images erased by every earlier round's CAMs
            settings["erased_by"] = {"cams": [step_settings(config, "cams", r) for r in range(int(arg))],
                                     "threshold": config["erasing"]["threshold"]}
        return settings
    if step == "cams":
        settings = {"classifier": step_settings(config, "classifier", arg), "cam": cam_settings(config)}
        if int(arg) > 0:
            settings["erasing_threshold"] = config["erasing"]["threshold"]
        return settings
    if step == "merged":
        return {"rounds": [step_settings(config, "cams", r) for r in range(config["erasing"]["rounds"])]}
    if step == "crf":
        return {"cams": step_settings(config, "merged"), "crf": config["crf"],
                "bg_threshold": config["cam"]["eval_threshold"]}
    if step == "pseudo_masks":
        return {"cams": step_settings(config, "merged"), "crf": config["crf"], "pseudo_mask": config["pseudo_mask"]}
    if step == "segmentation":
        masks = step_settings(config, "pseudo_masks") if arg == "pseudo_mask" else "ground_truth"
        return {"seed": config["seed"], "segmentation": config["segmentation"], "masks": masks}
    if step == "metrics":
        return {"stage": arg, "scored": _scored_settings(config, arg)}
    raise ValueError(f"unknown step {step!r}")


def _scored_settings(config: dict, stage: str) -> dict:
    if stage.startswith("cam_r"):
        return {"cams": step_settings(config, "cams", int(stage[5:])), "threshold": config["cam"]["eval_threshold"]}
    if stage == "cam":
        return {"cams": step_settings(config, "merged"), "threshold": config["cam"]["eval_threshold"]}
    if stage == "cam_oracle":
        return {"cams": step_settings(config, "merged"), "thresholds": config["cam"]["oracle_thresholds"]}
    if stage == "crf":
        return step_settings(config, "crf")
    if stage == "pseudo_mask":
        return step_settings(config, "pseudo_masks")
    if stage == "segmentation":
        return step_settings(config, "segmentation", "pseudo_mask")
    if stage == "fully_supervised":
        return step_settings(config, "segmentation", "ground_truth")
    raise ValueError(f"unknown stage {stage!r}")


def run_configs(config: dict) -> dict[str, tuple[str, dict]]:
    """{run name: (experiment, full config)} in config order: each experiment once with its seed, or once per
    entry of config["seeds"] ("seed<k>" outside a grid, "<experiment>/seed<k>" in one)."""
    seeds = list(config.get("seeds") or [])
    experiments = experiment_configs(config)
    if not seeds:
        return {name: (name, experiment) for name, experiment in experiments.items()}
    runs = {}
    for name, experiment in experiments.items():
        overrides = (config.get("experiments") or {}).get(name) or {}
        if "seed" in overrides:
            raise ExperimentError(f"experiments.{name}: overrides seed, but seeds {seeds} replicate every experiment "
                                  "over the same seeds; drop one of them")
        for seed in seeds:
            run = f"seed{seed}" if name == DEFAULT else f"{name}/seed{seed}"
            runs[run] = (name, {**copy.deepcopy(experiment), "seed": seed})
    return runs


class Grid:
    """The runs of a config (its experiments, each once per seed when replicated), their folders under
    results/, and which run owns each step. Step settings include the seed wherever it matters, so runs of
    different seeds share nothing but the data."""

    def __init__(self, config: dict):
        runs = run_configs(config)
        self.configs = {run: experiment_config for run, (_, experiment_config) in runs.items()}
        self.experiments = {run: name for run, (name, _) in runs.items()}
        self.is_grid = bool(config.get("experiments")) or bool(config.get("seeds"))
        self._owners: dict[tuple, str] = {}

    @property
    def names(self) -> list[str]:
        """The run names (the experiment names, when nothing is replicated)."""
        return list(self.configs)

    def experiment_of(self, name: str) -> str:
        return self.experiments[name]

    def folder(self, name: str) -> str:
        """The run's folder prefix inside results/: "" for a single run, else "<name>/"."""
        return f"{name}/" if self.is_grid else ""

    def name_of(self, folder: str) -> str:
        """The run a folder prefix belongs to (inverse of folder)."""
        return folder.rstrip("/") if self.is_grid else DEFAULT

    def runs(self, name: str, step: str, arg=None) -> bool:
        """Whether the run computes this step itself (a round beyond its erasing.rounds it does not)."""
        return step not in ("classifier", "cams") or int(arg) < self.configs[name]["erasing"]["rounds"]

    def owner(self, name: str, step: str, arg=None) -> str:
        """The first run, in config order, that computes this step with settings equal to name's."""
        key = (name, step, arg)
        if key not in self._owners:
            wanted = _canonical(step_settings(self.configs[name], step, arg))
            self._owners[key] = next(
                other for other in self.configs
                if self.runs(other, step, arg) and _canonical(step_settings(self.configs[other], step, arg)) == wanted
            )
        return self._owners[key]

    def owner_folder(self, name: str, step: str, arg=None) -> str:
        return self.folder(self.owner(name, step, arg))


def _canonical(settings: dict) -> str:
    return json.dumps(settings, sort_keys=True)
