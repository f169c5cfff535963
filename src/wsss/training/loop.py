"""One plain training loop (SGD + poly decay) for the classifier and the segmentation network."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from wsss.nets.checkpoints import load_checkpoint, save_checkpoint, save_model
from wsss.nets.hardware import memory_format
from wsss.pipeline.partial_work import fingerprint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingJob:
    """What a training step is told besides its settings, the same for every trained network: where it
    writes, its seed and device, the ImageNet weights file its backbone starts from, and how it resumes
    (a checkpoint every checkpoint_every epochs, continued only by a job of the same fingerprint)."""

    model_path: Path
    history_path: Path
    checkpoint_path: Path
    seed: int = 0
    device: str | torch.device = "cpu"
    weights: str | Path | None = None
    fingerprint: str = ""
    checkpoint_every: int = 1

    @classmethod
    def for_rule(cls, smk, seed: int, device, **fingerprinted) -> TrainingJob:
        """The job of a Snakemake training rule (its snakemake object: outputs model and history, inputs,
        params, config), with the partial-work fingerprint of its params plus fingerprinted and its inputs.
        The checkpoint lies beside the model but is not a declared output, so Snakemake keeps it when a
        killed job reruns, which then resumes from it."""
        weights = smk.input.get("weights", [])
        return cls(
            Path(smk.output.model),
            Path(smk.output.history),
            Path(smk.output.model).with_name("checkpoint.pt"),
            seed,
            device,
            weights[0] if weights else None,
            fingerprint(dict(smk.params.items(), **fingerprinted), smk.input),
            smk.config["checkpoint_every"],
        )


def make_loader(dataset: Dataset, batch_size: int, num_workers: int, seed: int, pin_memory: bool = False) -> DataLoader:
    """Shuffled batches from a seeded generator (workers are seeded from it too, so runs repeat).

    The generator drives both the shuffling and the workers' seeds; its state is checkpointed, so a resumed
    run sees the same batches as an uninterrupted one.
    """
    if len(dataset) == 0:
        raise ValueError("no training images")
    return DataLoader(
        dataset,
        batch_size=min(batch_size, len(dataset)),
        shuffle=True,
        drop_last=len(dataset) > batch_size,  # avoid a size-1 last batch, which BatchNorm cannot train on
        num_workers=num_workers,
        pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(seed),
    )


def rng_state(loader: DataLoader) -> dict:
    """Every random state a training epoch draws from: torch (CPU and CUDA), numpy, Python, the loader's."""
    state = {
        "torch": torch.get_rng_state(),
        "numpy": _numpy_state_to_plain(np.random.get_state()),
        "python": random.getstate(),
        "loader": loader.generator.get_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(loader: DataLoader, state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(_numpy_state_from_plain(state["numpy"]))
    random.setstate(_as_tuples(state["python"]))
    loader.generator.set_state(state["loader"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _numpy_state_to_plain(state) -> dict:
    """np.random's state without an ndarray, so the checkpoint loads with torch.load(weights_only=True)."""
    name, keys, pos, has_gauss, cached = state
    return {
        "name": name,
        "keys": torch.from_numpy(keys.astype(np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached": float(cached),
    }


def _numpy_state_from_plain(state: dict):
    keys = state["keys"].numpy().astype(np.uint32)
    return state["name"], keys, state["pos"], state["has_gauss"], state["cached"]


def _as_tuples(value):
    """random.setstate needs the nested tuples that a save/load round trip may have turned into lists."""
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def to_device(targets, device: torch.device, host_targets=()):
    """A batch's targets on the device: a tensor, or a dict of tensors (SEC's) whose host_targets keys stay on
    the CPU (what only CPU code reads: the CRF's image)."""
    if isinstance(targets, dict):
        return {k: v if k in host_targets else v.to(device, non_blocking=True) for k, v in targets.items()}
    return targets.to(device, non_blocking=True)


def load_resumable(checkpoint_path: Path, fingerprint: str) -> dict | None:
    """The checkpoint to resume from, or None: missing, unreadable, or written by a different job
    (other settings or inputs: a different fingerprint), which must not be continued."""
    checkpoint_path = Path(checkpoint_path)
    if not checkpoint_path.is_file():
        return None
    try:
        checkpoint = load_checkpoint(checkpoint_path)
    except Exception as error:  # a checkpoint is only ever replaced atomically, but disks fail
        log.warning("checkpoint %s unreadable (%s): training from scratch", checkpoint_path, error)
        return None
    if checkpoint.get("fingerprint") != fingerprint:
        log.info("checkpoint %s is from other settings or inputs: training from scratch", checkpoint_path)
        return None
    return checkpoint


# settings["optimizer"]: SGD with momentum (DeepLab's and IRN's) or AdamW (decoupled weight decay, Loshchilov &
# Hutter), whose first-moment decay is settings["momentum"].
OPTIMIZERS = {
    "sgd": lambda groups, s: torch.optim.SGD(
        groups, lr=s["lr"], momentum=s["momentum"], weight_decay=s["weight_decay"]
    ),
    "adamw": lambda groups, s: torch.optim.AdamW(
        groups, lr=s["lr"], betas=(s["momentum"], 0.999), weight_decay=s["weight_decay"]
    ),
}


def make_optimizer(groups: list[dict], settings: dict) -> torch.optim.Optimizer:
    name = settings["optimizer"]
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {name!r}")
    return OPTIMIZERS[name](groups, settings)


def fit(
    model: nn.Module,
    loader: DataLoader,
    loss_fn: Callable[[object, torch.Tensor], torch.Tensor],
    param_groups: list[tuple[list, float]],
    settings: dict,
    job: TrainingJob,
    desc: str,
    on_batch: Callable[[object, torch.Tensor], None] | None = None,
    on_epoch_end: Callable[[], dict] | None = None,
    mixed_precision: bool | None = None,
    mix: Callable[[torch.Tensor, torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor]] | None = None,
    host_targets: tuple[str, ...] = (),
) -> list[dict]:
    """Train for settings['epochs'] epochs; returns one record per epoch (loss, lr, seconds, extras).

    param_groups: (parameters, lr multiplier) pairs, trained by settings["optimizer"] (OPTIMIZERS) with poly
    decay, on job.device. Every job.checkpoint_every epochs, model, optimiser, scheduler, gradient scaler, RNG
    states and history are written atomically to job.checkpoint_path, tagged with job.fingerprint (its settings
    and inputs). A call that finds a checkpoint with the same fingerprint resumes after its epoch; on CPU the
    result is bit-identical to an uninterrupted run.
    mixed_precision (default: on for CUDA) runs the forward pass under autocast with a gradient scaler.
    mix (inputs, targets, generator) -> (inputs, targets): each batch, on the device, before the forward pass
    (mixup, wsss.training.mixup); it draws from the loader's generator, whose state the checkpoint keeps, so a
    resumed run mixes as an uninterrupted one. None: batches as the loader gives them.
    Targets are a tensor, or a dict of tensors whose host_targets keys stay on the CPU (to_device).
    """
    # Frozen parameters (requires_grad False) stay out of the optimiser: no update, not even weight decay.
    groups = [
        {"params": [p for p in params if p.requires_grad], "lr": settings["lr"] * mult} for params, mult in param_groups
    ]
    optimizer = make_optimizer(groups, settings)
    total_steps = max(1, settings["epochs"] * len(loader))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: max(0.0, 1 - step / total_steps) ** settings["poly_power"]
    )
    device = torch.device(job.device)
    if mixed_precision is None:
        mixed_precision = device.type == "cuda"
    amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    scaler = torch.amp.GradScaler(device.type, enabled=mixed_precision)
    model_format = memory_format(device)
    model.to(device, memory_format=model_format)
    log.info(
        "%s: device %s, mixed precision %s, channels_last %s",
        desc,
        device,
        mixed_precision,
        model_format is torch.channels_last,
    )

    history, start = [], 1
    checkpoint = load_resumable(job.checkpoint_path, job.fingerprint)
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        if scaler.is_enabled() and checkpoint["scaler"]:
            scaler.load_state_dict(checkpoint["scaler"])
        set_rng_state(loader, checkpoint["rng"])
        history, start = list(checkpoint["history"]), checkpoint["epoch"] + 1
        log.info("%s: resumed from checkpoint %s after epoch %d", desc, job.checkpoint_path, checkpoint["epoch"])

    for epoch in range(start, settings["epochs"] + 1):
        model.train()
        started, loss_sum, seen = time.time(), 0.0, 0
        bar = tqdm(loader, desc=f"{desc} epoch {epoch}/{settings['epochs']}", mininterval=5)
        for inputs, targets in bar:
            inputs = inputs.to(device, memory_format=model_format, non_blocking=True)
            targets = to_device(targets, device, host_targets)
            if mix is not None:
                inputs, targets = mix(inputs, targets, loader.generator)
                inputs = inputs.contiguous(memory_format=model_format)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=mixed_precision):
                outputs = model(inputs)
                loss = loss_fn(outputs, targets)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            loss_sum += loss.item() * len(inputs)
            seen += len(inputs)
            bar.set_postfix(loss=f"{loss.item():.4f}")
            if on_batch is not None:
                on_batch(outputs, targets)
        record = {"epoch": epoch, "loss": loss_sum / seen, "lr": optimizer.param_groups[0]["lr"]}
        record["seconds"] = time.time() - started
        if on_epoch_end is not None:
            record.update(on_epoch_end())
        history.append(record)
        log.info("%s epoch %d: %s", desc, epoch, {k: round(v, 5) for k, v in record.items()})
        if epoch % job.checkpoint_every == 0 and epoch < settings["epochs"]:
            save_checkpoint(
                job.checkpoint_path,
                {
                    "epoch": epoch,
                    "fingerprint": job.fingerprint,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(),
                    "rng": rng_state(loader),
                    "history": history,
                },
            )
            log.info("%s: checkpoint after epoch %d: %s", desc, epoch, job.checkpoint_path)
    return history


def discard_checkpoint(path: Path) -> None:
    """Called once a run's outputs are written: a finished run leaves no checkpoint to resume."""
    Path(path).unlink(missing_ok=True)


def train_and_save(
    model: nn.Module,
    dataset: Dataset,
    loss_fn: Callable[[object, torch.Tensor], torch.Tensor],
    backbone: list,
    head: list,
    settings: dict,
    job: TrainingJob,
    meta: dict,
    history_columns: dict | None = None,
    **fit_options,
) -> pd.DataFrame:
    """fit() on dataset with the settings' loader (batch size, workers; seeded by job.seed) and two learning
    rates (the head's x settings["head_lr_mult"]); then the model with its meta and the per-epoch history
    (plus history_columns) are written to the job's paths and its checkpoint removed."""
    cuda = torch.device(job.device).type == "cuda"
    loader = make_loader(dataset, settings["batch_size"], settings["num_workers"], job.seed, cuda)
    groups = [(backbone, 1.0), (head, settings["head_lr_mult"])]
    history = fit(model, loader, loss_fn, groups, settings, job, **fit_options)
    save_model(job.model_path, model.cpu(), **meta)
    frame = pd.DataFrame(history).assign(**(history_columns or {}))
    frame.to_parquet(job.history_path, index=False)
    discard_checkpoint(job.checkpoint_path)
    return frame
