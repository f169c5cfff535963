"""dvc.yaml against the workflow: each stage runs its Snakemake target, tracks its steps' files, depends on all
of the code and lists exactly the config values its steps read (tests/workflow/test_dvc.py runs the stages)."""

from pathlib import Path

import yaml

from tests.workflow_helpers import REPO
from wsss.pipeline import registry
from wsss.pipeline.experiments import Grid


def test_dvc_stages_match_the_workflow_targets():
    """Each DVC stage runs the Snakemake target of its name, one cams stage per erasing round of the config,
    and depends on all of the code."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    rounds = yaml.safe_load((REPO / "config/config.yaml").read_text())["erasing"]["rounds"]
    assert [s for s in stages if s.startswith("cams_r")] == [f"cams_r{r}" for r in range(rounds)]
    for name, stage in stages.items():
        assert stage["cmd"] == f"snakemake --cores all {registry.dvc_target(name)}"
        assert all(next(iter(out.values())).get("persist") for out in stage["outs"]), name
    targets = (REPO / "workflow/rules/dvc.smk").read_text()
    assert all(f"rule {registry.dvc_target(name)}:" in targets for name in ("data", "evaluate", "report"))
    # the stages that track steps track exactly the registry's files (or per-shard folders) of those steps
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    grid = Grid(config)
    for name, steps in registry.dvc_step_stages(config).items():
        outs = {next(iter(out)) for out in stages[name]["outs"]}
        expected = set()
        for step, arg in steps:  # DVC tracks a per-shard step's folder
            expected |= (
                {grid.step_dir("default", step, arg)}
                if registry.step(step).per_shard
                else set(grid.step_outputs("default", step, arg, files=True))
            )
        assert outs == expected, name
    # No stage can miss a code file: each depends on every module, script, rule, schema and report caption
    # (as a whole directory, so new files are covered too; dvc.yaml's header says why).
    code = [
        Path("Snakefile"),
        *(
            f.relative_to(REPO)
            for d in ("src/wsss", "scripts", "workflow")
            for f in sorted((REPO / d).rglob("*"))
            if f.is_file() and "__pycache__" not in f.parts
        ),
    ]
    assert Path("src/wsss/seeds/masks.py") in code and Path("workflow/rules/common.smk") in code
    for name, stage in stages.items():
        deps = [Path(dep) for dep in stage["deps"]]
        missing = [str(f) for f in code if not any(dep == f or dep in f.parents for dep in deps)]
        assert not missing, f"dvc.yaml stage {name} does not depend on {missing}"


def leaf_keys(value, prefix: str) -> set[str]:
    """The dotted paths of a config value's leaves ("crf.bilateral.sxy"); a list is a leaf."""
    if not isinstance(value, dict):
        return {prefix}
    return set().union(*(leaf_keys(v, f"{prefix}.{k}") for k, v in value.items())) if value else {prefix}


def test_dvc_params_are_what_the_steps_read():
    """A DVC stage's params cover every config value its steps read (registry Step.settings: a value left out
    would leave DVC saying "up to date" when it is not) and name nothing they do not read (erasing.threshold
    is no param of round 0's classifier and CAMs). A whole section may stand for its keys."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    for name, steps in registry.dvc_step_stages(config).items():
        (listed,) = [entry["config/config.yaml"] for entry in stages[name]["params"]]
        read = set().union(*(leaf_keys(v, k) for s, a in steps for k, v in registry.own_settings(config, s, a).items()))
        covered = set().union(*(leaf_keys(registry.setting(config, key), key) for key in listed))
        assert read <= covered, f"dvc.yaml stage {name} lacks params {sorted(read - covered)}"
        unread = [key for key in listed if not any(r == key or r.startswith(f"{key}.") for r in read)]
        assert not unread, f"dvc.yaml stage {name} lists params its steps do not read: {unread}"
