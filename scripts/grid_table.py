from wsss.results import write_grid_tables
from wsss.runtime import setup

params = snakemake.params
setup(snakemake.log[0], snakemake.threads)
write_grid_tables(
    snakemake.input.miou, snakemake.input.summaries, params.jobs, params.folders, params.rank_by,
    snakemake.output.miou, snakemake.output.summary, snakemake.output.ranking, snakemake.output.text,
)
