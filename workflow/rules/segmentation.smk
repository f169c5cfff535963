rule train_segmentation:
    """DeepLabV3 (or FCN) on the pseudo-masks, or on the ground truth for the fully-supervised bound."""
    input:
        data=DATASET,
        masks=upstream("segmentation"),
        weights=lambda wc: pretrained_weights(settings(wc)["segmentation"]),
    output:
        model=step_output("segmentation", "model.pt"),
        history=step_output("segmentation", "history.parquet"),
    params:
        # long_side only decides the predictions: changing it re-predicts and does not retrain; the network on
        # ground truth does not read labels (registry.own_settings)
        settings=lambda wc: {
            k: v
            for k, v in registry.own_settings(settings(wc), "segmentation", wc.supervision)["segmentation"].items()
            if k != "long_side"
        },
        split=SPLITS["train"],
        num_classes=len(config["classes"]),
        seed=lambda wc: settings(wc)["seed"],
    log:
        "logs/{expdir}train_segmentation/{supervision}.log",
    benchmark:
        step_benchmark("segmentation", "train_segmentation")
    conda:
        "../envs/wsss.yaml"
    threads: config["threads"]["train"]
    resources:
        mem_mb=4000,
    script:
        "../../scripts/train_segmentation.py"


rule predict_segmentation:
    """Val predictions at the resolution the network was trained for (segmentation.long_side), resized to the images."""
    input:
        data=DATASET,
        model=step_output("segmentation", "model.pt"),
    output:
        directory(step_output("segmentation", "predictions")),
    params:
        split=config["splits"]["val"],
        long_side=lambda wc: settings(wc)["segmentation"]["long_side"],
    log:
        "logs/{expdir}predict_segmentation/{supervision}.log",
    benchmark:
        step_benchmark("segmentation", "predict_segmentation")
    conda:
        "../envs/wsss.yaml"
    threads: config["threads"]["infer"]
    resources:
        mem_mb=2000,
    script:
        "../../scripts/predict_segmentation.py"
