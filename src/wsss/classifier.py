"""The multi-label classifier step: dataset, training with multi-label soft-margin loss, epoch mAP."""

from __future__ import annotations

import logging

import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .erasing import Eraser
from .metrics import average_precision
from .models import Classifier, load_checkpoint, save_model
from .training import discard_checkpoint, fit, make_loader
from .transforms import augment
from .voc import VOCTree, read_image

log = logging.getLogger(__name__)


class ClassificationDataset(Dataset):
    """Augmented images (optionally with earlier rounds' regions erased) and multi-hot foreground targets."""

    def __init__(self, tree: VOCTree, image_ids, labels, num_foreground, resize_long, crop_size, eraser=None):
        self.tree, self.image_ids, self.labels = tree, list(image_ids), labels
        self.num_foreground, self.resize_long, self.crop_size, self.eraser = num_foreground, resize_long, crop_size, eraser

    def __len__(self):
        return len(self.image_ids)

    def __getitem__(self, index):
        image_id = self.image_ids[index]
        image = read_image(self.tree.image_path(image_id))
        if self.eraser is not None:
            image = self.eraser(image_id, image)
        x, _ = augment(image, None, self.resize_long, self.crop_size)
        target = torch.zeros(self.num_foreground)
        target[[c - 1 for c in self.labels[image_id]]] = 1
        return x, target


def trainable_ids(image_ids, labels) -> list[str]:
    """Images with at least one foreground label; the rest teach a multi-label classifier nothing."""
    kept = [i for i in image_ids if labels[i]]
    dropped = len(image_ids) - len(kept)
    log.info("classifier training on %d images; %d without a foreground label left out", len(kept), dropped)
    return kept


def train_classifier(
    tree: VOCTree,
    image_ids,
    labels,
    num_classes: int,
    settings: dict,
    seed: int,
    device,
    model_path,
    history_path,
    checkpoint_path,
    eraser: Eraser | None = None,
    round_index: int = 0,
    weights=None,
    fingerprint: str = "",
    checkpoint_every: int = 1,
) -> pd.DataFrame:
    """Train one round's classifier; resumes from checkpoint_path when it holds a checkpoint of the same
    fingerprint (see training.fit), and removes it once the model and history are written."""
    num_foreground = num_classes - 1
    dataset = ClassificationDataset(
        tree, trainable_ids(image_ids, labels), labels, num_foreground,
        settings["resize_long"], settings["crop_size"], eraser,
    )
    torch.manual_seed(seed)
    model = Classifier(settings["arch"], num_foreground, settings["output_stride"], weights)
    backbone, head = model.param_groups()
    scores, targets = [], []

    def on_batch(outputs, batch_targets):
        scores.append(outputs.detach().float().cpu())
        targets.append(batch_targets.cpu())

    def on_epoch_end():
        result = {"mAP": average_precision(torch.cat(scores).numpy(), torch.cat(targets).numpy())}
        scores.clear()
        targets.clear()
        return result

    history = fit(
        model,
        make_loader(dataset, settings["batch_size"], settings["num_workers"], seed, torch.device(device).type == "cuda"),
        F.multilabel_soft_margin_loss,
        [(backbone, 1.0), (head, settings["head_lr_mult"])],
        settings,
        device,
        checkpoint_path,
        desc=f"classifier r{round_index}",
        on_batch=on_batch,
        on_epoch_end=on_epoch_end,
        fingerprint=fingerprint,
        checkpoint_every=checkpoint_every,
    )
    save_model(model_path, model.cpu(), arch=settings["arch"], output_stride=settings["output_stride"],
               num_foreground=num_foreground)
    frame = pd.DataFrame(history).assign(round=round_index)
    frame.to_parquet(history_path, index=False)
    discard_checkpoint(checkpoint_path)
    return frame


def load_classifier(path) -> Classifier:
    checkpoint = load_checkpoint(path)
    meta = checkpoint["meta"]
    model = Classifier(meta["arch"], meta["num_foreground"], meta["output_stride"])
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()



