"""Restarting killed jobs: what identifies a job's work, and per-shard work directories that outlive a kill.

Snakemake deletes the declared outputs of a failed or killed job before it runs again. Partial work
therefore lives next to the output, under a name Snakemake does not know: a training checkpoint, or a
hidden work directory `.<output name>.partial-<fingerprint>` that is renamed to the output when the job
ends. The fingerprint ties that partial work to the job's parameters and inputs, so a rerun with other
settings or regenerated inputs starts from scratch instead of continuing stale work.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)


def fingerprint(params: dict, inputs) -> str:
    """A short hash of a job's parameters and of its inputs' identity (path, size, modification time).

    Regenerating an input (a retrained model, a rebuilt shard directory) changes its modification time,
    and so the fingerprint. Threads and the checkpoint interval are not parameters: they do not change
    results.
    """
    stamps = []
    for path in inputs:
        status = os.stat(path)
        stamps.append([str(path), status.st_size if Path(path).is_file() else 0, status.st_mtime_ns])
    blob = json.dumps({"params": params, "inputs": stamps}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@contextmanager
def shard_work_dir(out_dir, job_fingerprint: str) -> Iterator[Path]:
    """A work directory for one shard's per-image files, renamed to out_dir when the block succeeds.

    A killed job leaves it behind; the rerun with the same fingerprint continues in it (the per-image
    writers skip files already written, and those are complete because they are written atomically).
    Work directories of other fingerprints for the same output are stale and deleted.
    """
    out_dir = Path(out_dir)
    work = out_dir.with_name(f".{out_dir.name}.partial-{job_fingerprint}")
    for stale in out_dir.parent.glob(f".{out_dir.name}.partial-*"):
        if stale != work:
            log.info("removing stale partial work %s (other settings or inputs)", stale)
            shutil.rmtree(stale)
    if work.is_dir():
        for leftover in work.glob(".*.tmp"):  # a write the kill interrupted, never renamed
            leftover.unlink()
        log.info("continuing partial work in %s", work)
    work.mkdir(parents=True, exist_ok=True)
    yield work
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(work, out_dir)
