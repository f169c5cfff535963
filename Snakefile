# Weakly-supervised semantic segmentation on PASCAL VOC layout data.
# Usage: snakemake --cores all   then   snakemake --report results/report.html   (see README.md)
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


wildcard_constraints:
    round=r"\d+",
    shard=r"\d+",
    supervision="pseudo_mask|ground_truth",


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/classifier.smk"
include: "workflow/rules/cam.smk"
include: "workflow/rules/crf.smk"
include: "workflow/rules/segmentation.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/stages.smk"


rule all:
    """The result tables, the report's figures and every per-shard artifact. Naming the artifacts here
    makes a plain `snakemake --cores all` restore a deleted one (and rerun only what depends on it): with an explicit
    target such as results/miou.parquet, Snakemake >= 7.7 ignores deleted intermediate files while the
    target is up to date (snakemake#1978)."""
    default_target: True
    input:
        "results/miou.parquet",
        REPORT_FIGURES,
        all_artifacts(),
