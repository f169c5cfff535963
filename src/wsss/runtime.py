"""Process set-up shared by every step: logging to the rule's log file, threads, seeds, device."""

from __future__ import annotations

import logging
import os
import random
import sys

import numpy as np
import torch

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
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    if seed is not None:
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    log.info("threads=%d seed=%s torch=%s", threads, seed, torch.__version__)


def device() -> torch.device:
    """CUDA when available, else CPU; the choice and the device name are logged."""
    if torch.cuda.is_available():
        chosen = torch.device("cuda")
        log.info("device: cuda (%s)", torch.cuda.get_device_name(chosen))
    else:
        chosen = torch.device("cpu")
        log.info("device: cpu")
    return chosen
