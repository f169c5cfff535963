"""ReCAM's loss against the paper's definition (Chen et al., CVPR 2022, Sec. 3: the CAM-weighted feature of each
labelled class, softmax cross-entropy over the classes), its frozen parts, the folded head, and its config errors."""

import math

import pytest
import torch
import yaml

from tests.workflow_helpers import REPO
from wsss.nets.models import Classifier
from wsss.pipeline.config_checks import config_errors
from wsss.pipeline.experiments import deep_merge
from wsss.training.recam import ReCAMNet, cam_weighted_features, prepare, recam_cross_entropy

SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
CONFIG = yaml.safe_load((REPO / "config/config.yaml").read_text())


def test_the_cam_weighted_feature_is_the_papers():
    """f_k = (1/|P|) sum_p (relu(M_k(p)) / (max relu(M_k) + 1e-5)) F(p), element by element."""
    torch.manual_seed(0)
    maps, features = torch.randn(2, 3, 4, 5), torch.randn(2, 6, 4, 5)
    got = cam_weighted_features(maps, features)
    for n in range(2):
        for k in range(3):
            cam = maps[n, k].clamp(min=0)
            cam = cam / (cam.max() + 1e-5)
            expected = torch.stack([(cam * features[n, c]).sum() / 20 for c in range(6)])
            torch.testing.assert_close(got[n, k], expected)


def test_the_cross_entropy_is_the_papers():
    """L_ce = (1/N) sum_n (1/|Y_n|) sum_{k in Y_n} -log softmax(W f_nk)_k, an image without labels adding 0."""
    torch.manual_seed(1)
    predictor = torch.nn.Linear(4, 3, bias=False)
    weighted = torch.randn(3, 3, 4)
    targets = torch.tensor([[1.0, 0, 1], [0, 0, 0], [0, 1, 0]])
    expected = 0.0
    for n, labels in enumerate([[0, 2], [], [1]]):
        if labels:
            expected += sum(-torch.log_softmax(predictor(weighted[n, k]), 0)[k].item() for k in labels) / len(labels)
    assert recam_cross_entropy(predictor, weighted, targets).item() == pytest.approx(expected / 3, rel=1e-6)


def test_the_loss_adds_the_weighted_cross_entropy_and_the_head_folds():
    torch.set_num_threads(1)
    torch.manual_seed(2)
    net = ReCAMNet(prepare(Classifier("resnet18", 3, 16)), loss_weight=0.1)
    x, y = torch.randn(2, 3, 48, 48), torch.tensor([[1.0, 0, 0], [0, 1, 1]])
    total, cls, ce = net.loss_parts(net(x), y)
    assert total.item() == pytest.approx(cls.item() + 0.1 * ce.item(), rel=1e-6)
    assert cls.item() == pytest.approx(
        torch.nn.functional.multilabel_soft_margin_loss(net.classifier(x), y).item(), rel=1e-6
    )
    # the stem is frozen, stages 1-4, the CAM head and the predictor train; every BatchNorm stays in eval mode
    net.train()
    assert not any(p.requires_grad for p in net.classifier.features.stem.parameters())
    assert all(p.requires_grad for p in net.classifier.features.stages.parameters())
    batchnorms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert batchnorms and not any(m.training for m in batchnorms)
    (backbone, mult), (predictor, one) = net.param_groups(0.1)
    assert (mult, one) == (0.1, 1.0) and predictor == [net.predictor.weight]
    assert any(p is net.classifier.classifier.weight for p in backbone)
    # the folded head's CAMs are relu(conv(F, W_recam * W_cls))
    net.eval()
    w_recam, w_cls = net.predictor.weight.detach().clone(), net.classifier.classifier.weight.detach().clone()
    with torch.no_grad():
        features = net.classifier.features(x)
        expected = torch.relu(torch.nn.functional.conv2d(features, w_recam[:, :, None, None] * w_cls))
        torch.testing.assert_close(net.folded().cam(x), expected)
    assert not math.isnan(total.item())


def errors_of(overrides):
    return config_errors(deep_merge(CONFIG, overrides), SCHEMA)


def test_recam_needs_one_round_and_classic_cams():
    assert errors_of({"cam": {"source": "recam"}}) == ["cam.source: recam needs erasing.rounds: 1 (it is 2)"]
    assert errors_of({"cam": {"source": "recam", "method": "gradcam"}, "erasing": {"rounds": 1}}) == [
        "cam.source: recam needs cam.method: cam (it is gradcam)"
    ]
    assert errors_of({"cam": {"source": "recam"}, "erasing": {"rounds": 1}, "classifier": {"method": "acol"}}) == [
        "cam.source: recam needs classifier.method: cam (it is acol)"
    ]
    assert errors_of({"cam": {"source": "recam"}, "erasing": {"rounds": 1}}) == []
    voc = deep_merge(CONFIG, yaml.safe_load((REPO / "config/voc2012.yaml").read_text()))
    for base, name in ((CONFIG, "demo-recam.yaml"), (voc, "voc2012-grid.yaml")):
        shipped = yaml.safe_load((REPO / "config" / name).read_text())
        merged = deep_merge(base, {k: v for k, v in shipped.items() if k != "experiments"})
        for experiment, overrides in shipped["experiments"].items():
            assert config_errors(deep_merge(merged, overrides or {}), SCHEMA) == [], (name, experiment)
