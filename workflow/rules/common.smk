# Helpers shared across the workflow: paths, shard lists, the stages and their inputs.
ROUNDS = list(range(config["erasing"]["rounds"]))
SHARDS = list(range(config["shards"]))
DATA_ROOT = "resources/demo/VOC2012"
LABELS = "results/labels/image_labels.parquet"
SUPERVISION = {"segmentation": "pseudo_mask", "fully_supervised": "ground_truth"}
# Sections of the HTML report (snakemake --report), in reading order.
SCORES_CATEGORY = "1. Scores"
TRAIN_GALLERY_CATEGORY = "2. Train gallery: CAMs to pseudo-masks"
VAL_GALLERY_CATEGORY = "3. Val gallery: segmentation"
TRAINING_CATEGORY = "4. Classifier training"

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


def all_artifacts():
    """Every model and per-shard output directory of the workflow."""
    return (
        expand("results/classifier/r{round}/model.pt", round=ROUNDS)
        + [d for r in ROUNDS for d in cam_shards(r)]
        + expand("results/{stage}/shard{shard}", stage=["cams/merged", "crf", "pseudo_masks"], shard=SHARDS)
        + expand("results/segmentation/{supervision}/predictions", supervision=SUPERVISION.values())
    )


def segmentation_masks(wildcards):
    if wildcards.supervision == "pseudo_mask":
        return expand("results/pseudo_masks/shard{shard}", shard=SHARDS)
    return []


def stage_spec(stage):
    """What a stage scores: its per-image outputs, their kind, the split, the CAM thresholds."""
    seed_eval, val = config["splits"]["seed_eval"], config["splits"]["val"]
    merged = expand("results/cams/merged/shard{shard}", shard=SHARDS)
    threshold = [config["cam"]["eval_threshold"]]
    if stage.startswith("cam_r"):
        return dict(kind="cam", inputs=cam_shards(int(stage[5:])), split=seed_eval, thresholds=threshold)
    if stage == "cam":
        return dict(kind="cam", inputs=merged, split=seed_eval, thresholds=threshold)
    if stage == "cam_oracle":
        return dict(kind="cam_oracle", inputs=merged, split=seed_eval, thresholds=config["cam"]["oracle_thresholds"])
    if stage in ("crf", "pseudo_mask"):
        folder = "crf" if stage == "crf" else "pseudo_masks"
        return dict(kind="labels", inputs=expand(f"results/{folder}/shard{{shard}}", shard=SHARDS), split=seed_eval, thresholds=[])
    return dict(kind="labels", inputs=[f"results/segmentation/{SUPERVISION[stage]}/predictions"], split=val, thresholds=[])


def per_image_stages():
    """The stages scored image by image (the oracle is a threshold sweep over the whole split)."""
    return [stage for stage in stages() if stage != "cam_oracle"]
