"""Helpers several test modules share (test modules never import each other): the classifier's CPU training
settings, kill-and-resume tools, IRN's tiny settings and its killed-and-resumed training, config merging."""

import shutil

import pytest
import torch
import yaml

import wsss.training.irn as irn
from tests.workflow_helpers import REPO
from wsss.pipeline.experiments import deep_merge
from wsss.training.classifier import train_classifier
from wsss.training.datasets import TrainingImages
from wsss.training.irn import load_irn, train_irn
from wsss.training.loop import TrainingJob

# The demo dataset of the session fixtures (conftest.py): its classes
DEMO_CLASSES = ["aeroplane", "bird", "car", "cat", "person"]

SETTINGS = {
    "backbone": "resnet18",
    "output_stride": 16,
    "epochs": 2,
    "batch_size": 4,
    "optimizer": "sgd",
    "lr": 0.01,
    "head_lr_mult": 10,
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "poly_power": 0.9,
    "resize_long": [40, 64],
    "crop_size": 48,
    "num_workers": 0,
    "pooling": "gap",
    "tap_threshold": 0.0,
    "hide_and_seek": {"hide_prob": 0.0, "patch_size": 16},
    "frozen_bn": False,
    "frozen_stages": -1,
    "method": "cam",
}


def cpu_job(out, name, seed=0, checkpoint=None, **options) -> TrainingJob:
    """A CPU training job whose model, history and (unless given) checkpoint are <out>/<name>.pt/.parquet/.ckpt;
    options: TrainingJob's other fields (fingerprint, checkpoint_every, weights)."""
    checkpoint = checkpoint or out / f"{name}.ckpt"
    return TrainingJob(out / f"{name}.pt", out / f"{name}.parquet", checkpoint, seed, "cpu", **options)


def train(tree, ids, labels, settings, seed, out, name="m", checkpoint=None, fingerprint="", **options):
    """train_classifier on CPU over VOC's 21 classes (cpu_job's files); options: train_classifier's."""
    job = cpu_job(out, name, seed, checkpoint, fingerprint=fingerprint)
    return train_classifier(TrainingImages(tree, ids, labels, 21), settings, job, **options)


class Killed(Exception):
    """Stands in for SIGKILL: the training process stops mid-epoch, after some checkpoints."""


def killing_after(calls, function):
    count = {"calls": 0}

    def wrapped(*args, **kwargs):
        count["calls"] += 1
        if count["calls"] > calls:
            raise Killed
        return function(*args, **kwargs)

    return wrapped


def assert_same_weights(a: dict, b: dict):
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


WALK = {"long_side": None, "radius": 5, "beta": 10, "exp_times": 8, "bg_threshold": 0.25}


# the classifier tests' small ResNet-18 run (tests/unit/test_training.py), as IRN's settings
IRN_SETTINGS = {
    **{key: SETTINGS[key] for key in ("backbone", "output_stride", "optimizer", "epochs", "batch_size", "momentum")},
    **{key: SETTINGS[key] for key in ("weight_decay", "poly_power", "resize_long", "crop_size", "num_workers")},
    "pretrained": None,
    "lr": 0.1,
    "radius": 5,
}


def train_killed_and_resumed(tree, out, monkeypatch, device) -> tuple:
    """train_irn for 3 epochs straight, and again killed in epoch 3 (after the checkpoint of epoch 2) and
    rerun: (straight history, resumed history, the checkpoint the kill left, straight model, resumed model)."""
    ids = tree.split_ids("train")
    masks = {i: tree.mask_path(i) for i in ids}
    settings = dict(IRN_SETTINGS, epochs=3)

    def train(name):
        job = TrainingJob(out / f"{name}.pt", out / f"{name}.parquet", out / "checkpoint.pt", 0, device)
        return train_irn(TrainingImages(tree, ids, masks, 21), settings, job)

    straight = train("straight")
    batches_per_epoch = len(ids) // settings["batch_size"]
    with monkeypatch.context() as patch:
        patch.setattr(irn, "affinity_loss", killing_after(2 * batches_per_epoch + 1, irn.affinity_loss))
        with pytest.raises(Killed):
            train("resumed")
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    resumed = train("resumed")
    return straight, resumed, checkpoint, load_irn(out / "straight.pt"), load_irn(out / "resumed.pt")


def config_with(*overrides):
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    for override in overrides:
        config = deep_merge(config, override)
    return config


def library_with_a_new_stage(tmp_path):
    """A copy of the library whose registry alone gains "crf_again": the CRF maps scored a second time."""
    src = tmp_path / "src"
    shutil.copytree(REPO / "src/wsss", src / "wsss", ignore=shutil.ignore_patterns("__pycache__"))
    path = src / "wsss/pipeline/registry.py"
    text = path.read_text()
    crf_stage = '    Stage("crf", "CRF", "crf", LABELS, "seed_eval", ranked=True, gallery="train"),\n'
    assert crf_stage in text
    path.write_text(
        text.replace(crf_stage, crf_stage + '    Stage("crf_again", "CRF again", "crf", LABELS, "seed_eval"),\n')
    )
    return src
