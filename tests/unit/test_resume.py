"""Restart safety: training resumes bit-identically from its checkpoint; shard jobs skip finished images."""

import logging
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

import wsss.seeds.cam
from tests.helpers import SETTINGS as TRAINING_SETTINGS
from tests.helpers import (
    Killed,
    assert_same_weights,
    killing_after,
)
from tests.helpers import train as train_on_cpu
from wsss.data.labels import image_labels, load_labels
from wsss.data.voc import VOC_CLASSES
from wsss.nets.models import Classifier
from wsss.pipeline.partial_work import fingerprint, shard_work_dir
from wsss.seeds.cam import DEFAULT_SETTINGS, compute_cams
from wsss.training.loop import TrainingJob, fit, make_loader

SETTINGS = {**TRAINING_SETTINGS, "epochs": 3, "resize_long": [40, 56], "crop_size": 40}
# Thresholded pooling and Hide-and-Seek patches (torch's generator, in the loader's workers) resume exactly too.
TAP_AND_HIDING = {"pooling": "tap", "tap_threshold": 0.3, "hide_and_seek": {"hide_prob": 0.5, "patch_size": 8}}
# IRN's frozen BatchNorm and frozen stem + layer1 + layer2: the optimiser holds the trainable parameters only.
IRN_FREEZING = {"frozen_bn": True, "frozen_stages": 2, "momentum": 1e-4}
# SEAM's two branches with its PCM, and ACoL's two heads: two classification losses per step each.
SEAM = {"method": "seam", "seam": {"scale": 0.5, "er_weight": 1.0, "ecr_weight": 1.0, "min_pool_weight": 1.0}}
ACOL = {"method": "acol", "acol": {"threshold": 0.6}}
# Mixup-CAM: each batch mixed by draws from the loader's generator, with both regularisers; on ACoL's two heads,
# with Hide-and-Seek before the mixing, in a loader worker.
MIXUP = {"mixup": {"alpha": 0.4, "entropy_weight": 0.02, "concentration_weight": 0.05}}
ACOL_HIDING_MIXUP = {**ACOL, "hide_and_seek": TAP_AND_HIDING["hide_and_seek"], **MIXUP}


@pytest.fixture(scope="module")
def labels(demo_data, tmp_path_factory):
    path = tmp_path_factory.mktemp("labels") / "labels.parquet"
    image_labels(demo_data, demo_data.split_ids("train"), len(VOC_CLASSES)).to_parquet(path)
    return load_labels(path)


@pytest.mark.parametrize(
    "num_workers, variant",
    [(0, {}), (1, {}), (1, TAP_AND_HIDING), (0, IRN_FREEZING), (0, SEAM), (0, ACOL), (1, ACOL_HIDING_MIXUP)],
)
def test_killed_classifier_resumes_bit_identical(
    demo_data, labels, tmp_path, monkeypatch, caplog, num_workers, variant
):
    settings = {**SETTINGS, "num_workers": num_workers, **variant}
    ids = demo_data.split_ids("train")[:12]

    def train(name, key="job"):
        return train_on_cpu(
            demo_data,
            ids,
            labels,
            settings,
            7,
            tmp_path,
            name,
            tmp_path / "checkpoint.pt",
            fingerprint=key,
            hide_fill_rgb=[118.0, 112.5, 104.2],
        )

    straight = train("straight")
    batches_per_epoch = sum(1 for i in ids if labels[i]) // settings["batch_size"]  # drop_last
    losses_per_batch = 2 if settings["method"] in ("seam", "acol") else 1
    with monkeypatch.context() as patch:
        # killed in the middle of epoch 3, after the checkpoint of epoch 2
        calls = (2 * batches_per_epoch + 1) * losses_per_batch
        patch.setattr(F, "multilabel_soft_margin_loss", killing_after(calls, F.multilabel_soft_margin_loss))
        with pytest.raises(Killed):
            train("resumed")
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["epoch"] == 2
    assert not (tmp_path / "resumed.pt").exists()
    torch.manual_seed(99)  # the restarted process starts with other global RNG states
    np.random.seed(99)
    with caplog.at_level(logging.INFO):
        resumed = train("resumed")
    assert "resumed from checkpoint" in caplog.text and "after epoch 2" in caplog.text
    assert list(resumed["epoch"]) == [1, 2, 3]
    np.testing.assert_array_equal(resumed["loss"], straight["loss"])
    np.testing.assert_array_equal(resumed["mAP"], straight["mAP"])
    assert_same_weights(
        torch.load(tmp_path / "resumed.pt", weights_only=True)["state_dict"],
        torch.load(tmp_path / "straight.pt", weights_only=True)["state_dict"],
    )
    assert not (tmp_path / "checkpoint.pt").exists()


def test_checkpoint_of_another_job_is_not_resumed(demo_data, labels, tmp_path, monkeypatch, caplog):
    ids = demo_data.split_ids("train")[:12]
    settings = {**SETTINGS, "epochs": 2}

    def train(name, key):
        checkpoint = tmp_path / "checkpoint.pt"
        return train_on_cpu(demo_data, ids, labels, settings, 7, tmp_path, name, checkpoint, fingerprint=key)

    with monkeypatch.context() as patch:
        patch.setattr(F, "multilabel_soft_margin_loss", killing_after(3, F.multilabel_soft_margin_loss))
        with pytest.raises(Killed):
            train("old", "old settings")
    assert (tmp_path / "checkpoint.pt").exists()
    with caplog.at_level(logging.INFO):
        fresh = train("new", "new settings")
    assert "from other settings or inputs: training from scratch" in caplog.text
    assert "resumed" not in caplog.text and list(fresh["epoch"]) == [1, 2]


def test_mixed_precision_resume_restores_the_gradient_scaler(tmp_path):
    """The scaler path (CUDA's float16 + GradScaler) run on CPU with bfloat16: its state is checkpointed too."""
    generator = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(32, 3, 8, 8, generator=generator), torch.randint(0, 2, (32,), generator=generator))
    settings = {"optimizer": "sgd", "epochs": 4, "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4, "poly_power": 0.9}

    def run(loss_fn, checkpoint):
        torch.manual_seed(0)
        model = torch.nn.Sequential(
            torch.nn.Conv2d(3, 4, 3),
            torch.nn.BatchNorm2d(4),
            torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1),
            torch.nn.Flatten(),
            torch.nn.Linear(4, 2),
        )
        history = fit(
            model,
            make_loader(data, 8, 0, 1),
            loss_fn,
            [(list(model.parameters()), 1.0)],
            settings,
            TrainingJob(tmp_path / "model.pt", tmp_path / "history", checkpoint, fingerprint="toy", checkpoint_every=2),
            "toy",
            mixed_precision=True,
        )
        return model.state_dict(), history

    straight, straight_history = run(F.cross_entropy, tmp_path / "a.pt")
    with pytest.raises(Killed):
        run(killing_after(4 * 3 + 2, F.cross_entropy), tmp_path / "b.pt")  # in epoch 4; checkpoint of epoch 2
    saved = torch.load(tmp_path / "b.pt", weights_only=True)
    assert saved["epoch"] == 2 and saved["scaler"]["scale"] > 0  # every 2 epochs: not after epoch 3
    resumed, resumed_history = run(F.cross_entropy, tmp_path / "b.pt")
    assert [r["loss"] for r in resumed_history] == [r["loss"] for r in straight_history]
    assert_same_weights(resumed, straight)


def test_fingerprint_follows_params_and_inputs(tmp_path):
    source = tmp_path / "input.txt"
    source.write_text("a")
    first = fingerprint({"lr": 0.1}, [source])
    assert fingerprint({"lr": 0.1}, [source]) == first
    assert fingerprint({"lr": 0.2}, [source]) != first
    os.utime(source, ns=(1, 1))  # a regenerated input has another modification time
    assert fingerprint({"lr": 0.1}, [source]) != first


def test_killed_cam_shard_skips_finished_images_and_drops_stale_work(demo_data, labels, tmp_path, monkeypatch, caplog):
    ids = demo_data.split_ids("train")[:6]
    torch.manual_seed(0)
    model = Classifier("resnet18", 20, 16).eval()
    out = tmp_path / "cams" / "shard0"

    def run(key):
        with shard_work_dir(out, key) as work:
            compute_cams(model, demo_data, ids, labels, {**DEFAULT_SETTINGS, "scales": [1.0]}, work, "cpu")

    run("reference")
    reference = {p.name: p.read_bytes() for p in out.glob("*.npy")}
    assert len(reference) == 6 and not list(out.parent.glob(".shard0.partial-*"))
    out_reference = tmp_path / "reference"
    out.rename(out_reference)

    with monkeypatch.context() as patch:
        patch.setattr(wsss.seeds.cam, "image_and_grid_cams", killing_after(4, wsss.seeds.cam.image_and_grid_cams))
        with pytest.raises(Killed):
            run("job")
    work = out.parent / ".shard0.partial-job"
    assert not out.exists() and len(list(work.glob("*.npy"))) == 4
    (work / f".{ids[5]}.npy.tmp").write_bytes(b"half-written")  # what a kill inside save_npy leaves
    (out.parent / ".shard0.partial-other").mkdir()  # partial work of other settings
    calls = []
    real_image_cams = wsss.seeds.cam.image_and_grid_cams
    with monkeypatch.context() as patch:
        patch.setattr(wsss.seeds.cam, "image_and_grid_cams", lambda *args: calls.append(1) or real_image_cams(*args))
        with caplog.at_level(logging.INFO):
            run("job")
    assert len(calls) == 2  # only the two images the killed job had not written
    assert "4 of 6 images already written, skipped" in caplog.text
    assert {p.name: p.read_bytes() for p in out.glob("*.npy")} == reference
    assert len(list((out / "stride4").glob("*.npy"))) == 6  # every image's grid CAMs too
    assert not list(out.glob(".*")) and not list(out.parent.glob(".shard0.partial-*"))
