from wsss.runtime import setup
from wsss.scoring.tables import GridTableFiles, write_grid_tables

params = snakemake.params
setup(snakemake.log[0], snakemake.threads)
write_grid_tables(
    snakemake.input.miou,
    snakemake.input.summaries,
    params.jobs,
    params.folders,
    params.run_experiments,
    params.rank_by,
    GridTableFiles(**dict(snakemake.output.items())),
    unscored=params.unscored,
)
