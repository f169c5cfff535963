rule crf:
    """Merged CAM -> background threshold (cam.eval_threshold) -> dense CRF: a full label map per image."""
    input:
        data=DATASET,
        labels=LABELS,
        cams=upstream_path("crf"),
    output:
        directory(step_output("crf")),
    params:
        settings=step_params("crf"),  # crf and cam.eval_threshold
        split=SPLITS["train"],
        num_shards=config["shards"],
    log:
        "logs/{expdir}crf/shard{shard}.log",
    benchmark:
        step_benchmark("crf", "crf")
    conda:
        "../envs/wsss.yaml"
    threads: config["threads"]["crf"]
    resources:
        mem_mb=1000,
    script:
        "../../scripts/crf.py"


rule saliency:
    """A saliency map per train image by an OpenCV static saliency method (saliency.source), the pseudo-masks'
    background cue: planned only for a run that uses saliency computed rather than read from a folder."""
    input:
        data=DATASET,
    output:
        directory(step_output("saliency")),
    params:
        settings=step_params("saliency"),  # saliency.source
        split=SPLITS["train"],
        num_shards=config["shards"],
    log:
        "logs/{expdir}saliency/shard{shard}.log",
    benchmark:
        step_benchmark("saliency", "saliency")
    conda:
        "../envs/wsss.yaml"
    threads: config["threads"]["crf"]
    resources:
        mem_mb=1000,
    script:
        "../../scripts/saliency.py"


rule pseudo_masks:
    """IRN-style confident pseudo-masks: CRF at the fg and bg thresholds, 255 where neither is confident; with
    pseudo_mask.saliency_threshold, background where the saliency map is low instead of the CRF at bg."""
    input:
        data=DATASET,
        labels=LABELS,
        cams=upstream_path("pseudo_masks", only="merged_cams"),
        saliency=saliency_maps("pseudo_masks"),
    output:
        directory(step_output("pseudo_masks")),
    params:
        settings=step_params("pseudo_masks"),  # crf, pseudo_mask and, with it, saliency.source
        split=SPLITS["train"],
        num_shards=config["shards"],
    log:
        "logs/{expdir}pseudo_masks/shard{shard}.log",
    benchmark:
        step_benchmark("pseudo_masks", "pseudo_masks")
    conda:
        "../envs/wsss.yaml"
    threads: config["threads"]["crf"]
    resources:
        mem_mb=1000,
    script:
        "../../scripts/pseudo_masks.py"
