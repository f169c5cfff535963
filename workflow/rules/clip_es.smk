rule clip_es:
    """CLIP-ES's training-free maps (cam.source: clip_es) for one shard of the train images: Grad-CAM of a frozen
    CLIP ViT-B/16 refined by its class-aware attention affinity; they are the merged CAMs the chain reads."""
    input:
        data=DATASET,
        labels=LABELS,
        weights=lambda wc: clip_weights(settings(wc)),
    output:
        directory(step_output("clip_es")),
    params:
        settings=step_params("clip_es"),  # clip_es, its CRF and confidence aside
        split=SPLITS["train"],
        num_shards=config["shards"],
        classes=config["classes"],
    log:
        "logs/{expdir}cams/clip_es/shard{shard}.log",
    benchmark:
        step_benchmark("clip_es", "clip_es")
    conda:
        "../envs/wsss.yaml"
    threads: config["threads"]["infer"]
    resources:
        mem_mb=4000,
    script:
        "../../scripts/clip_es.py"


rule clip_es_labels:
    """CLIP-ES's pseudo-labels (segmentation.labels: clip_es): dense CRF over its maps, 255 where the CRF is unsure."""
    input:
        data=DATASET,
        labels=LABELS,
        cams=upstream_path("clip_es_labels"),
    output:
        directory(step_output("clip_es_labels")),
    params:
        settings=step_params("clip_es_labels"),  # clip_es.crf and clip_es.confidence
        split=SPLITS["train"],
        num_shards=config["shards"],
    log:
        "logs/{expdir}clip_es_labels/shard{shard}.log",
    benchmark:
        step_benchmark("clip_es_labels", "clip_es_labels")
    conda:
        "../envs/wsss.yaml"
    threads: config["threads"]["crf"]
    resources:
        mem_mb=1000,
    script:
        "../../scripts/clip_es_labels.py"
