from wsss.runtime import setup
from wsss.scoring.segments import gather_segmented

setup(snakemake.log[0], snakemake.threads)
gather_segmented(snakemake.input.shards, snakemake.output[0], snakemake.params.classes)
