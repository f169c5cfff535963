"""One plain training loop (SGD + poly decay) for the classifier and the segmentation network."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

log = logging.getLogger(__name__)


def make_loader(dataset: Dataset, batch_size: int, num_workers: int, seed: int) -> DataLoader:
    """Shuffled batches from a seeded generator (workers are seeded from it too, so runs repeat)."""
    if len(dataset) == 0:
        raise ValueError("no training images")
    return DataLoader(
        dataset,
        batch_size=min(batch_size, len(dataset)),
        shuffle=True,
        drop_last=len(dataset) > batch_size,  # avoid a size-1 last batch, which BatchNorm cannot train on
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(seed),
    )


def fit(
    model: nn.Module,
    loader: DataLoader,
    loss_fn: Callable[[object, torch.Tensor], torch.Tensor],
    param_groups: list[tuple[list, float]],
    settings: dict,
    device: torch.device,
    checkpoint_path: Path,
    desc: str,
    on_batch: Callable[[object, torch.Tensor], None] | None = None,
    on_epoch_end: Callable[[], dict] | None = None,
) -> list[dict]:
    """Train for settings['epochs'] epochs; returns one record per epoch (loss, lr, seconds, extras).

    param_groups: (parameters, lr multiplier) pairs. The model, optimiser and scheduler are checkpointed
    after every epoch, atomically, to checkpoint_path.
    """
    optimizer = torch.optim.SGD(
        [{"params": params, "lr": settings["lr"] * mult} for params, mult in param_groups],
        lr=settings["lr"],
        momentum=settings["momentum"],
        weight_decay=settings["weight_decay"],
    )
    total_steps = max(1, settings["epochs"] * len(loader))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: max(0.0, 1 - step / total_steps) ** settings["poly_power"]
    )
    model.to(device)
    history = []
    for epoch in range(1, settings["epochs"] + 1):
        model.train()
        started, loss_sum, seen = time.time(), 0.0, 0
        bar = tqdm(loader, desc=f"{desc} epoch {epoch}/{settings['epochs']}", mininterval=5)
        for inputs, targets in bar:
            inputs, targets = inputs.to(device), targets.to(device)
            outputs = model(inputs)
            loss = loss_fn(outputs, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
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
        tmp = Path(f"{checkpoint_path}.tmp")
        torch.save(
            {"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "history": history},
            tmp,
        )
        os.replace(tmp, checkpoint_path)
    return history
