"""A replicated run through Snakemake's CLI on the tiny config: every seed runs the whole chain on the same
data, and the tables report each stage as mean ± sd over the seeds."""

import pandas as pd
import pytest
import yaml

from tests.workflow_helpers import copy_workflow, job_counts, run

SEEDS_FILES = ("tiny.yaml", "seeds.yaml")


@pytest.fixture(scope="module")
def replicated(tmp_path_factory):
    root = copy_workflow(tmp_path_factory.mktemp("seeds"))
    # one shard and one round (the tiny config has 2 of each): the grid's `cam` experiment's settings, so seed 0
    # can be checked against that independent run
    (root / "seeds.yaml").write_text(yaml.safe_dump({"seeds": [0, 1], "shards": 1, "erasing": {"rounds": 1}}))
    plan = job_counts(run(root, "-n", configfiles=SEEDS_FILES).stdout)
    result = run(root, configfiles=SEEDS_FILES)
    return root, plan, result


def test_every_seed_runs_the_whole_chain_on_the_same_data(replicated):
    root, plan, _ = replicated
    assert plan["demo_dataset"] == plan["dataset_index"] == plan["image_labels"] == 1  # the data: once
    assert plan["train_classifier"] == 2 and plan["train_segmentation"] == 2 * 2  # nothing shared across seeds
    assert plan["miou_table"] == 2 and plan["grid_table"] == 1
    results = root / "results"
    assert sorted(p.name for p in results.glob("seed*")) == ["seed0", "seed1"]
    models = [(results / f"seed{s}" / "classifier" / "r0" / "model.pt").read_bytes() for s in (0, 1)]
    assert models[0] != models[1]
    assert job_counts(run(root, "-n", configfiles=SEEDS_FILES).stdout) == {}


def test_seed0_reproduces_an_independent_run_of_its_settings(replicated, grid_run):
    """Determinism on CPU as well: an independent run of the same code and settings (the grid's one-round `cam`
    experiment, which shares some of its steps with other experiments) gives seed 0's tables exactly."""
    root, _, _ = replicated
    for table in ("miou.parquet", "summary.parquet"):
        plain = pd.read_parquet(grid_run.root / "results" / "cam" / table)
        mine = pd.read_parquet(root / "results" / "seed0" / table)
        assert plain["experiment"].eq("cam").all() and mine["experiment"].eq("default").all()
        assert mine["seed"].eq(0).all()
        pd.testing.assert_frame_equal(mine.drop(columns="experiment"), plain.drop(columns="experiment"))


def test_tables_give_mean_and_sd_over_seeds(replicated):
    root, _, _ = replicated
    results = root / "results"
    per_class = pd.read_parquet(results / "miou.parquet")
    assert sorted(per_class["seed"].unique()) == [0, 1]  # every seed's rows are kept
    runs = pd.concat([pd.read_parquet(results / f"seed{s}" / "summary.parquet") for s in (0, 1)])
    summary = pd.read_parquet(results / "summary.parquet").set_index("stage")
    for stage, group in runs.groupby("stage"):
        assert summary.loc[stage, "miou"] == pytest.approx(group["miou"].mean())
        assert summary.loc[stage, "miou_sd"] == pytest.approx(group["miou"].std(ddof=1))
        assert summary.loc[stage, "seeds"] == 2
    assert runs.groupby("stage")["miou"].nunique().max() == 2  # the seeds differ somewhere
    text = (results / "summary.txt").read_text()
    assert "mean ± sd over 2 seeds [0, 1]" in text and "±" in text.splitlines()[2]
    assert "mean ± sd over 2 seeds" in (results / "ranking.txt").read_text().splitlines()[0]
    assert (results / "report" / "miou_by_stage.png").stat().st_size > 10_000
