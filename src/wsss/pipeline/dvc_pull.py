"""Make artifacts pulled with DVC count as up to date for Snakemake, after checking them against dvc.lock.

DVC keeps no timestamps: a pulled file carries the time it was written, and Snakemake, which compares
modification times, would rerun steps whose outputs look older than their inputs. restore() checks every
output of every stage in dvc.lock against its recorded hash (a file's md5; for a directory, each file
against the ``.dir`` manifest in the DVC cache, and the manifest itself against its hash), removes
outputs that do not match, and asks Snakemake to ``--touch`` the targets ``dvc_<name>`` whose outputs
all verified: Snakemake touches all their jobs in DAG order and records its metadata, so a later config change
still reruns exactly what depends on it.

    python -m wsss.pipeline.dvc_pull [--cache .dvc/cache] [STAGE ...]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from wsss.data.download import file_digest
from wsss.pipeline.registry import dvc_target

NOT_PULLED = "not present"


@dataclass
class Report:
    touched: list[str] = field(default_factory=list)  # stages marked up to date
    absent: dict[str, list[str]] = field(default_factory=dict)  # stage -> outputs not in the workspace
    mismatched: dict[str, list[str]] = field(default_factory=dict)  # stage -> "path: reason", removed


def cache_object(cache: Path, md5: str) -> Path:
    """Where DVC 3 keeps an object: <cache>/files/md5/<first 2 hex digits>/<rest>."""
    return cache / "files" / "md5" / md5[:2] / md5[2:]


def load_lock(lock_path: Path) -> dict[str, list[dict]]:
    """Stage name -> its recorded outputs (path, md5, ...), from dvc.lock (schema 2.0)."""
    lock = yaml.safe_load(Path(lock_path).read_text()) or {}
    return {name: stage.get("outs", []) for name, stage in lock.get("stages", {}).items()}


def check_output(root: Path, entry: dict, cache: Path) -> str | None:
    """None when the output matches dvc.lock; otherwise why not (NOT_PULLED when it is absent)."""
    path = root / entry["path"]
    md5 = entry.get("md5")
    if md5 is None:
        return "no md5 recorded in dvc.lock"
    if not path.exists():
        return NOT_PULLED
    if not md5.endswith(".dir"):
        return None if path.is_file() and file_digest(path, "md5") == md5 else "content differs from dvc.lock"
    manifest_path = cache_object(cache, md5)
    if not manifest_path.is_file():
        return f"directory manifest {md5} is not in the DVC cache ({cache}); run dvc pull or dvc fetch"
    if file_digest(manifest_path, "md5") != md5[: -len(".dir")]:
        return f"directory manifest {manifest_path} is corrupt"
    expected = {item["relpath"]: item["md5"] for item in json.loads(manifest_path.read_text())}
    present = {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()}
    if present != set(expected):
        extra, missing = sorted(present - set(expected)), sorted(set(expected) - present)
        return f"files differ from dvc.lock (extra: {extra[:3]}, missing: {missing[:3]})"
    for relpath, file_md5 in expected.items():
        if file_digest(path / relpath, "md5") != file_md5:
            return f"{relpath}: content differs from dvc.lock"
    return None


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def restore(
    root: Path = Path("."),
    stages: list[str] | None = None,
    cache: Path | None = None,
    snakemake: str | None = None,
    cores: int = 1,
) -> Report:
    """Verify the outputs of the given stages (default: all in dvc.lock) and touch the verified ones."""
    root = Path(root)
    cache = Path(cache) if cache else root / ".dvc" / "cache"
    recorded = load_lock(root / "dvc.lock")
    unknown = sorted(set(stages or []) - set(recorded))
    if unknown:
        raise SystemExit(f"stages {unknown} are not in {root / 'dvc.lock'} (it has: {', '.join(recorded)})")
    report = Report()
    for stage in stages or list(recorded):
        problems = {entry["path"]: check_output(root, entry, cache) for entry in recorded[stage]}
        bad = {p: why for p, why in problems.items() if why is not None and why != NOT_PULLED}
        absent = [p for p, why in problems.items() if why == NOT_PULLED]
        for path, why in bad.items():
            remove(root / path)  # never left in place: Snakemake would take it as a valid output
            report.mismatched.setdefault(stage, []).append(f"{path}: {why}")
        if absent:
            report.absent[stage] = absent
        if not bad and not absent:
            report.touched.append(stage)
    if report.touched:
        # --forceall: also the jobs Snakemake would not rerun (e.g. the demo data, which has no inputs), so
        # every verified job gets its metadata recorded and a later config change still triggers it.
        snakemake = snakemake or str(Path(sys.executable).with_name("snakemake"))
        # the ImageNet weights are not shared through DVC (they install with the package): build them first
        subprocess.run([snakemake, "--cores", str(cores), "weights"], cwd=root, check=True)
        command = [snakemake, "--cores", str(cores), "--touch", "--forceall", *map(dvc_target, report.touched)]
        subprocess.run(command, cwd=root, check=True)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Verify pulled DVC outputs against dvc.lock and mark them up to date for Snakemake."
    )
    parser.add_argument("stages", nargs="*", help="stages of dvc.lock to restore (default: all)")
    parser.add_argument("--root", type=Path, default=Path("."), help="project root (holds dvc.lock)")
    parser.add_argument("--cache", type=Path, help="DVC cache directory (default: <root>/.dvc/cache)")
    args = parser.parse_args(argv)
    report = restore(args.root, args.stages or None, args.cache)
    for stage in report.touched:
        print(f"up to date for Snakemake: {stage}")
    for stage, paths in report.absent.items():
        print(f"skipped {stage}: not pulled ({', '.join(paths)})")
    for stage, problems in report.mismatched.items():
        for problem in problems:
            print(f"SKIPPED {stage}: {problem}; removed, Snakemake will recompute it", file=sys.stderr)
    return 1 if report.mismatched else 0


if __name__ == "__main__":
    sys.exit(main())
