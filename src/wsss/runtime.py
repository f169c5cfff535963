"""Process set-up shared by every step: logging to the rule's log file, threads, seeds.

torch is configured only when the step has loaded it: the CPU steps (CRF, pseudo-masks, scoring, tables,
figures) never import it, which spares each of their jobs the ~3 s that importing torch and switching on its
deterministic algorithms take (2-core machine: a CRF shard of the tiny demo, 4.1 s → 0.65 s in Snakemake's
benchmark; benchmarks/step_startup.py: 3.4-4.3 s → 0.2-0.9 s to start each CPU step).
Steps that use torch import their modules before calling setup, as every script in scripts/ does.
"""

from __future__ import annotations

import logging
import os
import random
import sys

import numpy as np

log = logging.getLogger("wsss")


def setup(log_path: str | None, threads: int, seed: int | None = None) -> None:
    """Send logging, warnings and tqdm (stderr) to the log file; honour the rule's threads; seed everything.

    Deterministic algorithms are switched on so a config and seed give the same files on CPU.
    """
    if log_path:
        os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
        stream = open(log_path, "w", buffering=1)
        sys.stdout = sys.stderr = stream
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True
    )
    logging.captureWarnings(True)
    threads = max(1, int(threads))
    os.environ["OMP_NUM_THREADS"] = str(threads)
    if seed is not None:
        random.seed(seed)
        np.random.seed(seed)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
        if seed is not None:
            torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
    log.info("threads=%d seed=%s torch=%s", threads, seed, torch.__version__ if torch else "not loaded")
