def stage_spec(name, stage):
    """What a stage of a run scores (registry.STAGES): its step's outputs, their kind, the split, the CAM
    thresholds."""
    scored, _ = registry.stage(stage)
    cam = GRID.configs[name]["cam"]
    thresholds = {registry.CAM: [cam["eval_threshold"]], registry.CAM_ORACLE: cam["oracle_thresholds"]}
    return dict(kind=scored.kind, inputs=GRID.scored_outputs(name, stage), split=config["splits"][scored.split],
                thresholds=thresholds.get(scored.kind, []))


def job_benchmarks(name):
    """(step, benchmark file) of every job that makes a run's WSSS result (the segmentation network on
    pseudo-masks) and everything upstream of it, shared jobs included: what the method costs from scratch
    (scoring and the fully-supervised bound aside)."""
    result, arg = registry.stage(registry.RESULT_STAGE)
    jobs = []
    for step, step_arg in registry.closure(GRID.configs[name], result.step, arg):
        spec = registry.step(step)
        for rule in spec.rules:
            pattern = f"results/{GRID.owner_folder(name, step, step_arg)}{spec.benchmark(rule)}"
            wildcards = {spec.arg: step_arg} if spec.arg else {}
            jobs += [(step, pattern.format(**wildcards, shard=shard)) for shard in (SHARDS if spec.per_shard else [0])]
    return jobs


rule evaluate_stage:
    """Confusion matrix of one stage against the ground truth of its split."""
    input:
        data=DATASET,
        labels=LABELS,
        outputs=lambda wc: GRID.scored_outputs(run_name(wc), wc.stage),
    output:
        f"results/{{expdir}}{registry.METRICS}/{{stage}}.npz",
    params:
        kind=lambda wc: stage_spec(run_name(wc), wc.stage)["kind"],
        split=lambda wc: stage_spec(run_name(wc), wc.stage)["split"],
        thresholds=lambda wc: stage_spec(run_name(wc), wc.stage)["thresholds"],
        num_classes=len(config["classes"]),
    wildcard_constraints:
        stage=registry.STAGE_PATTERN,
    log:
        "logs/{expdir}evaluate/{stage}.log",
    conda:
        "../envs/wsss.yaml"
    threads: config["threads"]["evaluate"]
    resources:
        mem_mb=2000,
    script:
        "../../scripts/evaluate_stage.py"


rule miou_table:
    """A run's miou.parquet (per stage and class), summary.parquet and printed summary."""
    input:
        lambda wc: [GRID.metrics_file(run_name(wc), stage) for stage in stages(run_name(wc))],
    output:
        miou="results/{expdir}miou.parquet",
        summary="results/{expdir}summary.parquet",
        text=report("results/{expdir}summary.txt", caption="../report/summary.rst", category=SCORES_CATEGORY),
        metrics="results/{expdir}metrics.json",
        per_class="results/{expdir}per_class_iou.csv",
    params:
        experiment=lambda wc: GRID.experiment_of(run_name(wc)),
        seed=lambda wc: settings(wc)["seed"],
        stages=lambda wc: stages(run_name(wc)),
        splits=lambda wc: [stage_spec(run_name(wc), s)["split"] for s in stages(run_name(wc))],
        classes=config["classes"],
    log:
        "logs/{expdir}miou_table.log",
    localrule: True  # quick: run by Snakemake itself, never submitted to a cluster
    conda:
        "../envs/wsss.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../../scripts/miou_table.py"


if GRID.is_grid:  # results/miou.parquet is then every run's rows

    rule grid_table:
        """The tables of a grid or a replicated run: every run's per-class rows in results/miou.parquet
        (`experiment` and `seed` columns), each experiment's figures as mean ± sd over its seeds in
        results/summary.{parquet,txt}, and the experiments ranked by rank_by's mIoU with their compute time."""
        input:
            miou=expand("results/{folder}miou.parquet", folder=[GRID.folder(name) for name in RUNS]),
            summaries=expand("results/{folder}summary.parquet", folder=[GRID.folder(name) for name in RUNS]),
            benchmarks=unique(path for name in RUNS for _, path in job_benchmarks(name)),
        output:
            miou="results/miou.parquet",
            summary="results/summary.parquet",
            summary_text=report("results/summary.txt", caption="../report/summary.rst", category=SCORES_CATEGORY),
            ranking="results/ranking.parquet",
            text=report("results/ranking.txt", caption="../report/ranking.rst", category=SCORES_CATEGORY),
        params:
            run_experiments={name: GRID.experiment_of(name) for name in RUNS},
            jobs={name: job_benchmarks(name) for name in RUNS},
            folders={name: f"results/{GRID.folder(name)}" for name in RUNS},
            rank_by=config["rank_by"],
        log:
            "logs/grid_table.log",
        localrule: True
        conda:
            "../envs/wsss.yaml"
        threads: 1
        resources:
            mem_mb=1000,
        script:
            "../../scripts/grid_table.py"


rule image_scores:
    """Every image's own mIoU per stage (the oracle aside): the report's best/worst choice and captions."""
    input:
        unpack(lambda wc: {stage: GRID.scored_outputs(run_name(wc), stage) for stage in per_image_stages(run_name(wc))}),
        data=DATASET,
        labels=LABELS,
    output:
        IMAGE_SCORES,
    params:
        stages=lambda wc: {stage: stage_spec(run_name(wc), stage) for stage in per_image_stages(run_name(wc))},
        num_classes=len(config["classes"]),
    log:
        "logs/{expdir}image_scores.log",
    conda:
        "../envs/wsss.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../../scripts/image_scores.py"
