"""The segmentation network trained with SEC's loss on a tiny demo tree: its samples, a deterministic run that
resumes bit-identically after a kill, and cross-entropy (the default) exactly as it trained before."""

import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import wsss.training.sec
from tests.helpers import SETTINGS, Killed, assert_same_weights, cpu_job, killing_after
from wsss.data.labels import image_labels, load_labels
from wsss.data.voc import IGNORE, VOC_CLASSES
from wsss.nets.models import UNREAD_UPSAMPLING, segmentation_model
from wsss.training.datasets import SecDataset, SegmentationDataset, TrainingImages
from wsss.training.loop import train_and_save
from wsss.training.sec import cues_on_grid, image_on_grid
from wsss.training.segmentation import train_segmentation

SEC = {
    "fg_decay": 0.996,
    "bg_decay": 0.999,
    "seed_weight": 1.0,
    "expand_weight": 1.0,
    "constrain_weight": 1.0,
    "stride": 8,
    "crf": {
        "iterations": 10,
        "gaussian": {"sxy": 3 / 12, "compat": 3},
        "bilateral": {"sxy": 80 / 12, "srgb": 13, "compat": 10},
    },
}
NETWORK = {"arch": "fcn", "backbone": "resnet18", "epochs": 3, "resize_long": [40, 56], "crop_size": 40}


@pytest.fixture(scope="module")
def training(demo_data, tmp_path_factory):
    """(TrainingImages of 12 demo train images with their masks as cues, their image-level labels)."""
    ids = demo_data.split_ids("train")[:12]
    path = tmp_path_factory.mktemp("labels") / "labels.parquet"
    image_labels(demo_data, ids, len(VOC_CLASSES)).to_parquet(path)
    images = TrainingImages(demo_data, ids, {i: demo_data.mask_path(i) for i in ids}, len(VOC_CLASSES))
    return images, load_labels(path)


def test_sec_samples_are_the_cross_entropy_crops_with_secs_targets(training):
    images, labels = training
    plain = SegmentationDataset(images, [40, 56], 40)
    sec = SecDataset(images, [40, 56], 40, labels, stride=8)
    for index in range(3):
        torch.manual_seed(index)
        x, y = plain[index]
        torch.manual_seed(index)
        sec_x, targets = sec[index]
        assert torch.equal(sec_x, x)
        assert torch.equal(targets["cues"], cues_on_grid(y, 5))  # (40 - 1) // 8 + 1
        assert torch.equal(targets["image"], image_on_grid(x, 5)) and targets["image"].dtype == torch.uint8
        expected = torch.zeros(20)
        expected[[c - 1 for c in labels[images.image_ids[index]]]] = 1
        assert torch.equal(targets["classes"], expected)
    with pytest.raises(ValueError, match="no image-level labels"):
        SecDataset(images, [40, 56], 40, {}, stride=8)


def test_killed_sec_training_resumes_bit_identical(training, tmp_path, monkeypatch, caplog):
    images, labels = training
    settings = {**SETTINGS, **NETWORK, "loss": "sec", "sec": SEC}

    def train(name):
        job = cpu_job(tmp_path, name, seed=3, checkpoint=tmp_path / "checkpoint.pt", fingerprint="sec")
        return train_segmentation(images, settings, job, desc="sec", image_labels=labels)

    straight = train("straight")
    assert {"seed_loss", "expand_loss", "constrain_loss"} <= set(straight)
    assert np.isfinite(straight[["loss", "seed_loss", "expand_loss", "constrain_loss"]].to_numpy()).all()
    batches_per_epoch = len(images.image_ids) // settings["batch_size"]
    with monkeypatch.context() as patch:  # killed in epoch 3, after the checkpoint of epoch 2
        crf = killing_after(2 * batches_per_epoch + 1, wsss.training.sec.crf_marginals)
        patch.setattr(wsss.training.sec, "crf_marginals", crf)
        with pytest.raises(Killed):
            train("resumed")
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["epoch"] == 2
    torch.manual_seed(99)  # the restarted process starts with other global RNG states
    np.random.seed(99)
    with caplog.at_level(logging.INFO):
        resumed = train("resumed")
    assert "resumed from checkpoint" in caplog.text
    assert resumed.equals(straight.assign(seconds=resumed["seconds"]))
    assert_same_weights(
        torch.load(tmp_path / "resumed.pt", weights_only=True)["state_dict"],
        torch.load(tmp_path / "straight.pt", weights_only=True)["state_dict"],
    )
    with pytest.raises(ValueError, match="image-level labels"):
        train_segmentation(images, settings, cpu_job(tmp_path, "x"), desc="sec")


def train_as_before(images, settings, job):
    """train_segmentation as it was before segmentation.loss (datasets-wip @ f323ce3), written out."""
    dataset = SegmentationDataset(images, settings["resize_long"], settings["crop_size"])
    torch.manual_seed(job.seed)
    model = segmentation_model(
        settings["arch"],
        settings["backbone"],
        images.num_classes,
        settings["output_stride"],
        job.weights,
        UNREAD_UPSAMPLING,
        settings["frozen_stages"],
        settings["frozen_bn"],
    )
    head = list(model.classifier.parameters())
    backbone = [p for p in model.parameters() if id(p) not in {id(q) for q in head}]
    meta = dict(
        arch=settings["arch"],
        backbone=settings["backbone"],
        output_stride=settings["output_stride"],
        upsampling=UNREAD_UPSAMPLING,
        num_classes=images.num_classes,
    )

    def loss_fn(outputs, targets):
        return F.cross_entropy(outputs["out"], targets, ignore_index=IGNORE)

    return train_and_save(model, dataset, loss_fn, backbone, head, settings, job, meta, desc="before")


def test_cross_entropy_trains_exactly_as_before(training, tmp_path):
    """No loss key (the step's settings with the default) and loss: cross_entropy with a sec section both
    give the old training's model file contents and history."""
    images, _ = training
    settings = {**SETTINGS, **NETWORK, "epochs": 1}
    before = train_as_before(images, settings, cpu_job(tmp_path, "before", seed=4))
    runs = {
        "default": settings,
        "cross_entropy": {**settings, "loss": "cross_entropy", "sec": SEC},
    }
    saved_before = torch.load(tmp_path / "before.pt", weights_only=True)
    for name, run_settings in runs.items():
        history = train_segmentation(images, run_settings, cpu_job(tmp_path, name, seed=4), desc=name)
        assert history.drop(columns="seconds").equals(before.drop(columns="seconds")), name
        saved = torch.load(tmp_path / f"{name}.pt", weights_only=True)
        assert saved.keys() == saved_before.keys() and saved["meta"] == saved_before["meta"]
        assert_same_weights(saved["state_dict"], saved_before["state_dict"])
    with pytest.raises(ValueError, match="segmentation.loss must be one of cross_entropy, sec"):
        train_segmentation(images, {**settings, "loss": "dice"}, cpu_job(tmp_path, "x"), desc="x")
