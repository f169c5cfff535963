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

from wsss.pipeline import registry
from wsss.pipeline.registry import OVERRIDABLE, RESERVED

DEFAULT = "default"  # the experiment's name when the config lists none


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


def step_settings(config: dict, step: str, arg=None) -> dict:
    """Everything that decides a step's files: the config keys it reads and its upstream steps' settings
    (wsss.pipeline.registry). step "metrics" with a stage name as arg: what decides that stage's scores."""
    if step == "metrics":
        stage, scored_arg = registry.stage(arg, config)
        reads = registry.KIND_READS[stage.kind]
        return {
            "stage": arg,
            "scored": step_settings(config, stage.step, scored_arg),
            **{key: registry.setting(config, key) for key in reads},
        }
    upstream = registry.step(step).upstream(config, arg)
    return {
        "step": step,
        "arg": arg,
        **registry.own_settings(config, step, arg),
        "upstream": [step_settings(config, name, up_arg) for name, up_arg in upstream],
    }


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
            raise ExperimentError(
                f"experiments.{name}: overrides seed, but seeds {seeds} replicate every experiment "
                "over the same seeds; drop one of them"
            )
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
        self.shards = config["shards"]  # the data's, the same for every run
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
        """Whether the run computes this step (a round beyond its erasing.rounds it does not)."""
        if step == "metrics":
            return arg in registry.stage_names(self.configs[name])
        return arg in registry.step(step).args(self.configs[name])

    def owner(self, name: str, step: str, arg=None) -> str:
        """The first run, in config order, that computes this step with settings equal to name's."""
        key = (name, step, arg)
        if key not in self._owners:
            wanted = _canonical(step_settings(self.configs[name], step, arg))
            self._owners[key] = next(
                other
                for other in self.configs
                if self.runs(other, step, arg) and _canonical(step_settings(self.configs[other], step, arg)) == wanted
            )
        return self._owners[key]

    def owner_folder(self, name: str, step: str, arg=None) -> str:
        return self.folder(self.owner(name, step, arg))

    def step_dir(self, name: str, step: str, arg=None) -> str:
        """results/<owner's folder><step folder>: where the run reads this step's files from."""
        return f"results/{self.owner_folder(name, step, arg)}{registry.step(step).path(arg)}"

    def step_outputs(self, name: str, step: str, arg=None, files: bool = False) -> list[str]:
        """What the step's consumers read: its shard directories, or its first file (every file with files)."""
        directory = self.step_dir(name, step, arg)
        if registry.step(step).per_shard:
            return [f"{directory}/shard{shard}" for shard in range(self.shards)]
        return [f"{directory}/{file}" for file in registry.step(step).files[: None if files else 1]]

    def metrics_file(self, name: str, stage: str) -> str:
        return f"results/{self.owner_folder(name, 'metrics', stage)}{registry.METRICS}/{stage}.npz"

    def scored_outputs(self, name: str, stage: str) -> list[str]:
        """The files a stage scores: its step's outputs."""
        scored, arg = registry.stage(stage, self.configs[name])
        return self.step_outputs(name, scored.step, arg)


def _canonical(settings: dict) -> str:
    return json.dumps(settings, sort_keys=True)
