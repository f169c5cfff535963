"""The workflow on a real one-node SLURM cluster (Debian's slurmctld, slurmd, munge) through Snakemake's
SLURM executor and workflow/profiles/slurm: on a copy of the finished local tiny run, the round-1 classifier
and everything after it run again on the cluster; that classifier job is killed with scancel mid-training,
the rerun resumes it from its checkpoint, and the figures equal those of the local run, whose jobs ran
uninterrupted. (Round 1, not round 0: the chain after it submits every rule the profile sends, dataset_index
aside, in half the jobs.)

The cluster is started by .ci/slurm-cluster (as root; it installs the packages with apt-get if missing)
and stopped at the end of the module.
"""

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from tests.workflow_helpers import REPO, TINY, copy_finished_run, run, snakemake_command

HELPER = REPO / ".ci" / "slurm-cluster"
PROFILE = REPO / "workflow" / "profiles" / "slurm" / "config.yaml"
# The rules the profile submits, and those of them sent to GPU nodes (tests/unit/test_slurm_profile.py checks
# which): the test node has none
SUBMITTED_RULES = yaml.safe_load(PROFILE.read_text())["set-resources"]
GPU_RULES = [rule for rule, asked in SUBMITTED_RULES.items() if asked.get("gpu")]


def rule_threads(config_threads: dict[str, int]) -> dict[str, int]:
    """Each rule's threads in a run whose config `threads` is config_threads, as workflow/rules/*.smk declare
    them (`threads: 1` or `threads: config["threads"][key]`)."""
    threads = {}
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        rules = re.findall(r"^\s*rule (\w+):\n(.*?)(?=^\s*rule \w+:|\Z)", smk.read_text(), re.M | re.S)
        for rule, body in rules:
            declared = re.search(r"threads: (.+)", body)
            if declared:
                value = re.fullmatch(r'(\d+)|config\["threads"\]\["(\w+)"\]', declared[1].strip())
                assert value, f"{smk.name}, rule {rule}: threads `{declared[1]}` is neither a number nor config"
                threads[rule] = int(value[1]) if value[1] else config_threads[value[2]]
    return threads


SLURM_ARGS = [
    "--workflow-profile",
    "workflow/profiles/slurm",
    "--slurm-status-command",
    "squeue",
    "--slurm-no-account",  # no accounting database on the test cluster
    # The executor checks first after this many seconds and waits 10 s longer after each check that finds
    # no job finished (snakemake-executor-plugin-slurm's backoff): 1 s makes each step of the chain 12 s.
    "--slurm-init-seconds-before-status-checks",
    "1",
    "--slurm-keep-successful-logs",
    # The test node has no GPU. A --set-resources on the command line replaces the profile's whole table,
    # so the jobs keep the rules' own memory figures and the profile's default runtime.
    "--set-resources",
    *[f"{rule}:gpu=0" for rule in GPU_RULES],
    # The threads of the local reference run (TINY's `threads`): CPU float results depend on them.
    "--set-threads",
    *[f"{rule}={threads}" for rule, threads in rule_threads(TINY["threads"]).items()],
]
# On the copy of the finished local run: the round-1 classifier and every job after it run again. Both runs
# below give it (a missing model.pt alone reruns nothing while the files made from it are there).
FROM_ROUND_1 = ("--forcerun", "results/classifier/r1/model.pt")
SUBMITTED = re.compile(r"submitted with SLURM jobid (\d+) \(log: (\S+)\)")


def missing_requirement() -> str | None:
    if os.geteuid() != 0:
        return "needs root to install and run Debian's slurmctld, slurmd and munge"
    installed = all(shutil.which(tool) for tool in ("slurmctld", "slurmd", "munged", "sbatch", "squeue", "scancel"))
    if not installed and not shutil.which("apt-get"):
        return "SLURM is not installed and there is no apt-get to install it"
    return None


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    reason = missing_requirement()
    if reason:
        pytest.skip(reason)
    state = tmp_path_factory.mktemp("slurm")
    started = subprocess.run([HELPER, "up", state], capture_output=True, text=True)
    if started.returncode != 0:
        pytest.fail(f"could not start the SLURM test cluster:\n{started.stdout}\n{started.stderr}")
    yield state
    subprocess.run([HELPER, "down", state], check=True)


@pytest.fixture(scope="module")
def slurm_workdir(slurm_cluster, tiny_reference, tmp_path_factory):
    return copy_finished_run(tiny_reference, tmp_path_factory.mktemp("slurm_workflow") / "project")


def submitted_jobs(output: str, workdir: Path) -> list[tuple[str, str, Path]]:
    """(job id, rule folder, log) of each job the executor reports submitting in a run's output; the logs
    are under .snakemake/slurm_logs/rule_<rule>/."""
    slurm_logs = workdir / ".snakemake" / "slurm_logs"
    return [
        (job_id, Path(log).relative_to(slurm_logs).parts[0], Path(log)) for job_id, log in SUBMITTED.findall(output)
    ]


def slurm_job_id(comment: str) -> str:
    """The id of the queued or running job whose comment (set by the executor: rule and wildcards) matches."""
    listing = subprocess.run(["squeue", "-h", "-o", "%i|%k"], capture_output=True, text=True, check=True).stdout
    ids = [line.split("|")[0] for line in listing.splitlines() if line.split("|", 1)[1] == comment]
    assert len(ids) == 1, listing
    return ids[0]


@pytest.mark.slurm
def test_classifier_job_killed_mid_training(slurm_workdir):
    checkpoint = slurm_workdir / "results" / "classifier" / "r1" / "checkpoint.pt"
    log_path = slurm_workdir / "first_run.log"
    # --retries 0: the kill ends this run (with the profile's retries, Snakemake would resubmit it itself)
    command = snakemake_command("results/miou.parquet", *SLURM_ARGS, *FROM_ROUND_1, "--retries", "0")
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=slurm_workdir, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 1200
        while not checkpoint.exists():
            if process.poll() is not None or time.time() > deadline:
                process.kill()
                pytest.fail(f"no classifier checkpoint appeared:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.05)
        try:
            # the executor joins the wildcard values with "_": expdir ("" outside a grid), then round 1
            subprocess.run(["scancel", slurm_job_id("rule_train_classifier_wildcards__1")], check=True)
        except BaseException:
            process.kill()  # not left holding the workflow's lock for the next test
            raise
        assert process.wait(timeout=1200) != 0
    output = log_path.read_text()
    assert "SLURM status is: 'CANCELLED'" in output, output[-4000:]
    assert [rule for _, rule, _ in submitted_jobs(output, slurm_workdir)] == ["rule_train_classifier"]
    assert not (slurm_workdir / "results" / "classifier" / "r1" / "model.pt").exists(), "killed after training ended"
    assert torch.load(checkpoint, weights_only=True)["epoch"] in (1, 2, 3)  # of 4 epochs


@pytest.mark.slurm
def test_rerun_resumes_and_matches_local_run(slurm_workdir, tiny_reference):
    result = run(slurm_workdir, "results/miou.parquet", *SLURM_ARGS, *FROM_ROUND_1)
    output = result.stdout + result.stderr
    training_log = (slurm_workdir / "logs" / "train_classifier" / "r1.log").read_text()
    assert re.search(r"resumed from checkpoint \S+ after epoch [123]\n", training_log), training_log[-3000:]
    assert not (slurm_workdir / "results" / "classifier" / "r1" / "checkpoint.pt").exists()

    submitted = submitted_jobs(output, slurm_workdir)
    rules = {rule for _, rule, _ in submitted}
    # every rule the profile submits but the data's (upstream of the round-1 classifier) and the switches the tiny
    # run leaves off (no new photos to segment, no saliency, the classifier's own CAMs: no ReCAM, no CLIP-ES)
    unplanned = (
        "dataset_index",
        "image_labels",
        "segment_photos",
        "saliency",
        "evaluate_saliency_oracle",
        "train_recam",
        "recam_cams",
        "clip_es",
        "clip_es_labels",
    )
    assert rules == {f"rule_{rule}" for rule in SUBMITTED_RULES if rule not in unplanned}, output[-4000:]
    assert all(log.is_file() and log.stem == job_id for job_id, _, log in submitted)
    states = subprocess.run(
        ["squeue", "-h", "--states=all", "-o", "%T", "-j", ",".join(i for i, _, _ in submitted)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert states == ["COMPLETED"] * len(submitted)
    assert "localrule miou_table:" in output  # a local rule: run by Snakemake itself, never submitted

    pd.testing.assert_frame_equal(
        pd.read_parquet(slurm_workdir / "results" / "miou.parquet"),
        pd.read_parquet(tiny_reference / "results" / "miou.parquet"),
    )
