rule train_segmentation:
    """DeepLabV3 (or FCN) on the pseudo-masks, or on the ground truth for the fully-supervised bound."""
    input:
        data=DATASET,
        masks=segmentation_masks,
        weights=pretrained_weights(config["segmentation"]),
    output:
        model="results/segmentation/{supervision}/model.pt",
        history="results/segmentation/{supervision}/history.parquet",
    params:
        settings=config["segmentation"],
        split=SPLITS["train"],
        num_classes=len(config["classes"]),
        seed=config["seed"],
    log:
        "logs/train_segmentation/{supervision}.log",
    conda:
        "../envs/wsss.yaml"
    threads: config["threads"]["train"]
    resources:
        mem_mb=4000,
    script:
        "../../scripts/train_segmentation.py"


rule predict_segmentation:
    input:
        data=DATASET,
        model="results/segmentation/{supervision}/model.pt",
    output:
        directory("results/segmentation/{supervision}/predictions"),
    params:
        split=config["splits"]["val"],
    log:
        "logs/predict_segmentation/{supervision}.log",
    conda:
        "../envs/wsss.yaml"
    threads: config["threads"]["infer"]
    resources:
        mem_mb=2000,
    script:
        "../../scripts/predict_segmentation.py"
