"""The dataset kinds by name (config dataset.kind): the one table, as the networks and CAM methods have theirs.

Adding a kind: a builder (IndexRequest -> BuiltIndex, wsss.data.datasets) in its own module, and its entry
here with the dataset keys it reads; the schema's dataset.kind enum is checked against this table
(tests/unit/test_registry.py) and config/README.md documents its keys.
"""

from __future__ import annotations

from wsss.data import coco, tagged
from wsss.data.datasets import FROM_MASKS, FROM_TAGS, DatasetKind, IndexRequest, write_index
from wsss.data.voc_sbd import build_voc

# The dataset section's keys besides kind, each with its value when a run leaves it unset: a kind reads its
# own keys, and another kind's key set in the config is a mistake said in words (wsss.pipeline.config_checks)
DATASET_KEYS = {"images": None, "annotations": None, "categories": "all", "tags": None, "masks": None}

KINDS = {
    kind.name: kind
    for kind in (
        DatasetKind(
            "voc",
            build_voc,
            FROM_MASKS,
            description="a VOC 2012 tree (voc_root, a verified download, or the demo) and SBD's train_aug",
        ),
        DatasetKind(
            "coco",
            coco.build_coco,
            FROM_TAGS,
            keys=("images", "annotations", "categories"),
            required=("images", "annotations"),
            inputs=coco.coco_inputs,
            description="COCO instances JSON per split, masks rasterised with pycocotools",
        ),
        DatasetKind(
            "tagged",
            tagged.build_tagged,
            FROM_TAGS,
            keys=("images", "tags", "masks"),
            required=("images", "tags"),
            inputs=tagged.tagged_inputs,
            masked_splits=tagged.masked_splits,
            description="a folder of photos and a CSV of their tags; masks for any subset, optional",
        ),
    )
}


def kind(name: str) -> DatasetKind:
    if name not in KINDS:
        raise ValueError(f"unknown dataset kind {name!r}; the kinds are {', '.join(KINDS)}")
    return KINDS[name]


def dataset_settings(config: dict) -> dict:
    """The config's dataset section (a config from before the section existed: the voc kind)."""
    return config.get("dataset") or {"kind": "voc", **DATASET_KEYS}


def masked_splits(config: dict) -> frozenset:
    """The configured splits (names) with at least one mask, known when the workflow is planned."""
    settings = dataset_settings(config)
    splits = sorted(set(config["splits"].values()))
    classes, train_split = list(config["classes"]), config["splits"]["train"]
    return frozenset(kind(settings["kind"]).masked_splits(settings, splits, classes, train_split))


def index_dataset(request: IndexRequest) -> dict[str, int]:
    """The dataset_index step: the index of request.settings' kind, written to request.out_dir (the image
    count per list)."""
    name = request.settings["kind"]
    return write_index(kind(name).build(request), request, name)
