"""Checkpoint files: weights plus plain metadata, written atomically, read without unpickling
(torch.load(weights_only=True)). Every network module saves and loads through here."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from wsss.files import atomic_write


def save_checkpoint(path, checkpoint: dict) -> None:
    """torch.save to a temporary name, then rename: a kill never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp:
        torch.save(checkpoint, tmp)


def save_model(path, model: nn.Module, **meta) -> None:
    """Weights plus plain metadata, loadable with torch.load(weights_only=True)."""
    save_checkpoint(path, {"state_dict": model.state_dict(), "meta": meta})


def load_checkpoint(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def load_state(model: nn.Module, checkpoint: dict, path) -> nn.Module:
    """The checkpoint's weights into model; a model.pt whose weights do not fit (saved by an older version of
    this package, before the backbone registry) gets an error naming the file, not a key dump."""
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as error:
        raise ValueError(
            f"{path} does not fit the network its metadata describes ({checkpoint['meta']}); it was "
            f"probably saved by an older version of wsss: delete it and rerun its step"
        ) from error
    return model
