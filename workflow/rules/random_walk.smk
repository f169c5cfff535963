rule train_irn:
    """IRN's class-boundary network on the confident pseudo-masks (255 never trained on): one per run."""
    input:
        data=DATASET,
        masks=upstream("irn"),
        weights=lambda wc: pretrained_weights(settings(wc)["irn"]),
    output:
        model=step_output("irn", "model.pt"),
        history=step_output("irn", "history.parquet"),
    params:
        settings=step_params("irn"),  # seed and irn
        split=SPLITS["train"],
        num_classes=len(config["classes"]),
    log:
        "logs/{expdir}train_irn.log",
    benchmark:
        step_benchmark("irn", "train_irn")
    conda:
        "../envs/wsss.yaml"
    threads: config["threads"]["train"]
    resources:
        mem_mb=4000,
    script:
        "../../scripts/train_irn.py"


rule random_walk:
    """IRN's random walk: the merged CAMs spread inside the boundary map, dense label maps of one shard."""
    input:
        data=DATASET,
        labels=LABELS,
        model=upstream_path("random_walk", only="irn"),
        cams=upstream_path("random_walk", only="merged_cams"),
    output:
        directory(step_output("random_walk")),
    params:
        settings=step_params("random_walk"),
        split=SPLITS["train"],
        num_shards=config["shards"],
    log:
        "logs/{expdir}random_walk/shard{shard}.log",
    benchmark:
        step_benchmark("random_walk", "random_walk")
    conda:
        "../envs/wsss.yaml"
    threads: config["threads"]["infer"]
    resources:
        mem_mb=2000,
    script:
        "../../scripts/random_walk.py"
