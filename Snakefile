# Weakly-supervised semantic segmentation on PASCAL VOC layout data.
# Usage: snakemake --cores all   then   snakemake --report results/report.html   (see README.md)
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"  # validates the config first


wildcard_constraints:
    round=r"\d+",
    shard=r"\d+",
    supervision="|".join(registry.SUPERVISIONS),


# Each experiment of a grid is a full config of its own: check it too, naming the experiment.
for name, experiment_config in GRID.configs.items() if GRID.is_grid else ():
    check_config(experiment_config, f"experiments.{GRID.experiment_of(name)}: ")


# {expdir}: the run's folder in results/ and logs/ ("" for a single run, "<run name>/" otherwise).
wildcard_constraints:
    expdir="(?:" + "|".join(re.escape(GRID.folder(name)) for name in RUNS) + ")",


include: "workflow/rules/data.smk"
include: "workflow/rules/classifier.smk"
include: "workflow/rules/cams.smk"
include: "workflow/rules/recam.smk"
include: "workflow/rules/clip_es.smk"
include: "workflow/rules/pseudo_masks.smk"
include: "workflow/rules/random_walk.smk"
include: "workflow/rules/segmentation.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
if not GRID.is_grid:  # DVC's stages (dvc.yaml) describe the single-experiment run

    include: "workflow/rules/dvc.smk"



rule all:
    """The result tables, the report's figures (the ranking and the stage plot over seeds, for a grid or a
    replicated run) and every per-shard artifact. Naming
    the artifacts here makes a plain `snakemake --cores all` restore a deleted one (and rerun only what depends
    on it): with an explicit target such as results/miou.parquet, Snakemake >= 7.7 ignores deleted
    intermediate files while the target is up to date (snakemake#1978)."""
    default_target: True
    input:
        "results/miou.parquet",
        GRID_FIGURES if GRID.is_grid else REPORT_FIGURES,
        all_artifacts(),
