"""Mixup-CAM (classifier.mixup): the mixing, the entropy and concentration terms against their references written
out, the switch off as today's training, every classifier method under it, the schema and the registry."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from snakemake.utils import validate

from tests.helpers import SETTINGS, assert_same_weights, config_with, cpu_job, train
from tests.workflow_helpers import REPO
from wsss.data.labels import image_labels, load_labels
from wsss.data.voc import VOC_CLASSES
from wsss.nets.expansion import make_classifier, pcm_input, seam_losses
from wsss.pipeline.experiments import Grid, step_settings
from wsss.training.classifier import trainable_ids
from wsss.training.datasets import ClassificationDataset
from wsss.training.loop import train_and_save
from wsss.training.mixup import (
    OFF,
    batch_mixer,
    binary_entropy,
    concentration,
    mixed,
    mixing_draw,
    regularised_loss,
)

SCHEMA = str(REPO / "workflow/schemas/config.schema.yaml")
MIXUP = {"alpha": 0.4, "entropy_weight": 0.02, "concentration_weight": 0.05}


# --- the mixing


def test_mixing_blends_each_image_and_its_target_with_its_partners():
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(4, 3, 5, 6, generator=generator)
    targets = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 1, 1], [1, 0, 1]])
    partners = torch.tensor([2, 0, 3, 1])
    images, soft = mixed(inputs, targets, 0.3, partners)
    for i, j in enumerate(partners.tolist()):
        torch.testing.assert_close(images[i], 0.3 * inputs[i] + 0.7 * inputs[j], rtol=0, atol=1e-6)
        for c in range(3):
            assert soft[i, c].item() == pytest.approx(0.3 * targets[i, c].item() + 0.7 * targets[j, c].item())
    assert soft[0].tolist() == pytest.approx([0.3, 0.7, 0.7])  # image 0 (class 0) with image 2 (classes 1, 2)


def test_the_draws_come_from_the_generator_and_follow_beta():
    first = mixing_draw(6, 0.2, torch.Generator().manual_seed(5))
    again = mixing_draw(6, 0.2, torch.Generator().manual_seed(5))
    assert first[0] == again[0] and torch.equal(first[1], again[1]) and sorted(first[1].tolist()) == list(range(6))
    generator = torch.Generator().manual_seed(5)
    state = generator.get_state()
    draws = [mixing_draw(6, 0.2, generator)[0] for _ in range(4000)]
    assert not torch.equal(generator.get_state(), state)  # the generator moves on: its state is what resumes
    # Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1)); at a = 0.2 most draws lie near 0 or 1
    assert np.mean(draws) == pytest.approx(0.5, abs=0.02)
    assert np.var(draws) == pytest.approx(1 / (4 * 1.4), abs=0.01)
    assert 0 <= min(draws) and max(draws) <= 1
    assert batch_mixer(0.0) is None


def test_the_soft_target_loss_is_the_mixup_criterion():
    """mixup-cifar10's (and the re-implementation's) lam * L(pred, y_a) + (1 - lam) * L(pred, y_b) is the loss of
    the mixed targets: the multi-label soft margin is linear in its targets."""
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(5, 4, generator=generator)
    y_a, y_b = (
        (torch.rand(5, 4, generator=generator) > 0.5).float(),
        (torch.rand(5, 4, generator=generator) > 0.5).float(),
    )
    lam = 0.35
    reference = lam * F.multilabel_soft_margin_loss(logits, y_a) + (1 - lam) * F.multilabel_soft_margin_loss(
        logits, y_b
    )
    mixed_targets = lam * y_a + (1 - lam) * y_b
    torch.testing.assert_close(F.multilabel_soft_margin_loss(logits, mixed_targets), reference)


# --- the regularisers


def test_the_entropy_is_each_class_probabilitys_binary_entropy():
    logits = torch.tensor([[0.0, 2.0, -3.0], [40.0, -1.5, 0.25]])
    total = 0.0
    for value in logits.flatten().tolist():
        p = 1 / (1 + math.exp(-value))
        total += -(p * math.log(p) if p > 0 else 0) - ((1 - p) * math.log(1 - p) if p < 1 else 0)
    assert binary_entropy(logits).item() == pytest.approx(total / 6, rel=1e-5)
    assert binary_entropy(torch.zeros(1, 1)).item() == pytest.approx(math.log(2))  # p = 1/2: the most uncertain


def reference_concentration(maps, y_a, y_b, lam):
    """The re-implementation's concentration_loss (after NVlabs/SCOPS), as a loop: softmax over classes of the
    ReLU'd CAMs; for each image and each class present (> 0.5) in y_a (weight lam) and in y_b (weight 1 - lam):
    the map + 1e-3 normalised to sum 1, its centre and its variance, coordinates j/w*2 - 1 and i/h*2 - 1."""
    probs = torch.softmax(F.relu(maps), 1).tolist()
    batch, classes, height, width = maps.shape

    def variance(b, c):
        part = [[probs[b][c][i][j] + 1e-3 for j in range(width)] for i in range(height)]
        mass = sum(map(sum, part))
        pdf = [[v / mass for v in row] for row in part]
        x_c = sum(pdf[i][j] * (j / width * 2 - 1) for i in range(height) for j in range(width))
        y_c = sum(pdf[i][j] * (i / height * 2 - 1) for i in range(height) for j in range(width))
        return sum(
            pdf[i][j] * ((j / width * 2 - 1 - x_c) ** 2 + (i / height * 2 - 1 - y_c) ** 2)
            for i in range(height)
            for j in range(width)
        )

    loss = 0.0
    for weight, targets in ((lam, y_a), (1 - lam, y_b)):
        loss += weight * sum(variance(b, c) for b in range(batch) for c in range(classes) if targets[b][c] > 0.5)
    return loss / batch


def test_the_concentration_is_the_references_loop():
    generator = torch.Generator().manual_seed(2)
    maps = torch.randn(3, 4, 5, 7, generator=generator) * 2
    y_a = torch.tensor([[1.0, 0, 0, 1], [0, 1, 0, 0], [0, 0, 1, 1]])
    y_b = y_a[[2, 0, 1]]
    lam = 0.7
    expected = reference_concentration(maps, y_a, y_b, lam)
    assert concentration(maps, lam * y_a + (1 - lam) * y_b).item() == pytest.approx(expected, rel=1e-5)


def test_the_concentration_by_hand():
    # one class: its softmax is 1 everywhere, a uniform 2 x 2 density on rows and columns {-1, 0}: centre
    # (-1/2, -1/2), variance 4 * 1/4 * (1/4 + 1/4) = 1/2, whatever the map
    assert concentration(torch.randn(1, 1, 2, 2), torch.ones(1, 1)).item() == pytest.approx(0.5)
    # two classes, class 0 all on one cell of a 1 x 2 map: its density (1 + eps, 1/2 + eps)-ish, not uniform
    maps = torch.tensor([[[[50.0, 0.0]], [[0.0, 0.0]]]])
    p = [1 + 1e-3, 0.5 + 1e-3]
    pdf = [v / sum(p) for v in p]
    centre = pdf[0] * -1 + pdf[1] * 0
    expected = pdf[0] * (-1 - centre) ** 2 + pdf[1] * (0 - centre) ** 2
    assert concentration(maps, torch.tensor([[1.0, 0.0]])).item() == pytest.approx(expected, rel=1e-4)
    assert concentration(maps, torch.tensor([[0.0, 0.0]])).item() == 0  # absent classes weigh nothing


@pytest.mark.parametrize("method", ["cam", "acol", "multi_dilation", "seam"])
def test_the_regularisers_read_the_cam_heads_maps_and_the_main_logits(method):
    settings = {"seam": {"scale": 0.5}, "acol": {"threshold": 0.6}, "multi_dilation": {"rates": [1, 2]}}.get(method)
    torch.manual_seed(0)
    model = make_classifier(method, "resnet18", 3, 16, method_settings=settings).train()
    x, targets = torch.randn(2, 3, 48, 48), torch.tensor([[0.3, 0.7, 0.0], [1.0, 0.0, 0.0]])
    loss = regularised_loss(model, {"entropy_weight": 0.1, "concentration_weight": 0.2})
    assert model.returns_maps
    outputs = model(x)
    maps, logits = model.training_maps(outputs), model.batch_logits(outputs)
    # the 1x1 CAM head on the last stage (ACoL's head A, SEAM's raw CAM before the PCM)
    torch.testing.assert_close(maps, model.classifier(model.features(x)))
    expected = model.loss(outputs, targets) + 0.1 * binary_entropy(logits) + 0.2 * concentration(maps, targets)
    torch.testing.assert_close(loss(outputs, targets), expected)
    assert regularised_loss(model, OFF) == model.loss and not model.returns_maps


def test_maps_leave_the_logits_as_they_were():
    torch.manual_seed(0)
    model = make_classifier("cam", "resnet18", 3, 16).eval()
    x = torch.randn(1, 3, 48, 48)
    plain = model(x)
    model.returns_maps = True
    with_maps = model(x)
    assert torch.equal(with_maps["logits"], plain)
    torch.testing.assert_close(F.relu(with_maps["maps"]), model.cam(x))


def test_seam_masks_keep_every_class_of_the_mixed_image():
    """SEAM under mixup: its classification term takes the soft targets, ER / ECR / min-pooling the classes of
    the mixed image (target > 0), as with the union of both images' labels."""
    generator = torch.Generator().manual_seed(3)

    def branch(size):
        raw = torch.randn(2, 3, size, size, generator=generator)
        return {"raw": raw, "pcm": pcm_input(raw), "logits": raw.mean((2, 3)), "size": (size * 4, size * 4)}

    full, small = branch(6), branch(3)
    soft = torch.tensor([[0.25, 0.75, 0.0], [1.0, 0.0, 0.0]])
    union = (soft > 0).float()
    with_soft, with_union = seam_losses(full, small, soft), seam_losses(full, small, union)
    for term in ("er", "ecr", "min_pool"):
        torch.testing.assert_close(with_soft[term], with_union[term])
    expected = (
        F.multilabel_soft_margin_loss(full["logits"], soft) + F.multilabel_soft_margin_loss(small["logits"], soft)
    ) / 2
    torch.testing.assert_close(with_soft["cls"], expected)


# --- training


@pytest.fixture(scope="module")
def labels(demo_data, tmp_path_factory):
    path = tmp_path_factory.mktemp("labels") / "labels.parquet"
    image_labels(demo_data, demo_data.split_ids("train"), len(VOC_CLASSES)).to_parquet(path)
    return load_labels(path)


def todays_training(tree, ids, labels, settings, seed, out):
    """train_classifier as it was before classifier.mixup, written out: the dataset, the seeded model, model.loss,
    no mixing (mAP bookkeeping left out: it does not touch the training)."""
    dataset = ClassificationDataset(
        tree, trainable_ids(ids, labels), labels, 20, settings["resize_long"], settings["crop_size"]
    )
    torch.manual_seed(seed)
    model = make_classifier("cam", settings["backbone"], 20, settings["output_stride"], None, "gap", 0.0)
    backbone, head = model.param_groups()
    job = cpu_job(out, "today", seed)
    return train_and_save(model, dataset, model.loss, backbone, head, settings, job, {}, desc="today")


def test_switched_off_it_is_todays_training_and_on_it_is_not(demo_data, labels, tmp_path):
    """Off: the same losses and weights as the training before the switch existed; on: other ones. That a mixed
    run repeats, and resumes bit-identically, is tests/unit/test_resume.py's."""
    settings = {**SETTINGS, "epochs": 1, "resize_long": [32, 48], "crop_size": 32}
    ids = demo_data.split_ids("train")[:12]
    today = todays_training(demo_data, ids, labels, settings, 4, tmp_path)
    off = train(demo_data, ids, labels, {**settings, "mixup": OFF}, 4, tmp_path, "off")
    on = train(demo_data, ids, labels, {**settings, "mixup": MIXUP}, 4, tmp_path, "on")

    def weights(name):
        return torch.load(tmp_path / f"{name}.pt", weights_only=True)["state_dict"]

    np.testing.assert_array_equal(off["loss"], today["loss"])
    assert_same_weights(weights("off"), weights("today"))
    assert np.isfinite(on["loss"]).all() and on["loss"][0] != off["loss"][0]
    assert not torch.equal(weights("on")["classifier.weight"], weights("off")["classifier.weight"])


def test_seam_trains_on_mixed_images(demo_data, labels, tmp_path):
    """SEAM's two branches on the mixed batch (ACoL's under mixup: test_resume.py)."""
    seam = {"scale": 0.5, "er_weight": 1.0, "ecr_weight": 1.0, "min_pool_weight": 1.0}
    settings = {**SETTINGS, "epochs": 1, "resize_long": [40, 56], "crop_size": 48, "method": "seam", "seam": seam}
    history = train(demo_data, demo_data.split_ids("train")[:8], labels, {**settings, "mixup": MIXUP}, 3, tmp_path)
    assert np.isfinite(history["loss"]).all() and 0 <= history["mAP"][0] <= 1


# --- the config


def test_the_schema_takes_mixup_in_the_classifier_only():
    assert yaml.safe_load((REPO / "config/config.yaml").read_text())["classifier"]["mixup"] == OFF
    validate(config_with({"classifier": {"mixup": MIXUP}}), SCHEMA)
    validate(config_with({"classifier": {"method": "seam", "mixup": MIXUP}}), SCHEMA)
    for bad in ({"alpha": -0.1}, {"entropy_weight": -1}, {"concentration_weight": "high"}, {"beta": 0.2}):
        with pytest.raises(Exception, match="mixup"):
            validate(config_with({"classifier": {"mixup": bad}}), SCHEMA)
    with pytest.raises(Exception, match="mixup"):
        validate(config_with({"segmentation": {"mixup": MIXUP}}), SCHEMA)


def test_changing_mixup_reruns_the_classifier_and_everything_after_it():
    base = config_with()
    grid = Grid(dict(base, experiments={"plain": {}, "mixup": {"classifier": {"mixup": MIXUP}}}))
    assert step_settings(grid.configs["mixup"], "classifier", 0)["classifier"]["mixup"] == MIXUP
    for step, arg in [
        ("classifier", 0),
        ("cams", 0),
        ("merged_cams", None),
        ("crf", None),
        ("pseudo_masks", None),
        ("segmentation", "pseudo_mask"),
        ("metrics", "segmentation"),
    ]:
        assert grid.owner("mixup", step, arg) == "mixup", step
    assert grid.owner("mixup", "segmentation", "ground_truth") == "plain"  # the bound reads no CAM
