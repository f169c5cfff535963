"""config/coco2014.yaml plans at COCO's scale: with instances JSONs of COCO 2014's size in place (82,783 and 40,504
image records), the plan is the same handful of jobs per shard as with a few images, since planning reads no
JSON (the DAG grows with shards, not images); benchmarks/coco_scale.py times it."""

import json

from tests.workflow_helpers import copy_workflow, job_counts, run

TRAIN_IMAGES, VAL_IMAGES = 82_783, 40_504


def instances(count: int, prefix: str) -> dict:
    images = [{"id": i, "file_name": f"COCO_{prefix}_{i:012d}.jpg", "height": 480, "width": 640} for i in range(count)]
    return {"images": images, "annotations": [], "categories": []}


def test_coco2014_plans_on_coco_sized_annotations(tmp_path):
    data = tmp_path / "coco"
    for count, prefix in ((TRAIN_IMAGES, "train2014"), (VAL_IMAGES, "val2014")):
        (data / prefix).mkdir(parents=True)
        (data / f"instances_{prefix}.json").write_text(json.dumps(instances(count, prefix)))
    root = copy_workflow(
        tmp_path / "w",
        {
            "dataset": {
                "images": {"train": str(data / "train2014"), "val": str(data / "val2014")},
                "annotations": {
                    "train": str(data / "instances_train2014.json"),
                    "val": str(data / "instances_val2014.json"),
                },
            }
        },
    )
    configfiles = ("config/voc2012.yaml", "config/coco2014.yaml", "tiny.yaml")
    plan = job_counts(run(root, "-n", "results/miou.parquet", configfiles=configfiles).stdout)
    # the data is there: nothing downloaded; one index, 64 shards of each per-image step, IRN's chain
    assert "download_archive" not in plan and "extract_archive" not in plan
    assert plan["dataset_index"] == 1 and plan["train_classifier"] == 1 and plan["train_irn"] == 1
    for rule in ("cams", "merge_cams", "crf", "pseudo_masks", "random_walk"):
        assert plan[rule] == 64, (rule, plan)
    assert plan["train_segmentation"] == 2  # the network on the walk's labels and the bound
