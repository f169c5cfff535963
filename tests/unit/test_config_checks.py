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
    assert errors_of({"segmentation": {"labels": "clip_es"}}) == [
        "segmentation.labels: clip_es needs cam.source: clip_es (it is classifier)"
    ]
    assert errors_of({"segmentation": {"labels": "clip_es"}, "cam": {"source": "clip_es"}}) == []
    assert errors_of({"classifier": {"method": "seam"}, "cam": {"method": "gradcam"}}, "experiments.s: ") == [
        "experiments.s: classifier.method: seam needs cam.method: cam (it is gradcam)"
    ]


def test_a_dataset_kinds_keys_are_said_in_words():
    """A kind without the keys it needs, another kind's keys set by mistake, voc_root with a kind that reads none."""
    config = deep_merge(CONFIG, {"dataset": {"kind": "tagged", "annotations": {"train": "a.json"}}, "voc_root": "v"})
    errors = config_errors(config, SCHEMA)
    assert "dataset.kind: tagged needs dataset.images (it is null)" in errors
    assert "dataset.kind: tagged needs dataset.tags (it is null)" in errors
    reads = "it reads dataset.images, dataset.tags, dataset.masks"
    assert f"dataset.annotations is set, but dataset.kind tagged does not read it ({reads})" in errors
    assert f"voc_root is set, but dataset.kind tagged does not read it ({reads})" in errors
    coco = deep_merge(CONFIG, {"dataset": {"kind": "coco", "images": "i", "annotations": {"train": "t.json"}}})
    assert config_errors(coco, SCHEMA) == []
    voc = deep_merge(CONFIG, {"dataset": {"tags": "t.csv"}})
    assert config_errors(voc, SCHEMA) == [
        "dataset.tags is set, but dataset.kind voc does not read it (it reads voc_root and sbd_root)"
    ]
