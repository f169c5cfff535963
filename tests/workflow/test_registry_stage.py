"""A stage added to the registry alone (tests/helpers.library_with_a_new_stage) is scored, tabled and titled by
the workflow on a finished tiny run."""

import os
import subprocess

import pandas as pd

from tests.helpers import library_with_a_new_stage
from tests.workflow_helpers import copy_finished_run, snakemake_command


def test_a_stage_added_to_the_registry_alone_reaches_the_tables(tiny_reference, tmp_path):
    """On a finished tiny run, the registry-only stage is evaluated, and lands in the tables next to the CRF
    with the same figures (it scores the same files); nothing else had to list it."""
    src = library_with_a_new_stage(tmp_path)
    work = copy_finished_run(tiny_reference, tmp_path / "run")
    env = {**os.environ, "PYTHONPATH": str(src)}
    result = subprocess.run(
        snakemake_command("results/miou.parquet"), cwd=work, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (work / "results/metrics/crf_again.npz").is_file()
    summary = pd.read_parquet(work / "results/summary.parquet").set_index("stage")
    assert list(summary.index).index("crf_again") == list(summary.index).index("crf") + 1
    assert summary.loc["crf_again", "miou"] == summary.loc["crf", "miou"]
    assert "crf_again" in (work / "results/summary.txt").read_text()
    # no job but the new stage's scoring and the tables reran
    assert "rule train_classifier" not in result.stderr and "rule crf:" not in result.stderr
