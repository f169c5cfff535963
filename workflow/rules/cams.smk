rule cams:
    """CAMs of one round for one shard of the train images (erased as that round's classifier saw them)."""
    input:
        data=DATASET,
        labels=LABELS,
        model=upstream_path("cams", only="classifier"),
        earlier_cams=upstream("cams", only="cams"),
    output:
        directory(step_output("cams")),
    params:
        settings=step_params("cams"),  # cam (not its scoring keys) and, from round 1 on, the erasing threshold
        split=SPLITS["train"],
        num_shards=config["shards"],
    log:
        "logs/{expdir}cams/r{round}/shard{shard}.log",
    benchmark:
        step_benchmark("cams", "cams")
    conda:
        "../envs/wsss.yaml"
    threads: config["threads"]["infer"]
    resources:
        mem_mb=2000,
    script:
        "../../scripts/cams.py"


rule merge_cams:
    """The per-pixel maximum over erasing rounds."""
    input:
        data=DATASET,
        rounds=upstream("merged_cams"),
    output:
        directory(step_output("merged_cams")),
    params:
        split=SPLITS["train"],
        num_shards=config["shards"],
    log:
        "logs/{expdir}merge_cams/shard{shard}.log",
    benchmark:
        step_benchmark("merged_cams", "merge_cams")
    conda:
        "../envs/wsss.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../../scripts/merge_cams.py"
