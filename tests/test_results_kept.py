"""Restructuring the code must not change a number: the tiny demo run gives the same tables as at the last
commit before the package was regrouped and the registry introduced (issue 14), on the same machine.

Bit-identity holds on one machine only (with the same threads), so both runs happen here, in this test.
A later change that is meant to change the figures moves REFERENCE_COMMIT forward and says why. Stages
added since (NEW_STAGES: IRN's random walk, issue 15) are left out of the comparison: every stage the
reference scores must keep its figures. So are columns added since (the stages' notes, issue 16: which
network and test-time inference made the predictions), in the tables and in summary.txt.
"""

import os
import subprocess

import pandas as pd
import pytest
import yaml

from tests.workflow_helpers import REPO, TINY, snakemake_command

REFERENCE_COMMIT = "3df90193db5795bd1ea473c0ce58f11434a23961"
CODE = ("Snakefile", "workflow", "scripts", "config", "src")
NEW_STAGES = ("random_walk",)

pytestmark = pytest.mark.workflow


def test_tiny_run_matches_the_reference_commit(tiny_reference, tmp_path):
    has_commit = (
        subprocess.run(
            ["git", "cat-file", "-e", f"{REFERENCE_COMMIT}^{{commit}}"], cwd=REPO, capture_output=True
        ).returncode
        == 0
    )
    if not has_commit:
        pytest.skip(f"this clone lacks commit {REFERENCE_COMMIT} (shallow?)")
    archive = subprocess.run(["git", "archive", REFERENCE_COMMIT, *CODE], cwd=REPO, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(tmp_path)], input=archive.stdout, check=True)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "src")}  # the reference commit's library, not this one's
    result = subprocess.run(
        snakemake_command("results/miou.parquet"), cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for table in ("summary.parquet", "miou.parquet"):
        then = pd.read_parquet(tmp_path / "results" / table)
        now = pd.read_parquet(tiny_reference / "results" / table)
        assert set(now["stage"]) == set(then["stage"]) | set(NEW_STAGES)
        assert set(now.columns) == set(then.columns) | ({"note"} if table == "summary.parquet" else set())
        now = now[~now["stage"].isin(NEW_STAGES)].reset_index(drop=True)[list(then.columns)]
        pd.testing.assert_frame_equal(now, then, check_exact=True, obj=table)
    notes = set(pd.read_parquet(tiny_reference / "results/summary.parquet")["note"]) - {""}
    assert notes == {"deeplabv3 on efficientnet_lite0; scale 1 + flip"}
    lines = (tiny_reference / "results/summary.txt").read_text().splitlines()
    kept = [
        line.removesuffix(f"  {note}") for line in lines if line.split(" ", 1)[0] not in NEW_STAGES for note in notes
    ]
    assert "\n".join(kept) + "\n" == (tmp_path / "results/summary.txt").read_text()
