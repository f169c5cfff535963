rule train_classifier:
    """Round r: a fresh classifier on the train images with every earlier round's mined regions erased."""
    input:
        data=DATASET,
        labels=LABELS,
        earlier_cams=earlier_cam_shards,
        weights=pretrained_weights(config["classifier"]),
    output:
        model="results/classifier/r{round}/model.pt",
        history="results/classifier/r{round}/history.parquet",
    params:
        settings=config["classifier"],
        erasing_threshold=config["erasing"]["threshold"],
        split=SPLITS["train"],
        num_classes=len(config["classes"]),
        seed=config["seed"],
    log:
        "logs/train_classifier/r{round}.log",
    conda:
        "../envs/wsss.yaml"
    threads: config["threads"]["train"]
    resources:
        mem_mb=4000,
    script:
        "../../scripts/train_classifier.py"
