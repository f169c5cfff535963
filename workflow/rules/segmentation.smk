rule train_segmentation:
    """The segmentation network (segmentation.arch) on the pseudo-labels of segmentation.labels
    (segmentation/pseudo_mask/ or segmentation/random_walk/), or on the ground truth for the fully-supervised
    bound (segmentation/ground_truth/); the loss's class weights (segmentation.class_weights), counted over
    those labels, go to class_weights.json; with segmentation.loss sec, the pseudo-label network trains with
    SEC's loss on the pseudo-masks as cues and the image-level labels."""
    input:
        data=DATASET,
        masks=upstream("segmentation"),
        labels=sec_labels,
        weights=lambda wc: pretrained_weights(settings(wc)["segmentation"]),
    output:
        model=step_output("segmentation", "model.pt"),
        history=step_output("segmentation", "history.parquet"),
        class_weights=step_output("segmentation", "class_weights.json"),
    params:
        settings=step_params("segmentation"),
        split=SPLITS["train"],
        classes=config["classes"],
    log:
        "logs/{expdir}train_segmentation/{supervision}.log",
    benchmark:
        step_benchmark("segmentation", "train_segmentation")
    conda:
        "../envs/wsss.yaml"
    threads: config["threads"]["train"]
    resources:
        # by network, backbone, batch and crop (measured: wsss.pipeline.resources); the SLURM profile keeps it
        mem_mb=lambda wc: segmentation_train_mem_mb(settings(wc)["segmentation"]),
    script:
        "../../scripts/train_segmentation.py"


rule predict_segmentation:
    """Val predictions at the resolution the network was trained for (segmentation.long_side) with the
    test-time scales, flip and CRF of segmentation.inference, resized to the images."""
    input:
        data=DATASET,
        # a network another run trained with the same settings is read from that run's folder
        model=upstream_path("predictions"),
    output:
        directory(step_output("predictions", "predictions")),
    params:
        settings=step_params("predictions"),
    log:
        "logs/{expdir}predict_segmentation/{supervision}.log",
    benchmark:
        step_benchmark("predictions", "predict_segmentation")
    conda:
        "../envs/wsss.yaml"
    threads: config["threads"]["infer"]
    resources:
        mem_mb=2000,
    script:
        "../../scripts/predict_segmentation.py"


rule segment_photos:
    """One shard of the photos of segment.images (any size, .jpg/.jpeg/.png) segmented by the run's network on
    pseudo-labels with its test-time inference (segmentation.long_side, .inference): a palette label map at
    each photo's size (labels/) and the photo under its colours (overlays/)."""
    input:
        photos=segment_photos_folder,
        model=upstream_path("segment"),
    output:
        directory(step_output("segment")),
    params:
        settings=step_params("segment"),
        num_shards=config["shards"],
    log:
        "logs/{expdir}segment_photos/shard{shard}.log",
    benchmark:
        step_benchmark("segment", "segment_photos")
    conda:
        "../envs/wsss.yaml"
    threads: config["threads"]["infer"]
    resources:
        mem_mb=2000,
    script:
        "../../scripts/segment_photos.py"


rule segmented:
    """results/segmented: every segmented photo's label map (labels/) and overlay (overlays/), linked from the
    shards, and segments.parquet (image, class, class_id, pixels, fraction of the image)."""
    input:
        photos=segment_photos_folder,
        shards=lambda wc: GRID.step_outputs(run_name(wc), "segment"),
    output:
        directory(f"results/{{expdir}}{registry.SEGMENTED}"),
    params:
        classes=config["classes"],
    log:
        "logs/{expdir}segmented.log",
    conda:
        "../envs/wsss.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../../scripts/segmented.py"
