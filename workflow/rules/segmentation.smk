rule train_segmentation:
    """The segmentation network (segmentation.arch) on the pseudo-labels of segmentation.labels
    (segmentation/pseudo_mask/ or segmentation/random_walk/), or on the ground truth for the fully-supervised
    bound (segmentation/ground_truth/)."""
    input:
        data=DATASET,
        masks=upstream("segmentation"),
        weights=lambda wc: pretrained_weights(settings(wc)["segmentation"]),
    output:
        model=step_output("segmentation", "model.pt"),
        history=step_output("segmentation", "history.parquet"),
    params:
        settings=step_params("segmentation"),
        split=SPLITS["train"],
        num_classes=len(config["classes"]),
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
