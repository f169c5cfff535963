# Weakly-supervised semantic segmentation on PASCAL VOC layout data.
# Usage: snakemake --cores all results/miou.parquet   (see README.md)
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/classifier.smk"
include: "workflow/rules/cam.smk"
include: "workflow/rules/crf.smk"
include: "workflow/rules/segmentation.smk"
include: "workflow/rules/evaluate.smk"


rule all:
    default_target: True
    input:
        "results/miou.parquet",


onsuccess:
    print_summary()
