rule demo_dataset:
    output:
        directory(DATA_ROOT),
    params:
        demo=config["demo"],
        seed=config["seed"],
    log:
        "logs/demo_dataset.log",
    conda:
        "../envs/wsss.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../../scripts/demo_dataset.py"


rule image_labels:
    input:
        data=DATA_ROOT,
    output:
        LABELS,
    params:
        classes=config["classes"],
        splits=config["splits"],
    log:
        "logs/image_labels.log",
    conda:
        "../envs/wsss.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../../scripts/image_labels.py"
