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
        stage=registry.STAGE_PATTERN,  # the saliency oracle aside: its own rule below
    log:
        "logs/{expdir}evaluate/{stage}.log",
    conda:
        "../envs/wsss.yaml"
    threads: config["threads"]["evaluate"]
    resources:
        mem_mb=2000,
    script:
        "../../scripts/evaluate_stage.py"


rule evaluate_saliency_oracle:
    """Pseudo-masks with saliency (wsss.seeds.saliency) rebuilt at each of saliency.oracle_thresholds and scored
    against the ground truth of their split: the best is kept, marked oracle."""
    input:
        data=DATASET,
        labels=LABELS,
        cams=lambda wc: GRID.scored_outputs(run_name(wc), "saliency_oracle"),
        saliency=lambda wc: stage_spec(run_name(wc), "saliency_oracle")["saliency"]["maps"],
    output:
        f"results/{{expdir}}{registry.METRICS}/saliency_oracle.npz",
    params:
        split=lambda wc: stage_spec(run_name(wc), "saliency_oracle")["split"],
        thresholds=lambda wc: stage_spec(run_name(wc), "saliency_oracle")["thresholds"],
        fg_threshold=lambda wc: stage_spec(run_name(wc), "saliency_oracle")["saliency"]["fg_threshold"],
        crf=lambda wc: stage_spec(run_name(wc), "saliency_oracle")["saliency"]["crf"],
        num_classes=len(config["classes"]),
    log:
        "logs/{expdir}evaluate/saliency_oracle.log",
    conda:
        "../envs/wsss.yaml"
    threads: config["threads"]["evaluate"]
    resources:
        mem_mb=2000,
    script:
        "../../scripts/evaluate_saliency_oracle.py"


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
        notes=lambda wc: [registry.stage_note(settings(wc), s) for s in stages(run_name(wc))],
        unscored=lambda wc: registry.unscored_stages(settings(wc)),  # said in summary.txt
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
            ranking_text=report("results/ranking.txt", caption="../report/ranking.rst", category=SCORES_CATEGORY),
        params:
            run_experiments={name: GRID.experiment_of(name) for name in RUNS},
            jobs={name: job_benchmarks(name) for name in RUNS},
            folders={name: f"results/{GRID.folder(name)}" for name in RUNS},
            rank_by=config["rank_by"],
            unscored={stage: reason for name in RUNS for stage, reason in registry.unscored_stages(GRID.configs[name]).items()},
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
