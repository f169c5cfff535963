"""segmentation.class_weights: median frequency balancing and ENet's weights from the labels a network trains
on, the weighted loss, class_weights.json, and "none" leaving the training as it was."""

import json
import logging
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from snakemake.utils import validate

from tests.helpers import SETTINGS as TRAINING_SETTINGS
from tests.helpers import Killed, assert_same_weights, config_with, cpu_job, killing_after
from tests.workflow_helpers import REPO
from wsss.data.voc import IGNORE, VOC_CLASSES, read_mask, write_mask
from wsss.nets.models import UNREAD_UPSAMPLING, segmentation_model
from wsss.pipeline import registry
from wsss.pipeline.experiments import Grid
from wsss.training.class_weights import (
    CLASS_WEIGHTINGS,
    LabelCounts,
    count_labels,
    inverse_log_weights,
    median_frequency_weights,
    weighting,
)
from wsss.training.datasets import SegmentationDataset, TrainingImages
from wsss.training.loop import train_and_save
from wsss.training.segmentation import segmentation_loss, train_segmentation

# Three label maps over four classes (ids 0-3); class 3 never occurs, 255 is ignored.
MAPS = [
    [[0, 0, 1], [0, IGNORE, 1]],  # 0: 3, 1: 2 (5 labelled)
    [[0, 0, 0], [0, 0, 2]],  # 0: 5, 2: 1 (6 labelled)
    [[1, 1], [IGNORE, IGNORE]],  # 1: 2 (2 labelled)
]


@pytest.fixture
def hand_counts(tmp_path):
    paths = []
    for k, labels in enumerate(MAPS):
        paths.append(tmp_path / f"{k}.png")
        write_mask(paths[-1], np.array(labels, np.uint8))
    return count_labels(paths, 4)


def test_the_counts_leave_out_255(hand_counts):
    assert hand_counts.pixels.tolist() == [8, 4, 1, 0]
    assert hand_counts.image_pixels.tolist() == [5 + 6, 5 + 2, 6, 0]  # labelled pixels of the maps holding c
    assert hand_counts.images.tolist() == [2, 2, 1, 0]
    assert hand_counts.labelled == 13


def test_median_frequency_balancing_by_hand(hand_counts):
    """Eigen & Fergus: freq = 8/11, 4/7, 1/6; their median 4/7; w = median / freq; 0 for the absent class."""
    expected = [(4 / 7) / (8 / 11), 1.0, (4 / 7) / (1 / 6), 0.0]
    np.testing.assert_allclose(median_frequency_weights(hand_counts), expected, rtol=1e-12)
    np.testing.assert_allclose(expected[:3], [11 / 14, 1.0, 24 / 7], rtol=1e-12)


def test_enet_weights_by_hand(hand_counts):
    """ENet: p = 8/13, 4/13, 1/13 of the labelled pixels; w = 1 / ln(1.02 + p), unclipped; 0 for the absent class."""
    expected = [1 / math.log(1.02 + 8 / 13), 1 / math.log(1.02 + 4 / 13), 1 / math.log(1.02 + 1 / 13), 0.0]
    np.testing.assert_allclose(inverse_log_weights(hand_counts), expected, rtol=1e-12)
    assert 1 < expected[0] < expected[1] < expected[2] < 50.6  # rarer weighs more, within ENet's bound
    rare = LabelCounts(np.array([10**6, 1]), np.array([10**6 + 1, 10**6 + 1]), np.array([1, 1]))
    assert inverse_log_weights(rare)[1] == pytest.approx(1 / math.log(1.02 + 1 / (10**6 + 1)))  # ~50.5: no clip at 50


def test_the_weighted_loss_is_the_per_pixel_weighted_mean():
    """torch's weighted cross-entropy: sum of w[y] * -log p_y over labelled pixels / sum of their w[y]; without
    weights the plain mean over labelled pixels."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 3, 5, generator=generator)
    targets = torch.randint(0, 3, (2, 3, 5), generator=generator)  # class 3 absent, as in its weight 0
    targets[0, 0, :2] = IGNORE
    targets[1, 2, 4] = IGNORE
    weight = torch.tensor([11 / 14, 1.0, 24 / 7, 0.0])
    numerator = denominator = plain = 0.0
    labelled = 0
    for n in range(2):
        for i in range(3):
            for j in range(5):
                y = int(targets[n, i, j])
                if y == IGNORE:
                    continue
                nll = -(logits[n, y, i, j] - torch.logsumexp(logits[n, :, i, j], 0)).item()
                numerator += weight[y].item() * nll
                denominator += weight[y].item()
                plain += nll
                labelled += 1
    weighted = segmentation_loss(weight)({"out": logits}, targets)
    assert weighted.item() == pytest.approx(numerator / denominator, rel=1e-6)
    assert segmentation_loss(None)({"out": logits}, targets).item() == pytest.approx(plain / labelled, rel=1e-6)


SEGMENTATION = {
    **TRAINING_SETTINGS,
    "arch": "fcn",
    "backbone": "resnet18",
    "epochs": 2,
    "batch_size": 2,
    "resize_long": [32, 40],
    "crop_size": 32,
}


def train_before_class_weights(images, settings, job):
    """train_segmentation as it was before class weights, written out: the reference "none" must match."""
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
    head_ids = {id(p) for p in head}
    backbone = [p for p in model.parameters() if id(p) not in head_ids]

    def loss_fn(outputs, targets):
        return F.cross_entropy(outputs["out"], targets, ignore_index=IGNORE)

    return train_and_save(model, dataset, loss_fn, backbone, head, settings, job, {}, desc="before")


def state(path):
    return torch.load(path, weights_only=True)["state_dict"]


def test_none_trains_as_before_and_weights_resume_bit_identical(demo_data, tmp_path, monkeypatch, caplog):
    """none: the same losses and weights as the loss before class weights, and class_weights.json with all 1
    and the labels' pixel counts. median_frequency: another network, and a killed run resumes to the same one."""
    ids = demo_data.split_ids("train")[:4]
    masks = {i: demo_data.mask_path(i) for i in ids}
    names = list(VOC_CLASSES)  # the demo's masks hold VOC's class ids
    images = TrainingImages(demo_data, ids, masks, len(names))

    before = train_before_class_weights(images, SEGMENTATION, cpu_job(tmp_path, "before", 3))
    none_json = tmp_path / "none.json"
    none = train_segmentation(
        images,
        {**SEGMENTATION, "class_weights": "none"},
        cpu_job(tmp_path, "none", 3),
        desc="test",
        class_names=names,
        class_weights_path=none_json,
    )
    np.testing.assert_array_equal(none["loss"], before["loss"])
    assert_same_weights(state(tmp_path / "none.pt"), state(tmp_path / "before.pt"))
    written = json.loads(none_json.read_text())
    pixels = np.bincount(np.concatenate([read_mask(masks[i], len(names)).ravel() for i in ids]), minlength=256)
    assert written["method"] == "none" and written["weights"] == dict.fromkeys(names, 1.0)
    assert written["pixels"] == {name: int(pixels[c]) for c, name in enumerate(names)}
    assert written["labelled_pixels"] == int(pixels[: len(names)].sum())
    assert set(written) == {"method", "labelled_pixels", "weights", "pixels", "image_pixels", "images"}

    weighted = {**SEGMENTATION, "class_weights": "median_frequency"}

    def train(name):
        job = cpu_job(tmp_path, name, 3, tmp_path / "checkpoint.pt", fingerprint="job")
        return train_segmentation(images, weighted, job, desc="test")

    straight = train("straight")
    median = json.loads((tmp_path / "class_weights.json").read_text())  # next to the model by default
    assert median["method"] == "median_frequency" and median["pixels"]["0"] == written["pixels"]["background"]
    assert median["weights"]["0"] < 1 < max(median["weights"].values())  # the frequent background weighs least
    assert not np.array_equal(straight["loss"], none["loss"])
    with monkeypatch.context() as patch:  # killed in epoch 2, after the checkpoint of epoch 1 (2 batches/epoch)
        patch.setattr(F, "cross_entropy", killing_after(3, F.cross_entropy))
        with pytest.raises(Killed):
            train("resumed")
    torch.manual_seed(99)
    with caplog.at_level(logging.INFO):
        resumed = train("resumed")
    assert "resumed from checkpoint" in caplog.text
    np.testing.assert_array_equal(resumed["loss"], straight["loss"])
    assert_same_weights(state(tmp_path / "resumed.pt"), state(tmp_path / "straight.pt"))


SCHEMA_PATH = REPO / "workflow/schemas/config.schema.yaml"


def test_the_schema_names_the_weightings_and_refuses_others():
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    assert schema["properties"]["segmentation"]["properties"]["class_weights"]["enum"] == list(CLASS_WEIGHTINGS)
    assert config_with({})["segmentation"]["class_weights"] == "none"
    for method in CLASS_WEIGHTINGS:
        validate(config_with({"segmentation": {"class_weights": method}}), str(SCHEMA_PATH))
    with pytest.raises(Exception, match="inverse_frequency"):
        validate(config_with({"segmentation": {"class_weights": "inverse_frequency"}}), str(SCHEMA_PATH))
    with pytest.raises(ValueError, match="segmentation.class_weights must be one of none, median_frequency"):
        weighting("inverse_frequency")


def test_changing_the_weights_retrains_the_networks_not_the_cams():
    """The key is in the segmentation step's settings: an experiment that changes it shares the CAMs and
    pseudo-masks, and trains (and predicts with, and scores) both networks of its own."""
    config = config_with({})
    assert registry.own_settings(config, "segmentation", "pseudo_mask")["segmentation"]["class_weights"] == "none"
    grid = Grid(dict(config, experiments={"a": {}, "mf": {"segmentation": {"class_weights": "median_frequency"}}}))
    for step, arg in [("classifier", 0), ("cams", 0), ("merged_cams", None), ("pseudo_masks", None)]:
        assert grid.owner("mf", step, arg) == "a", step
    for step, arg in [
        ("segmentation", "pseudo_mask"),
        ("segmentation", "ground_truth"),
        ("predictions", "pseudo_mask"),
        ("metrics", "segmentation"),
        ("metrics", "fully_supervised"),
    ]:
        assert grid.owner("mf", step, arg) == "mf", step
    assert grid.step_outputs("mf", "segmentation", "pseudo_mask", files=True)[-1] == (
        "results/mf/segmentation/pseudo_mask/class_weights.json"
    )
    assert registry.segmentation_note(grid.configs["mf"]).endswith("; median_frequency class weights")
    assert "class weights" not in registry.segmentation_note(grid.configs["a"])
