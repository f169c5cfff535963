rule train_recam:
    """ReCAM: the round-0 classifier fine-tuned with a class predictor on CAM-weighted features (cam.source recam)."""
    input:
        data=DATASET,
        labels=LABELS,
        classifier=upstream_path("recam"),
    output:
        model=step_output("recam", "model.pt"),
        history=step_output("recam", "history.parquet"),
    params:
        settings=step_params("recam"),  # seed, recam, and the classifier's crops (resize_long, crop_size)
        split=SPLITS["train"],
        num_classes=len(config["classes"]),
        num_workers=lambda wc: settings(wc)["classifier"]["num_workers"],
    log:
        "logs/{expdir}train_recam.log",
    benchmark:
        step_benchmark("recam", "train_recam")
    conda:
        "../envs/wsss.yaml"
    threads: config["threads"]["train"]
    resources:
        mem_mb=4000,
    script:
        "../../scripts/train_recam.py"


rule recam_cams:
    """ReCAM's re-activated maps for one shard of the train images: the CAMs of the classifier with the folded head."""
    input:
        data=DATASET,
        labels=LABELS,
        model=upstream_path("recam_cams"),
    output:
        directory(step_output("recam_cams")),
    params:
        settings=step_params("recam_cams"),  # cam (not its scoring keys or source)
        split=SPLITS["train"],
        num_shards=config["shards"],
    log:
        "logs/{expdir}recam_cams/shard{shard}.log",
    benchmark:
        step_benchmark("recam_cams", "recam_cams")
    conda:
        "../envs/wsss.yaml"
    threads: config["threads"]["infer"]
    resources:
        mem_mb=2000,
    script:
        "../../scripts/recam_cams.py"
