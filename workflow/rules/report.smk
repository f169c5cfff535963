# Figures of the HTML report (`snakemake --report results/report.html`): each figure or gallery is its
# own cached rule, drawn by wsss.scoring.figures. Gallery file names carry the image id, classes and IoUs, which
# the report shows as labels and captions (Snakemake report patterns).
REPORT = config["report"]
GALLERY_TITLES = {
    "sample": f"random sample of {REPORT['sample_size']} (seed {REPORT['seed']})",
    "best": f"best {REPORT['best']} by pseudo-mask IoU",
    "worst": f"worst {REPORT['worst']} by pseudo-mask IoU",
}
REPORT_FIGURES = [
    "results/report/train_gallery",
    "results/report/val_gallery",
    "results/report/class_iou.png",
    "results/report/miou_by_stage.png",
    "results/report/confusion_segmentation.png",
    "results/report/classifier_curves.png",
]
# A grid or a replicated run: the tables of every run and the stage plot of each experiment over its seeds
# (each run's own figures are targets too: results/<run>/report/...).
GRID_FIGURES = ["results/ranking.txt", "results/summary.txt", "results/report/miou_by_stage.png"]


rule report_train_gallery:
    """Sample, best and worst train images: CAMs per class and round, merged CAM, CRF, pseudo-mask, truth."""
    input:
        unpack(lambda wc: {f"cams_r{r}": cam_shards(run_name(wc), r) for r in rounds(run_name(wc))}),
        data=DATASET,
        labels=LABELS,
        scores="results/{expdir}metrics/image_scores.parquet",
        merged=lambda wc: shard_dirs(run_name(wc), "merged"),
        crf=lambda wc: shard_dirs(run_name(wc), "crf"),
        pseudo_masks=lambda wc: shard_dirs(run_name(wc), "pseudo_masks"),
    output:
        report(
            directory("results/{expdir}report/train_gallery"),
            patterns=["{selection}/{rank}__{image}__{classes}__iou{iou}.png"],
            caption="../report/train_gallery.rst",
            category=TRAIN_GALLERY_CATEGORY,
            subcategory=lambda wildcards: GALLERY_TITLES[wildcards.selection],
            labels={"rank": "{rank}", "image": "{image}", "classes": "{classes}", "pseudo-mask IoU": "{iou}"},
        ),
    params:
        settings=REPORT,
        rounds=lambda wc: len(rounds(run_name(wc))),
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
    """A seeded sample of val images: segmentation, fully-supervised prediction and ground truth."""
    input:
        data=DATASET,
        scores="results/{expdir}metrics/image_scores.parquet",
        segmentation=lambda wc: segmentation_file(run_name(wc), "pseudo_mask", "predictions"),
        fully_supervised=lambda wc: segmentation_file(run_name(wc), "ground_truth", "predictions"),
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
        stages=lambda wc: [stage for stage in stages(run_name(wc)) if stage != "cam_oracle"],
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
        lambda wc: metrics_file(run_name(wc), "segmentation"),
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
        lambda wc: [classifier_file(run_name(wc), r, "history.parquet") for r in rounds(run_name(wc))],
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
