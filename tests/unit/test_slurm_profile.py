"""workflow/profiles/slurm asks GPUs for the GPU rules, CPUs for the rest, and nothing for local rules
(tests/workflow/test_slurm.py runs the workflow through it on a one-node cluster)."""

import yaml

from tests.workflow_helpers import REPO

PROFILE = REPO / "workflow" / "profiles" / "slurm" / "config.yaml"
GPU_RULES = [
    "train_classifier",
    "cams",
    "train_recam",
    "recam_cams",
    "train_segmentation",
    "predict_segmentation",
    "segment_photos",
    "train_irn",
    "random_walk",
]
CPU_RULES = [
    "crf",
    "pseudo_masks",
    "saliency",
    "merge_cams",
    "evaluate_stage",
    "evaluate_saliency_oracle",
    "image_labels",
]
LOCAL_RULES = [
    "demo_dataset",
    "miou_table",
    "download_archive",
    "extract_archive",
    "pretrained_weights",
]


def test_profile_asks_gpus_for_gpu_rules_and_cpus_for_the_rest():
    profile = yaml.safe_load(PROFILE.read_text())
    assert profile["executor"] == "slurm"
    for rule in GPU_RULES:
        resources = profile["set-resources"][rule]
        assert resources["gpu"] == 1 and resources["cpus_per_gpu"] >= 1, rule
        assert resources.get("mem_mb", rule == "train_segmentation") > 0 and resources["runtime"] > 0, rule
    # the segmentation network's memory is the rule's, per architecture (wsss.pipeline.resources)
    assert "mem_mb" not in profile["set-resources"]["train_segmentation"]
    for rule in CPU_RULES + ["dataset_index"]:  # dataset_index runs once, in the first (killed) run
        assert "gpu" not in profile["set-resources"][rule] and profile["set-threads"][rule] >= 1, rule
    assert not set(LOCAL_RULES) & set(profile["set-resources"])
