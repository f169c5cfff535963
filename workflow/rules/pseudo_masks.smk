rule crf:
    """Merged CAM -> background threshold (cam.eval_threshold) -> dense CRF: a full label map per image."""
    input:
        data=DATASET,
        labels=LABELS,
        cams=upstream_path("crf"),
    output:
        directory(step_output("crf")),
    params:
        settings=step_params("crf"),  # crf and cam.eval_threshold
        split=SPLITS["train"],
        num_shards=config["shards"],
    log:
        "logs/{expdir}crf/shard{shard}.log",
    benchmark:
        step_benchmark("crf", "crf")
    conda:
        "../envs/wsss.yaml"
    threads: config["threads"]["crf"]
    resources:
        mem_mb=1000,
    script:
        "../../scripts/crf.py"


rule pseudo_masks:
    """IRN-style confident pseudo-masks: CRF at the fg and bg thresholds, 255 where neither is confident."""
    input:
        data=DATASET,
        labels=LABELS,
        cams=upstream_path("pseudo_masks"),
    output:
        directory(step_output("pseudo_masks")),
    params:
        settings=step_params("pseudo_masks"),  # crf and pseudo_mask
        split=SPLITS["train"],
        num_shards=config["shards"],
    log:
        "logs/{expdir}pseudo_masks/shard{shard}.log",
    benchmark:
        step_benchmark("pseudo_masks", "pseudo_masks")
    conda:
        "../envs/wsss.yaml"
    threads: config["threads"]["crf"]
    resources:
        mem_mb=1000,
    script:
        "../../scripts/pseudo_masks.py"
