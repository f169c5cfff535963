rule cams:
    """CAMs of one round for one shard of the train images (erased as that round's classifier saw them)."""
    input:
        data=DATASET,
        labels=LABELS,
        model=lambda wc: classifier_file(run_name(wc), int(wc.round)),
        earlier_cams=earlier_cam_shards,
    output:
        directory("results/{expdir}cams/r{round}/shard{shard}"),
    params:
        settings=lambda wc: cam_settings(settings(wc)),
        erasing_threshold=lambda wc: settings(wc)["erasing"]["threshold"],
        split=SPLITS["train"],
        num_shards=config["shards"],
    log:
        "logs/{expdir}cams/r{round}/shard{shard}.log",
    benchmark:
        "results/{expdir}benchmarks/cams/r{round}/shard{shard}.tsv"
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
        rounds=lambda wc: [cam_shards(run_name(wc), r)[int(wc.shard)] for r in rounds(run_name(wc))],
    output:
        directory("results/{expdir}cams/merged/shard{shard}"),
    params:
        split=SPLITS["train"],
        num_shards=config["shards"],
    log:
        "logs/{expdir}merge_cams/shard{shard}.log",
    benchmark:
        "results/{expdir}benchmarks/merge_cams/shard{shard}.tsv"
    conda:
        "../envs/wsss.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../../scripts/merge_cams.py"
