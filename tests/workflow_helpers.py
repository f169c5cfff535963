"""Running the workflow through Snakemake's CLI on a tiny demo config, in a copy of the repository."""

import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
BIN = Path(sys.executable).parent
# For project copies run as a user would (make, dvc, git): this venv's tools on PATH, a git identity to commit with
ENV = {
    **os.environ,
    "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@t",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@t",
}
TINY = {
    "demo": {"num_train": 12, "num_val": 6, "size_range": [40, 56], "background_only_fraction": 0.1},
    "shards": 2,
    # One thread a job: make test runs the suite in one pytest-xdist worker per core, and two workers' two-thread
    # jobs on two cores wait on each other's threads at every small operation (a tiny training 4-5x slower)
    "threads": {"train": 1, "infer": 1, "crf": 1, "evaluate": 1},
    # 4 epochs: the SLURM kill test needs a classifier that checkpoints and is still training
    "classifier": {"epochs": 4, "batch_size": 4, "resize_long": [40, 56], "crop_size": 40},
    # inference at the long side the networks train at (as the default config: resize_long's maximum)
    "cam": {"scales": [1.0, 0.5], "oracle_thresholds": [0.1, 0.3], "long_side": 56},
    "segmentation": {"epochs": 1, "batch_size": 4, "resize_long": [40, 56], "crop_size": 40, "long_side": 56},
    "report": {"sample_size": 3, "best": 1, "worst": 1, "val_sample_size": 2},
}
# The experiments grid on the tiny config (tests/workflow/test_grid.py; its run is conftest.py's grid_run).
# cam and gradcampp share the round-0 classifier; cam_erasing also cam's round-0 CAMs; the three share the
# fully-supervised bound. cam_erasing has the tiny config's own settings (2 rounds). unet_ms_crf shares
# everything up to the pseudo-masks with cam_erasing; its networks (and its bound) are its own: U-Net with
# transposed convolutions, predicting over 2 scales + flip + a dense CRF. seam trains its own classifier
# (classifier.method seam: two branches and the PCM) and goes on like cam from its CAMs.
GRID_CRF = {"iterations": 5, "gaussian": {"sxy": 1, "compat": 3}, "bilateral": {"sxy": 10, "srgb": 3, "compat": 4}}
GRID_UNET = {"arch": "unet", "output_stride": 32, "upsampling": "transpose"}
GRID_EXPERIMENTS = {
    "cam": {"erasing": {"rounds": 1}},
    "gradcampp": {"erasing": {"rounds": 1}, "cam": {"method": "gradcampp"}},
    "cam_erasing": {"erasing": {"rounds": 2}},
    "unet_ms_crf": {
        "erasing": {"rounds": 2},
        "segmentation": {**GRID_UNET, "inference": {"scales": [0.75, 1.0], "flip": True, "crf": GRID_CRF}},
    },
    "seam": {"erasing": {"rounds": 1}, "classifier": {"method": "seam", "seam": {"scale": 0.5}}},
    # the background reading's methods through the workflow: Mixup-CAM's classifier, pseudo-masks with OpenCV's
    # saliency as the background (and its oracle stage), a network trained with SEC's loss, predictions on tiles
    "reading": {
        "erasing": {"rounds": 1},
        "classifier": {"mixup": {"alpha": 0.2, "entropy_weight": 0.02, "concentration_weight": 2.0e-4}},
        "saliency": {"source": "spectral_residual"},
        "pseudo_mask": {"saliency_threshold": 0.3},
        "segmentation": {"loss": "sec", "inference": {"tile": {"size": 32, "overlap": 8}}},
    },
    # cam's pseudo-masks, networks (both) with median-frequency class weights
    "cam_weights": {"erasing": {"rounds": 1}, "segmentation": {"class_weights": "median_frequency"}},
}
# One shard (the tiny config has 2): half the per-shard jobs, and cam_erasing matching the plain 2-shard run
# exactly shows that the shard count changes no figure.
GRID = {"shards": 1, "experiments": GRID_EXPERIMENTS}
GRID_FILES = ("tiny.yaml", "grid.yaml")
# The workflow tests' folder: `make unit` (pytest tests/unit) leaves it out
WORKFLOW_TESTS = REPO / "tests" / "workflow"
WORKFLOW_FILES = ("Snakefile", "workflow", "scripts", "config")
# The default networks' ImageNet weights: written from the installed package, never downloaded
DEFAULT_WEIGHTS = "resources/weights/efficientnet_lite0.IMAGENET1K_V1.pth"

current_test = None  # the pytest item being run, its fixtures' setup and teardown included (set by conftest.py)


class NotAWorkflowTest(AssertionError):
    pass


def require_workflow_test(helper: str) -> None:
    """Fail a test outside tests/workflow/ that runs the workflow: `make unit` would run it. Outside pytest
    (no current test) there is nothing to check."""
    if current_test is not None and not current_test.path.is_relative_to(WORKFLOW_TESTS):
        raise NotAWorkflowTest(
            f"{current_test.nodeid} uses {helper} (the workflow on a project copy) but is not in tests/workflow/: "
            "move it there, where `make unit` does not run it"
        )


def resource_files(workdir: Path) -> list[str]:
    """The files under workdir/resources (downloads, the demo, weights), relative to workdir."""
    return sorted(p.relative_to(workdir).as_posix() for p in (Path(workdir) / "resources").rglob("*") if p.is_file())


def copy_workflow(root: Path, config: dict = TINY) -> Path:
    """The workflow's files in root, with config (default: the tiny one) as tiny.yaml."""
    require_workflow_test("copy_workflow")
    root.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, root / name)
    (root / "tiny.yaml").write_text(yaml.safe_dump(config))
    return root


def copy_grid(root: Path) -> Path:
    """The workflow's files in root with the tiny config and the grid (GRID) as grid.yaml: run it with
    configfiles=GRID_FILES."""
    copy_workflow(root)
    (root / "grid.yaml").write_text(yaml.safe_dump(GRID, sort_keys=False))
    return root


def copy_finished_run(source: Path, target: Path) -> Path:
    """A copy of a project that has run (its results, logs and .snakemake metadata), file times kept, so
    Snakemake finds it as up to date as the original: for tests that change or extend a finished run."""
    require_workflow_test("copy_finished_run")
    shutil.copytree(source, target, symlinks=True)
    return target


def snakemake_command(*args, configfiles=("tiny.yaml",)) -> list[str]:
    """--configfile goes last because it takes several files."""
    require_workflow_test("snakemake_command")
    return [str(SNAKEMAKE), "--cores", "2", *args, "--configfile", *configfiles]


def run(workdir, *args, check=True, configfiles=("tiny.yaml",), env=None):
    require_workflow_test("workflow_helpers.run")
    result = subprocess.run(
        snakemake_command(*args, configfiles=configfiles), cwd=workdir, capture_output=True, text=True, env=env
    )
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


def _import_snakemake() -> None:
    import snakemake.cli  # noqa: F401  (what each forked dry run would otherwise import again)


def _forked_dry_run(workdir, args, configfiles) -> tuple[int, str]:
    """`snakemake -n` as snakemake_command gives it, in a child forked from this worker (which imported
    Snakemake once): each run starts from the same clean state; returns its exit code and output."""
    import snakemake.cli

    with tempfile.TemporaryFile() as output:
        pid = os.fork()
        if pid == 0:  # the child: the console script's main() with its arguments, output to the file
            code = 1
            try:
                os.chdir(workdir)
                os.dup2(output.fileno(), 1)
                os.dup2(output.fileno(), 2)
                snakemake.cli.main(snakemake_command("-n", *args, configfiles=configfiles)[1:])
                code = 0
            except SystemExit as exit:
                code = exit.code if isinstance(exit.code, int) else 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        output.seek(0)
        return os.waitstatus_to_exitcode(status), output.read().decode()


def dry_run_plans(workdir, runs: list[tuple[tuple, tuple]], workers: int = 2) -> list[dict[str, int]]:
    """job_counts of `snakemake -n *args --configfile *configfiles` for each (args, configfiles) of runs, in
    order: the same command line as run's, from processes that import Snakemake once (a dry run's own cost
    is a third of a fresh interpreter's)."""
    require_workflow_test("dry_run_plans")
    context = multiprocessing.get_context("forkserver")
    with context.Pool(workers, initializer=_import_snakemake) as pool:
        results = pool.starmap(_forked_dry_run, [(workdir, args, configfiles) for args, configfiles in runs])
    failed = [(args, configfiles, out) for (code, out), (args, configfiles) in zip(results, runs) if code != 0]
    if failed:
        args, configfiles, out = failed[0]
        command = f"snakemake -n {' '.join(args)} --configfile {' '.join(configfiles)}"
        raise AssertionError(f"{command} failed:\n{out[-5000:]}")
    return [job_counts(out) for _, out in results]


def job_counts(dry_run_output: str) -> dict[str, int]:
    """Rule -> job count from a dry run's job table (empty when there is nothing to do)."""
    table = re.search(r"Job stats:\n.*?\n-+\s+-+\n(.*?)\ntotal", dry_run_output, re.S)
    return {} if table is None else {line.split()[0]: int(line.split()[1]) for line in table.group(1).splitlines()}


def planned_jobs(workdir, *targets) -> dict[str, int]:
    """Rule -> job count of a dry run of the targets with the tiny config."""
    return job_counts(run(workdir, "-n", *targets).stdout)


def fake_venv(target: Path) -> Path:
    """target/.venv: symlinks to this interpreter's venv and a fresh install stamp (.installed, newer than the
    copy's pyproject.toml), so the Makefile's targets install nothing, and never into the shared venv."""
    require_workflow_test("fake_venv")
    venv = target / ".venv"
    venv.mkdir()
    for entry in Path(sys.executable).parents[1].iterdir():
        if not entry.name.startswith("."):
            (venv / entry.name).symlink_to(entry)
    (venv / ".installed").touch()
    return venv
