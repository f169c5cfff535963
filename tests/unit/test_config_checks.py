"""Config mistakes that the schema alone reports badly are said in words (wsss.pipeline.config_checks)."""

import yaml

from tests.workflow_helpers import REPO
from wsss.pipeline.config_checks import config_errors
from wsss.pipeline.experiments import deep_merge

SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
CONFIG = yaml.safe_load((REPO / "config/config.yaml").read_text())


def errors_of(overrides, where=""):
    return config_errors(deep_merge(CONFIG, overrides), SCHEMA, where)


def test_the_shipped_configs_have_none():
    for name in ("config.yaml", "voc2012.yaml", "photos.yaml", "demo-resnet18.yaml"):
        assert errors_of(yaml.safe_load((REPO / "config" / name).read_text())) == [], name


def test_an_old_key_names_its_new_name():
    assert errors_of({"classifier": {"arch": "resnet18"}, "irn": {"arch": "resnet50"}}) == [
        "classifier.arch is now called classifier.backbone: rename it",
        "irn.arch is now called irn.backbone: rename it",
    ]
    # segmentation.arch is the network, not an old name
    assert errors_of({"segmentation": {"arch": "fcn"}}) == []


def test_an_impossible_stride_is_said_in_words():
    assert errors_of({"segmentation": {"arch": "unet"}}, "experiments.u: ") == [
        "experiments.u: segmentation.arch: unet needs segmentation.output_stride: 32 (it is 16)"
    ]
    assert errors_of({"segmentation": {"arch": "deeplabv3plus", "output_stride": 32}}) == [
        "segmentation.arch: deeplabv3plus needs segmentation.output_stride: 8 or 16 (it is 32)"
    ]
    assert errors_of({"segmentation": {"arch": "unet", "output_stride": 32}}) == []


def test_a_combination_across_sections_is_said_in_words():
    """The schema's top-level if/then rules too: random-walk labels need the walk, and an expansion method needs
    the plain CAM."""
    assert errors_of({"segmentation": {"labels": "random_walk"}, "random_walk": {"enabled": False}}) == [
        "segmentation.labels: random_walk needs random_walk.enabled: true (it is false)"
    ]
    assert errors_of({"segmentation": {"labels": "pseudo_mask"}, "random_walk": {"enabled": False}}) == []
    assert errors_of({"classifier": {"method": "seam"}, "cam": {"method": "gradcam"}}, "experiments.s: ") == [
        "experiments.s: classifier.method: seam needs cam.method: cam (it is gradcam)"
    ]
