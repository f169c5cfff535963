from wsss.data.datasets import Dataset
from wsss.data.labels import load_labels
from wsss.runtime import setup
from wsss.scoring.evaluate import image_scores_table

setup(snakemake.log[0], snakemake.threads)
specs = {}
for stage, spec in snakemake.params.stages.items():
    inputs = getattr(snakemake.input, stage)
    specs[stage] = dict(spec, inputs=[inputs] if isinstance(inputs, str) else list(inputs))
table = image_scores_table(
    Dataset.open(snakemake.input.data), specs, load_labels(snakemake.input.labels), snakemake.params.num_classes
)
table.to_parquet(snakemake.output[0], index=False)
