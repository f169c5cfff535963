"""Classifier and segmentation training on a tiny demo tree: determinism and the no-label rule."""

import logging

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from tests.helpers import (
    SETTINGS,
    cpu_job,
    train,
)
from wsss.data.labels import image_labels, load_labels, mean_colour
from wsss.data.voc import VOC_CLASSES, read_image
from wsss.nets.models import Classifier
from wsss.nets.transforms import normalised_colour
from wsss.training.classifier import load_classifier, trainable_ids
from wsss.training.datasets import ClassificationDataset, TrainingImages
from wsss.training.loop import TrainingJob, fit, make_loader, make_optimizer
from wsss.training.segmentation import load_segmentation, predict, train_segmentation


def _labels(tree, tmp_path):
    path = tmp_path / "labels.parquet"
    image_labels(tree, tree.split_ids("train") + tree.split_ids("val"), len(VOC_CLASSES)).to_parquet(path)
    return path


def test_labels_come_from_masks(demo_data, tmp_path):
    path = _labels(demo_data, tmp_path)
    labels = load_labels(path)
    frame = pd.read_parquet(path)
    assert len(frame) == 32 and list(labels) == frame["image_id"].tolist()
    for class_ids in labels.values():
        assert class_ids == sorted(class_ids) and 0 not in class_ids and 255 not in class_ids
    assert any(len(c) == 0 for c in labels.values())
    some = demo_data.split_ids("train")[:3]
    images = [read_image(demo_data.image_path(i)).reshape(-1, 3) for i in some]
    np.testing.assert_allclose(mean_colour(path, some), np.concatenate(images).mean(0), rtol=1e-6)


def test_images_without_foreground_are_left_out_and_counted(demo_data, tmp_path, caplog):
    labels = load_labels(_labels(demo_data, tmp_path))
    ids = demo_data.split_ids("train")
    with caplog.at_level(logging.INFO):
        kept = trainable_ids(ids, labels)
    dropped = sum(1 for i in ids if not labels[i])
    assert dropped > 0 and len(kept) == len(ids) - dropped
    assert f"{dropped} without a foreground label left out" in caplog.text


def test_classifier_training_is_deterministic(demo_data, tmp_path):
    labels = load_labels(_labels(demo_data, tmp_path))
    ids = demo_data.split_ids("train")
    runs = []
    for name in ("a", "b"):
        torch.manual_seed(123)  # different global state must not matter: training seeds itself
        history = train(demo_data, ids, labels, SETTINGS, 5, tmp_path, name)
        runs.append((history, load_classifier(tmp_path / f"{name}.pt")))
        assert not (tmp_path / f"{name}.ckpt").exists()  # a finished run leaves no checkpoint
    assert list(runs[0][0]["epoch"]) == [1, 2] and {"loss", "mAP", "lr"} <= set(runs[0][0])
    np.testing.assert_array_equal(runs[0][0]["loss"], runs[1][0]["loss"])
    for p, q in zip(runs[0][1].state_dict().values(), runs[1][1].state_dict().values()):
        assert torch.equal(p, q)


def test_segmentation_trains_and_predicts(demo_data, tmp_path):
    ids = demo_data.split_ids("train")
    settings = {**SETTINGS, "arch": "deeplabv3", "backbone": "resnet18", "epochs": 1}
    images = TrainingImages(demo_data, ids, {i: demo_data.mask_path(i) for i in ids}, 21)
    train_segmentation(images, settings, cpu_job(tmp_path, "seg"), desc="test")
    image = read_image(demo_data.image_path(ids[0]))
    prediction = predict(load_segmentation(tmp_path / "seg.pt"), image, "cpu")
    assert prediction.shape == image.shape[:2] and prediction.dtype == np.uint8 and prediction.max() < 21


def test_classifier_trains_with_tap_and_hide_and_seek(demo_data, tmp_path):
    path = _labels(demo_data, tmp_path)
    labels = load_labels(path)
    ids = demo_data.split_ids("train")
    settings = {
        **SETTINGS,
        "epochs": 1,
        "pooling": "tap",
        "tap_threshold": 0.5,
        "hide_and_seek": {"hide_prob": 0.5, "patch_size": 8},
    }
    with pytest.raises(ValueError, match="Hide-and-Seek"):
        train(demo_data, ids, labels, settings, 5, tmp_path)
    history = train(
        demo_data,
        ids,
        labels,
        settings,
        5,
        tmp_path,
        hide_fill_rgb=mean_colour(path, ids),
    )
    model = load_classifier(tmp_path / "m.pt")
    assert (model.pooling, model.tap_threshold) == ("tap", 0.5) and np.isfinite(history["loss"]).all()


def test_hide_and_seek_hides_patches_of_the_training_crops(demo_data, tmp_path):
    labels = load_labels(_labels(demo_data, tmp_path))
    ids = trainable_ids(demo_data.split_ids("train"), labels)
    fill = normalised_colour([100.0, 120.0, 140.0])
    plain = ClassificationDataset(demo_data, ids, labels, 20, [40, 64], 48)
    hiding = ClassificationDataset(
        demo_data, ids, labels, 20, [40, 64], 48, hide_prob=0.5, patch_size=8, hide_fill=fill
    )
    torch.manual_seed(0)
    x, target = plain[0]
    torch.manual_seed(0)
    hidden, hidden_target = hiding[0]  # the same augmentation, drawn first
    is_fill = (hidden == fill).all(0)
    assert torch.equal(hidden_target, target) and 0 < is_fill.float().mean() < 1
    assert torch.equal(hidden[:, ~is_fill], x[:, ~is_fill])


def _train_one_epoch(frozen_bn, frozen_stages, tmp_path):
    """A small ResNet-18 Classifier before and after one epoch of fit (two real SGD steps) on CPU."""
    generator = torch.Generator().manual_seed(0)
    data = TensorDataset(
        torch.randn(8, 3, 48, 48, generator=generator), torch.randint(0, 2, (8, 3), generator=generator).float()
    )
    torch.manual_seed(0)
    model = Classifier("resnet18", 3, 16, frozen_bn=frozen_bn, frozen_stages=frozen_stages)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    settings = {"optimizer": "sgd", "epochs": 1, "lr": 0.1, "momentum": 1e-4, "weight_decay": 1e-4, "poly_power": 0.9}
    backbone, head = model.param_groups()
    fit(
        model,
        make_loader(data, 4, 0, 1),
        F.multilabel_soft_margin_loss,
        [(backbone, 1.0), (head, 10.0)],
        settings,
        TrainingJob(tmp_path / "m.pt", tmp_path / "m.parquet", tmp_path / "checkpoint.pt"),
        "freeze",
    )
    return model, before, model.state_dict()


def _bn_statistics(names):
    return [k for k in names if k.endswith(("running_mean", "running_var", "num_batches_tracked"))]


@pytest.mark.parametrize("frozen_bn", [False, True])
def test_frozen_bn_keeps_the_running_statistics_and_trains_the_affine_parameters(tmp_path, frozen_bn):
    model, before, after = _train_one_epoch(frozen_bn, -1, tmp_path)
    statistics = _bn_statistics(before)
    unchanged = [k for k in statistics if torch.equal(before[k], after[k])]
    if frozen_bn:
        assert unchanged == statistics
        batchnorms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        assert model.training and not any(m.training for m in batchnorms)  # model.train() keeps them in eval
    else:
        assert unchanged == []
    for name in before:  # every parameter trains, BatchNorm's weight and bias included
        if name not in statistics:
            assert not torch.equal(before[name], after[name]), name


@pytest.mark.parametrize(
    "frozen_stages, frozen_prefixes",
    [
        (0, ("features.stem.",)),  # the stem: conv1, bn1
        (2, ("features.stem.", "features.stages.0.", "features.stages.1.")),  # IRN: stem, layer1, layer2
    ],
)
@pytest.mark.parametrize("frozen_bn", [False, True])
def test_frozen_stages_are_bit_identical_and_the_rest_trains(tmp_path, frozen_stages, frozen_prefixes, frozen_bn):
    model, before, after = _train_one_epoch(frozen_bn, frozen_stages, tmp_path)
    statistics = _bn_statistics(before)
    for name in before:
        if name.startswith(frozen_prefixes):  # parameters and BatchNorm statistics alike
            assert torch.equal(before[name], after[name]), name
        elif name not in statistics or not frozen_bn:
            assert not torch.equal(before[name], after[name]), name
    frozen = [p for name, p in model.named_parameters() if name.startswith(frozen_prefixes)]
    assert frozen and not any(p.requires_grad or p.grad is not None for p in frozen)
    trainable = {id(p) for group in model.param_groups() for p in group}
    assert not trainable & {id(p) for p in frozen}  # the optimiser never sees them: no weight decay either
    with pytest.raises(ValueError, match="frozen_stages"):
        Classifier("resnet18", 3, 16, frozen_stages=5)


def test_adamw_reads_the_learning_rates_and_momentum_and_fits_a_separable_problem(tmp_path):
    """segmentation.optimizer adamw (config/photos.yaml): the groups' lrs, momentum as beta1, and a fit that learns."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    settings = {
        "optimizer": "adamw",
        "epochs": 20,
        "lr": 0.01,
        "momentum": 0.8,
        "weight_decay": 1e-4,
        "poly_power": 0.9,
    }
    groups = [{"params": list(model[0].parameters()), "lr": 0.01}, {"params": list(model[2].parameters()), "lr": 0.1}]
    optimizer = make_optimizer(groups, settings)
    assert isinstance(optimizer, torch.optim.AdamW)
    assert [g["lr"] for g in optimizer.param_groups] == [0.01, 0.1]
    assert optimizer.param_groups[0]["betas"][0] == 0.8 and optimizer.param_groups[0]["weight_decay"] == 1e-4
    with pytest.raises(ValueError, match="optimizer must be one of sgd, adamw, got 'adam'"):
        make_optimizer(groups, {**settings, "optimizer": "adam"})

    generator = torch.Generator().manual_seed(0)
    points = torch.randn(64, 2, generator=generator)
    data = TensorDataset(points, (points[:, 0] > 0).long())
    history = fit(
        model,
        make_loader(data, 16, 0, 0),
        F.cross_entropy,
        [(list(model[0].parameters()), 1.0), (list(model[2].parameters()), 1.0)],
        settings,
        TrainingJob(tmp_path / "m.pt", tmp_path / "m.parquet", tmp_path / "checkpoint.pt"),
        "adamw",
    )
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]
    assert (model(points).argmax(1) == data.tensors[1]).float().mean() > 0.9
