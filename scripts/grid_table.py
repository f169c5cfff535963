from wsss.runtime import setup
from wsss.scoring.tables import write_grid_tables

params = snakemake.params
setup(snakemake.log[0], snakemake.threads)
output = snakemake.output
write_grid_tables(
    snakemake.input.miou,
    snakemake.input.summaries,
    params.jobs,
    params.folders,
    params.run_experiments,
    params.rank_by,
    output.miou,
    output.summary,
    output.summary_text,
    output.ranking,
    output.text,
)
