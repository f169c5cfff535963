"""Writing files so that a kill never leaves half of one under its final name."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def temporary_name(path: Path) -> Path:
    """Where a file is written before it is renamed to path: hidden, next to it (same file system)."""
    return path.with_name(f".{path.name}.tmp")


@contextmanager
def atomic_write(path) -> Iterator[Path]:
    """A temporary path to write to, renamed to path when the block succeeds (and removed when it fails).

    A file under its final name is then complete: a rerun after a kill can trust every file it finds
    (wsss.pipeline.partial_work removes the temporary ones a kill left behind).
    """
    path = Path(path)
    tmp = temporary_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
