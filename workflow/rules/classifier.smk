rule train_classifier:
    """Round r: a fresh classifier on the train images with every earlier round's mined regions erased."""
    input:
        data=DATASET,
        labels=LABELS,
        earlier_cams=upstream("classifier"),
        weights=lambda wc: pretrained_weights(settings(wc)["classifier"]),
    output:
        model=step_output("classifier", "model.pt"),
        history=step_output("classifier", "history.parquet"),
    params:
        # seed, classifier (an expansion method's sub-section only when it is classifier.method) and, from
        # round 1 on, the erasing threshold
        settings=step_params("classifier"),
        split=SPLITS["train"],
        num_classes=len(config["classes"]),
        classes=config["classes"],  # classifier.head_init: imagenet maps them to ImageNet's classes
    log:
        "logs/{expdir}train_classifier/r{round}.log",
    benchmark:
        step_benchmark("classifier", "train_classifier")
    conda:
        "../envs/wsss.yaml"
    threads: config["threads"]["train"]
    resources:
        mem_mb=4000,
    script:
        "../../scripts/train_classifier.py"
