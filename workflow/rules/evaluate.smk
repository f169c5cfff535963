rule evaluate_stage:
    """Confusion matrix of one stage against the ground truth of its split."""
    input:
        data=DATASET,
        labels=LABELS,
        outputs=lambda wc: stage_spec(wc.stage)["inputs"],
    output:
        "results/metrics/{stage}.npz",
    params:
        kind=lambda wc: stage_spec(wc.stage)["kind"],
        split=lambda wc: stage_spec(wc.stage)["split"],
        thresholds=lambda wc: stage_spec(wc.stage)["thresholds"],
        num_classes=len(config["classes"]),
    wildcard_constraints:
        stage=r"cam_r\d+|cam|cam_oracle|crf|pseudo_mask|segmentation|fully_supervised",
    log:
        "logs/evaluate/{stage}.log",
    conda:
        "../envs/wsss.yaml"
    threads: config["threads"]["evaluate"]
    resources:
        mem_mb=2000,
    script:
        "../../scripts/evaluate_stage.py"


rule miou_table:
    """results/miou.parquet (per stage and class), results/summary.parquet and the printed summary."""
    input:
        expand("results/metrics/{stage}.npz", stage=stages()),
    output:
        miou="results/miou.parquet",
        summary="results/summary.parquet",
        text=report("results/summary.txt", caption="../report/summary.rst", category=SCORES_CATEGORY),
        metrics="results/metrics.json",
        per_class="results/per_class_iou.csv",
    params:
        stages=stages(),
        splits=[stage_spec(s)["split"] for s in stages()],
        classes=config["classes"],
    log:
        "logs/miou_table.log",
    localrule: True  # quick: run by Snakemake itself, never submitted to a cluster
    conda:
        "../envs/wsss.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../../scripts/miou_table.py"


rule image_scores:
    """Every image's own mIoU per stage (the oracle aside): the report's best/worst choice and captions."""
    input:
        unpack(lambda wc: {stage: stage_spec(stage)["inputs"] for stage in per_image_stages()}),
        data=DATASET,
        labels=LABELS,
    output:
        "results/metrics/image_scores.parquet",
    params:
        stages=lambda wc: {stage: stage_spec(stage) for stage in per_image_stages()},
        num_classes=len(config["classes"]),
    log:
        "logs/image_scores.log",
    conda:
        "../envs/wsss.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../../scripts/image_scores.py"
