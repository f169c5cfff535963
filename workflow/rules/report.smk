# Figures of the HTML report (`snakemake --report results/report.html`): each figure or gallery is its
# own cached rule, drawn by wsss.scoring.figures. Gallery file names carry the image id, classes and IoUs, which
# the report shows as labels and captions (Snakemake report patterns).
REPORT = config["report"]


rule report_train_gallery:
    """Sample, best and worst train images: CAMs per class and round, merged CAM, CRF, pseudo-mask, truth."""
    input:
        unpack(lambda wc: {f"cams_r{r}": GRID.step_outputs(run_name(wc), "cams", r) for r in rounds(run_name(wc))}),
        unpack(lambda wc: {stage: GRID.scored_outputs(run_name(wc), stage) for stage in train_gallery_stages(run_name(wc))}),
        data=DATASET,
        labels=LABELS,
        scores=IMAGE_SCORES,
        merged=lambda wc: GRID.step_outputs(run_name(wc), "merged_cams"),
    output:
        report(
            directory("results/{expdir}report/train_gallery"),
            patterns=["{selection}/{rank}__{image}__{classes}__iou{iou}.png"],
            caption="../report/train_gallery.rst",
            category=TRAIN_GALLERY_CATEGORY,
            # the report passes the file's own wildcards (selection, ...) and the job's params
            subcategory=lambda wildcards, params: gallery_title(wildcards.selection, params.rank_stage),
            labels=lambda wildcards, params: {"rank": "{rank}", "image": "{image}", "classes": "{classes}",
                                              f"{registry.stage_title(params.rank_stage)} IoU": "{iou}"},
        ),
    params:
        settings=REPORT,
        rounds=lambda wc: len(rounds(run_name(wc))),
        label_stages=lambda wc: train_gallery_stages(run_name(wc)),
        # ranked by the pseudo-labels the segmentation network learns from (their stage bears the labels' name)
        rank_stage=lambda wc: settings(wc)["segmentation"]["labels"],
        split=config["splits"]["seed_eval"],
        bg_threshold=lambda wc: settings(wc)["cam"]["eval_threshold"],
        classes=config["classes"],
    log:
        "logs/{expdir}report/train_gallery.log",
    conda:
        "../envs/wsss.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../../scripts/report_train_gallery.py"


rule report_val_gallery:
    """A seeded sample of val images: segmentation, fully-supervised prediction and ground truth (the last two
    where there are train masks and a mask of the image)."""
    input:
        data=DATASET,
        scores=IMAGE_SCORES,
        segmentation=lambda wc: GRID.scored_outputs(run_name(wc), registry.RESULT_STAGE),
        fully_supervised=lambda wc: GRID.scored_outputs(run_name(wc), registry.BOUND_STAGE) if has_bound(run_name(wc)) else [],
    output:
        report(
            directory("results/{expdir}report/val_gallery"),
            patterns=["{rank}__{image}__{classes}__seg{seg}__fs{fs}.png"],
            caption="../report/val_gallery.rst",
            category=VAL_GALLERY_CATEGORY,
            labels={"rank": "{rank}", "image": "{image}", "classes": "{classes}",
                    "segmentation IoU": "{seg}", "fully-supervised IoU": "{fs}"},
        ),
    params:
        settings=REPORT,
        split=config["splits"]["val"],
        classes=config["classes"],
    log:
        "logs/{expdir}report/val_gallery.log",
    conda:
        "../envs/wsss.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../../scripts/report_val_gallery.py"


rule report_class_iou:
    """Per-class IoU of every stage, grouped bars."""
    input:
        "results/{expdir}miou.parquet",
    output:
        report("results/{expdir}report/class_iou.png", caption="../report/class_iou.rst", category=SCORES_CATEGORY),
    params:
        stages=lambda wc: per_image_stages(run_name(wc)),
    log:
        "logs/{expdir}report/class_iou.log",
    conda:
        "../envs/wsss.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../../scripts/report_class_iou.py"


rule report_miou_by_stage:
    """mIoU from round-0 CAM to segmentation, with the fully-supervised line."""
    input:
        "results/{expdir}summary.parquet",
    output:
        report("results/{expdir}report/miou_by_stage.png", caption="../report/miou_by_stage.rst", category=SCORES_CATEGORY),
    log:
        "logs/{expdir}report/miou_by_stage.log",
    conda:
        "../envs/wsss.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../../scripts/report_miou_by_stage.py"


if GRID.is_grid:

    rule report_miou_over_seeds:
        """Each experiment's mIoU stage by stage, mean ± sd over its seeds (error bars)."""
        input:
            "results/summary.parquet",
        output:
            report("results/report/miou_by_stage.png", caption="../report/miou_by_stage.rst", category=SCORES_CATEGORY),
        log:
            "logs/report/miou_by_stage.log",
        conda:
            "../envs/wsss.yaml"
        threads: 1
        resources:
            mem_mb=1000,
        script:
            "../../scripts/report_miou_by_stage.py"


rule report_confusion:
    """Row-normalised confusion matrix of the segmentation network on val."""
    input:
        lambda wc: GRID.metrics_file(run_name(wc), registry.RESULT_STAGE),
    output:
        report(
            "results/{expdir}report/confusion_segmentation.png",
            caption="../report/confusion.rst",
            category=SCORES_CATEGORY,
        ),
    params:
        classes=config["classes"],
        split=config["splits"]["val"],
    log:
        "logs/{expdir}report/confusion.log",
    conda:
        "../envs/wsss.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../../scripts/report_confusion.py"


rule report_training_curves:
    """Loss and train mAP per epoch of every round's classifier."""
    input:
        lambda wc: [f"{GRID.step_dir(run_name(wc), 'classifier', r)}/history.parquet" for r in rounds(run_name(wc))],
    output:
        report(
            "results/{expdir}report/classifier_curves.png",
            caption="../report/classifier_curves.rst",
            category=TRAINING_CATEGORY,
        ),
    log:
        "logs/{expdir}report/classifier_curves.log",
    conda:
        "../envs/wsss.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../../scripts/report_training_curves.py"
