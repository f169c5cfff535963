# Helpers shared by the rule files: paths, shard lists, the stage list.
from pathlib import Path

ROUNDS = list(range(config["erasing"]["rounds"]))
SHARDS = list(range(config["shards"]))
DATA_ROOT = "resources/demo/VOC2012"
LABELS = "results/labels/image_labels.parquet"
SUPERVISION = {"segmentation": "pseudo_mask", "fully_supervised": "ground_truth"}

wildcard_constraints:
    round=r"\d+",
    shard=r"\d+",
    supervision="pseudo_mask|ground_truth",


def cam_shards(round_):
    return expand("results/cams/r{round}/shard{shard}", round=round_, shard=SHARDS)


def earlier_cam_shards(wildcards):
    """CAM shards of every round before this one: what this round's classifier has erased."""
    return [d for r in range(int(wildcards.round)) for d in cam_shards(r)]


def stages():
    """Every scored stage, in pipeline order."""
    names = [f"cam_r{r}" for r in ROUNDS] + ["cam"]
    if config["cam"]["oracle_thresholds"]:
        names.append("cam_oracle")
    return names + ["crf", "pseudo_mask", "segmentation", "fully_supervised"]


def print_summary():
    summary = Path("results/summary.txt")
    if summary.exists():
        print(f"\nWSSS results ({summary}):\n{summary.read_text()}")
