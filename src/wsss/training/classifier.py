"""The multi-label classifier step: dataset, training with multi-label soft-margin loss, epoch mAP."""

from __future__ import annotations

import logging

import pandas as pd
import torch

from wsss.nets.checkpoints import load_checkpoint, load_state
from wsss.nets.expansion import make_classifier
from wsss.nets.imagenet_head import init_head_from_imagenet
from wsss.nets.models import Classifier
from wsss.nets.transforms import normalised_colour
from wsss.scoring.metrics import average_precision
from wsss.seeds.erasing import Eraser
from wsss.training.datasets import ClassificationDataset, TrainingImages
from wsss.training.loop import TrainingJob, train_and_save
from wsss.training.mixup import OFF, batch_mixer, regularised_loss

log = logging.getLogger(__name__)


def trainable_ids(image_ids, labels) -> list[str]:
    """Images with at least one foreground label; the rest teach a multi-label classifier nothing."""
    kept = [i for i in image_ids if labels[i]]
    dropped = len(image_ids) - len(kept)
    log.info("classifier training on %d images; %d without a foreground label left out", len(kept), dropped)
    return kept


def train_classifier(
    images: TrainingImages,
    settings: dict,
    job: TrainingJob,
    eraser: Eraser | None = None,
    round_index: int = 0,
    hide_fill_rgb=None,
    class_names: list[str] | None = None,
) -> pd.DataFrame:
    """Train one round's classifier on images' image-level labels (settings: the classifier section); resumes
    from the job's checkpoint when it is of the same fingerprint (see training.fit), and removes it once the
    model and history are written.

    hide_fill_rgb: the dataset mean colour (RGB, 0-255) Hide-and-Seek fills hidden patches with, as
    erasing fills mined regions; required when settings["hide_and_seek"]["hide_prob"] > 0.
    class_names: the config's classes (background first); settings["head_init"] imagenet starts the CAM head
    of the named classes from the ImageNet classifier in the weights file (wsss.nets.imagenet_head).
    settings["mixup"] (Mixup-CAM, wsss.training.mixup; absent: off) mixes the batches the dataset gives, after
    erasing and Hide-and-Seek, and adds its regularisers to the method's loss.
    """
    dataset, labels, weights = images.dataset, images.targets, job.weights
    num_foreground = images.num_classes - 1
    hiding = settings["hide_and_seek"]
    dataset = ClassificationDataset(
        dataset,
        trainable_ids(images.image_ids, labels),
        labels,
        num_foreground,
        settings["resize_long"],
        settings["crop_size"],
        eraser,
        hiding["hide_prob"],
        hiding["patch_size"],
        None if hide_fill_rgb is None else normalised_colour(hide_fill_rgb),
    )
    torch.manual_seed(job.seed)
    method = settings["method"]
    model = make_classifier(
        method,
        settings["backbone"],
        num_foreground,
        settings["output_stride"],
        weights,
        settings["pooling"],
        settings["tap_threshold"],
        settings["frozen_bn"],
        settings["frozen_stages"],
        method_settings=settings.get(method),
    )
    if settings.get("head_init", "random") == "imagenet":
        if not weights or class_names is None:
            raise ValueError("classifier.head_init: imagenet needs classifier.pretrained weights and the class names")
        init_head_from_imagenet(model.classifier, weights, list(class_names[1:]))
    backbone, head = model.param_groups()
    mixup = settings.get("mixup", OFF)
    loss = regularised_loss(model, mixup)
    scores, targets = [], []

    def on_batch(outputs, batch_targets):
        scores.append(model.batch_logits(outputs).detach().float().cpu())
        targets.append((batch_targets > 0).float().cpu())  # a mixed image shows both images' classes

    def on_epoch_end():
        result = {"mAP": average_precision(torch.cat(scores).numpy(), torch.cat(targets).numpy())}
        scores.clear()
        targets.clear()
        return result

    meta = dict(
        arch=settings["backbone"],
        output_stride=settings["output_stride"],
        num_foreground=num_foreground,
        pooling=model.pooling,
        tap_threshold=model.tap_threshold,
        method=model.method,
        method_settings=model.method_settings(),
    )
    return train_and_save(
        model,
        dataset,
        loss,
        backbone,
        head,
        settings,
        job,
        meta,
        {"round": round_index},
        desc=f"classifier r{round_index}",
        on_batch=on_batch,
        on_epoch_end=on_epoch_end,
        mix=batch_mixer(mixup["alpha"]),
    )


def load_classifier(path) -> Classifier:
    """The saved classifier in eval mode (of its classifier.method; models saved before methods: classic CAM)."""
    checkpoint = load_checkpoint(path)
    meta = checkpoint["meta"]
    model = make_classifier(
        meta.get("method", "cam"),
        meta["arch"],
        meta["num_foreground"],
        meta["output_stride"],
        pooling=meta["pooling"],
        tap_threshold=meta["tap_threshold"],
        method_settings=meta.get("method_settings"),
    )
    return load_state(model, checkpoint, path).eval()
