rule cams:
    """CAMs of one round for one shard of the train images (erased as that round's classifier saw them)."""
    input:
        data=DATASET,
        labels=LABELS,
        model="results/classifier/r{round}/model.pt",
        earlier_cams=earlier_cam_shards,
    output:
        directory("results/cams/r{round}/shard{shard}"),
    params:
        scales=config["cam"]["scales"],
        erasing_threshold=config["erasing"]["threshold"],
        split=SPLITS["train"],
        num_shards=config["shards"],
    log:
        "logs/cams/r{round}/shard{shard}.log",
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
        rounds=expand("results/cams/r{round}/shard{{shard}}", round=ROUNDS),
    output:
        directory("results/cams/merged/shard{shard}"),
    params:
        split=SPLITS["train"],
        num_shards=config["shards"],
    log:
        "logs/merge_cams/shard{shard}.log",
    conda:
        "../envs/wsss.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../../scripts/merge_cams.py"
