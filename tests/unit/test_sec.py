"""SEC's loss (wsss.training.sec) against kolesman/SEC @ c784190's formulas (pylayers/pylayers/pylayers.py,
CRF/krahenbuhl2013/CRF.py) written out here on small tensors, and its config: the settings a run's steps
read, the combination the schema refuses in words."""

import math

import jsonschema
import numpy as np
import pytest
import torch
import yaml

import wsss.training.sec
from tests.helpers import config_with
from tests.workflow_helpers import REPO
from wsss.nets.transforms import to_tensor
from wsss.pipeline import registry
from wsss.pipeline.config_checks import config_errors
from wsss.training.sec import (
    MIN_PROB,
    SecLoss,
    constrain_loss,
    crf_marginals,
    cues_on_grid,
    expansion_loss,
    grid_positions,
    grid_size,
    gwrp,
    image_on_grid,
    sec_probabilities,
    seeding_loss,
)

SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
CONFIG = yaml.safe_load((REPO / "config/config.yaml").read_text())
SEC = CONFIG["segmentation"]["sec"]


def test_gwrp_by_hand():
    """A 2x2 map 0.1, 0.4 / 0.3, 0.2 with d = 0.5: sorted 0.4, 0.3, 0.2, 0.1, weights 1, 1/2, 1/4, 1/8 over
    their sum 15/8; d = 0 is the maximum, d = 1 the mean."""
    values = torch.tensor([[0.1, 0.4], [0.3, 0.2]]).flatten()
    expected = (0.4 + 0.3 / 2 + 0.2 / 4 + 0.1 / 8) / (15 / 8)
    assert gwrp(values, 0.5).item() == pytest.approx(expected, rel=1e-6)
    assert gwrp(values, 0.0).item() == pytest.approx(0.4)
    assert gwrp(values, 1.0).item() == pytest.approx(0.25)


def test_sec_softmax_adds_min_prob_and_renormalises():
    scores = torch.tensor([[2.0, 0.0, -30.0]]).view(1, 3, 1, 1)
    e = [math.exp(2.0), 1.0, math.exp(-30.0)]
    plain = [v / sum(e) for v in e]
    expected = [(p + 1e-4) / (1 + 3e-4) for p in plain]
    np.testing.assert_allclose(sec_probabilities(scores).flatten().numpy(), expected, rtol=1e-5)
    assert MIN_PROB == 1e-4


def test_seeding_loss_on_three_cue_pixels():
    """Image 0: cues at 3 of its 4 grid points (classes 1, 0, 2), image 1: no cue (adds 0); SEC: -(sum of log p
    at the cues) / 3 per image, the mean over the batch."""
    probs = torch.tensor(
        [
            [[[0.2, 0.5], [0.6, 0.1]], [[0.7, 0.3], [0.1, 0.8]], [[0.1, 0.2], [0.3, 0.1]]],
            [[[0.2, 0.5], [0.6, 0.1]], [[0.7, 0.3], [0.1, 0.8]], [[0.1, 0.2], [0.3, 0.1]]],
        ]
    )
    cues = torch.tensor([[[1, 0], [2, 255]], [[255, 255], [255, 255]]])
    image_0 = -(math.log(0.7) + math.log(0.5) + math.log(0.3)) / 3
    assert seeding_loss(probs, cues).item() == pytest.approx((image_0 + 0.0) / 2, rel=1e-6)
    assert seeding_loss(probs[:1], cues[:1]).item() == pytest.approx(image_0, rel=1e-6)


def reference_expansion(probs: np.ndarray, labels: np.ndarray, q_fg: float, q_bg: float) -> float:
    """ExpandLossLayer (L145-175) as a loop: ascending sort with weights q^(N-1-i) / Z; loss_1 over the
    present foreground classes, loss_2 over the absent ones (normalised by their counts), loss_3 the
    background, each a batch mean, summed."""
    batch, classes = probs.shape[:2]
    n = probs.shape[2] * probs.shape[3]
    loss_1 = loss_2 = loss_3 = 0.0
    for b in range(batch):
        pooled, maxima = [], []
        for c in range(1, classes):
            ascending = sorted(probs[b, c].ravel())
            weights = [q_fg ** (n - 1 - i) for i in range(n)]
            pooled.append(sum(w * v for w, v in zip(weights, ascending)) / sum(weights))
            maxima.append(max(ascending))
        present = [c for c in range(classes - 1) if labels[b, c] > 0.5]
        absent = [c for c in range(classes - 1) if labels[b, c] <= 0.5]
        loss_1 += -sum(math.log(pooled[c]) for c in present) / len(present)
        loss_2 += -sum(math.log(1 - maxima[c]) for c in absent) / len(absent)
        ascending = sorted(probs[b, 0].ravel())
        weights = [q_bg ** (n - 1 - i) for i in range(n)]
        loss_3 += -math.log(sum(w * v for w, v in zip(weights, ascending)) / sum(weights))
    return (loss_1 + loss_2 + loss_3) / batch


def test_expansion_loss_is_secs():
    generator = torch.Generator().manual_seed(0)
    probs = sec_probabilities(torch.randn(3, 5, 4, 4, generator=generator))
    labels = torch.tensor([[1.0, 0, 0, 1], [0, 1, 0, 0], [1, 1, 1, 0]])
    got = expansion_loss(probs, labels, 0.996, 0.999).item()
    assert got == pytest.approx(reference_expansion(probs.numpy(), labels.numpy(), 0.996, 0.999), rel=1e-5)
    # other decays go where they belong: d+ on the foreground, d_bg on the background
    got = expansion_loss(probs, labels, 0.5, 0.9).item()
    assert got == pytest.approx(reference_expansion(probs.numpy(), labels.numpy(), 0.5, 0.9), rel=1e-5)


def test_expansion_loss_without_foreground_adds_zero_to_the_present_mean():
    probs = sec_probabilities(torch.randn(1, 3, 2, 2, generator=torch.Generator().manual_seed(1)))
    flat = probs.flatten(2)[0]
    absent = -(math.log(1 - flat[1].max().item()) + math.log(1 - flat[2].max().item())) / 2
    background = -math.log(gwrp(flat[0], 0.999).item())
    got = expansion_loss(probs, torch.zeros(1, 2), 0.996, 0.999).item()
    assert got == pytest.approx(absent + background, rel=1e-6)


def test_constrain_loss_is_kl_of_the_crf_from_the_network():
    """ConstrainLossLayer: mean over pixels of sum_c Q log(Q / p), Q the CRF's; not KL(p || Q); no gradient
    reaches Q."""
    p = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]).T.reshape(1, 3, 1, 2).requires_grad_()
    q = torch.tensor([[0.5, 0.25, 0.25], [0.2, 0.2, 0.6]]).T.reshape(1, 3, 1, 2)
    pairs = (((0.5, 0.25, 0.25), (0.7, 0.2, 0.1)), ((0.2, 0.2, 0.6), (0.1, 0.1, 0.8)))  # (Q, p) per pixel
    kl = sum(sum(qc * math.log(qc / pc) for qc, pc in zip(qs, ps)) for qs, ps in pairs) / 2
    reverse = sum(sum(pc * math.log(pc / qc) for qc, pc in zip(qs, ps)) for qs, ps in pairs) / 2
    loss = constrain_loss(p, q)
    assert loss.item() == pytest.approx(kl, rel=1e-6)
    assert loss.item() != pytest.approx(reverse, rel=1e-2)
    loss.backward()
    torch.testing.assert_close(p.grad, -q / p.detach() / 2)  # d/dp of Q log(Q/p), averaged over 2 pixels


def test_crf_uses_the_scores_as_negative_energies():
    """With no pairwise weight, mean-field inference returns the unary's own distribution: softmax of the
    scores (SEC's CRF.py sets the energy to -scores), clipped at MIN_PROB and renormalised."""
    scores = np.random.default_rng(0).standard_normal((2, 4, 3, 3)).astype(np.float32) * 5
    image = np.zeros((2, 3, 3, 3), np.uint8)
    flat = {"iterations": 5, "gaussian": {"sxy": 1, "compat": 0}, "bilateral": {"sxy": 1, "srgb": 1, "compat": 0}}
    expected = np.exp(scores) / np.exp(scores).sum(1, keepdims=True)
    expected = np.maximum(expected, MIN_PROB)
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(crf_marginals(scores, image, flat), expected, rtol=1e-4, atol=1e-6)


def test_crf_with_secs_kernels_follows_the_colour_edge():
    """SEC's kernels (CRF.py L31 with scale_factor 12: bilateral w 10, 80/12 px, colour 13; gaussian w 3,
    3/12 px; 10 iterations) in pydensecrf's terms: on a 12x12 image, red left and blue right, scores sure of
    class 0 on the left, undecided on the right but for a strong class-1 score on 4 pixels: class 1 fills the
    right half and stops at the colour edge; on a plain grey image class 0 takes everything."""
    assert SEC["crf"] == {
        "iterations": 10,
        "gaussian": {"sxy": 3 / 12, "compat": 3},
        "bilateral": {"sxy": 80 / 12, "srgb": 13, "compat": 10},
    }
    image = np.zeros((1, 12, 12, 3), np.uint8)
    image[0, :, :6, 0] = 200
    image[0, :, 6:, 2] = 200
    scores = np.zeros((1, 2, 12, 12), np.float32)
    scores[0, 0, :, :6] = 3.0
    scores[0, 1, 5:7, 8:10] = 5.0
    q = crf_marginals(scores, image, SEC["crf"])
    np.testing.assert_allclose(q.sum(1), 1, rtol=1e-6)
    assert q.min() >= MIN_PROB / (1 + MIN_PROB)
    expected = np.zeros((12, 12), np.int64)
    expected[:, 6:] = 1
    np.testing.assert_array_equal(q[0].argmax(0), expected)
    grey = np.full_like(image, 128)
    assert (crf_marginals(scores, grey, SEC["crf"])[0].argmax(0) == 0).all()


def test_the_grid_is_secs():
    """321 px at stride 8: 41 points, every 8th pixel; the cue of a point is its nearest pixel's; the grid image
    is the crop's pixels there, back from the normalisation exactly."""
    assert grid_size(321, 8) == 41 and grid_size(224, 8) == 28 and grid_size(96, 8) == 12
    np.testing.assert_array_equal(grid_positions(321, 41), np.arange(41) * 8)
    np.testing.assert_array_equal(grid_positions(11, 3), [0, 5, 10])
    np.testing.assert_array_equal(grid_positions(10, 3), [0, 5, 9])  # 4.5 rounds up
    mask = torch.arange(100).view(10, 10)
    np.testing.assert_array_equal(cues_on_grid(mask, 3).numpy(), mask.numpy()[[0, 5, 9]][:, [0, 5, 9]])
    image = np.random.default_rng(0).integers(0, 256, (321, 321, 3), dtype=np.uint8)
    np.testing.assert_array_equal(image_on_grid(to_tensor(image), 41).numpy(), image[::8, ::8])


def test_sec_loss_is_the_weighted_sum_and_the_crf_gets_the_grid_only(monkeypatch):
    generator = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 3, 17, 17, generator=generator)
    cues = torch.full((2, 3, 3), 255)
    cues[0, 0, 0], cues[1, 2, 1] = 1, 0
    targets = {
        "cues": cues,
        "classes": torch.tensor([[1.0, 0.0], [0.0, 1.0]]),
        "image": torch.randint(0, 256, (2, 3, 3, 3), dtype=torch.uint8, generator=generator),
    }
    settings = {**SEC, "seed_weight": 0.5, "expand_weight": 2.0, "constrain_weight": 3.0}
    seen = []

    def crf(scores, images, params):
        seen.append((type(scores), scores.shape, images.shape))
        return crf_marginals(scores, images, params)

    monkeypatch.setattr(wsss.training.sec, "crf_marginals", crf)
    loss = SecLoss(settings)
    terms = loss.terms(logits, targets)
    total = loss(logits, targets)
    weighted = 0.5 * terms["seed"] + 2 * terms["expand"] + 3 * terms["constrain"]
    assert total.item() == pytest.approx(weighted.item(), rel=1e-6)
    assert set(loss.epoch_record()) == {"seed_loss", "expand_loss", "constrain_loss"}
    assert seen == [(np.ndarray, (2, 3, 3, 3), (2, 3, 3, 3))] * 2  # the 3x3 grid of 3 classes, not 17x17
    # no CRF without the constrain term: the image is never read
    no_crf = SecLoss({**settings, "constrain_weight": 0})
    assert set(no_crf.terms(logits, {**targets, "image": None})) == {"seed", "expand"}
    with pytest.raises(ValueError, match="segmentation.sec"):
        SecLoss({**settings, "seed_weight": 0, "expand_weight": 0, "constrain_weight": 0})


def test_the_default_settings_are_those_from_before_the_key():
    """loss: cross_entropy (the default) leaves the segmentation step's settings, and so its params and
    fingerprint, as they were; sec adds loss and sec to the pseudo-label network's only (the bound keeps
    cross-entropy); the result's note says so."""
    for supervision in ("pseudo_mask", registry.GROUND_TRUTH):
        settings = registry.own_settings(CONFIG, "segmentation", supervision)["segmentation"]
        assert "loss" not in settings and "sec" not in settings
    assert not registry.trains_with_sec(CONFIG, "pseudo_mask")
    sec = config_with({"segmentation": {"loss": "sec"}})
    settings = registry.own_settings(sec, "segmentation", "pseudo_mask")["segmentation"]
    assert settings["loss"] == "sec" and settings["sec"] == SEC
    bound = registry.own_settings(sec, "segmentation", registry.GROUND_TRUTH)
    assert bound == registry.own_settings(CONFIG, "segmentation", registry.GROUND_TRUTH)
    assert registry.trains_with_sec(sec, "pseudo_mask") and not registry.trains_with_sec(sec, registry.GROUND_TRUTH)
    assert registry.stage_note(sec, "segmentation") == registry.stage_note(CONFIG, "segmentation") + "; SEC loss"
    assert registry.stage_note(sec, "fully_supervised") == registry.stage_note(CONFIG, "fully_supervised")


def test_sec_on_random_walk_labels_is_refused_in_words():
    config = config_with({"segmentation": {"loss": "sec", "labels": "random_walk"}})
    assert config_errors(config, SCHEMA, "experiments.s: ") == [
        "experiments.s: segmentation.loss: sec needs segmentation.labels: pseudo_mask (it is random_walk)"
    ]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(config, SCHEMA)
    jsonschema.validate(config_with({"segmentation": {"loss": "sec"}}), SCHEMA)
    assert config_errors(config_with({"segmentation": {"labels": "random_walk"}}), SCHEMA) == []
