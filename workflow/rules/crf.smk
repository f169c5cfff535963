rule crf:
    """Merged CAM -> background threshold (cam.eval_threshold) -> dense CRF: a full label map per image."""
    input:
        data=DATASET,
        labels=LABELS,
        cams="results/cams/merged/shard{shard}",
    output:
        directory("results/crf/shard{shard}"),
    params:
        crf=config["crf"],
        bg_threshold=config["cam"]["eval_threshold"],
        split=SPLITS["train"],
        num_shards=config["shards"],
    log:
        "logs/crf/shard{shard}.log",
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
        cams="results/cams/merged/shard{shard}",
    output:
        directory("results/pseudo_masks/shard{shard}"),
    params:
        crf=config["crf"],
        fg_threshold=config["pseudo_mask"]["fg_threshold"],
        bg_threshold=config["pseudo_mask"]["bg_threshold"],
        split=SPLITS["train"],
        num_shards=config["shards"],
    log:
        "logs/pseudo_masks/shard{shard}.log",
    conda:
        "../envs/wsss.yaml"
    threads: config["threads"]["crf"]
    resources:
        mem_mb=1000,
    script:
        "../../scripts/pseudo_masks.py"
