from wsss.runtime import setup
from wsss.scoring.tables import write_tables

setup(snakemake.log[0], snakemake.threads)
write_tables(
    list(zip(snakemake.params.stages, snakemake.params.splits, snakemake.input)),
    snakemake.params.classes,
    snakemake.output.miou,
    snakemake.output.summary,
    snakemake.output.text,
    metrics_path=snakemake.output.metrics,
    plots_path=snakemake.output.per_class,
    experiment=snakemake.params.experiment,
    seed=snakemake.params.seed,
    notes=snakemake.params.notes,
    unscored=snakemake.params.unscored,
)
