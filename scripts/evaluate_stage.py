from wsss.data.labels import load_labels
from wsss.data.voc import VOCTree
from wsss.runtime import setup
from wsss.scoring.evaluate import evaluate_stage

params = snakemake.params
setup(snakemake.log[0], snakemake.threads)
tree = VOCTree.open(snakemake.input.data)
evaluate_stage(
    params.kind,
    tree,
    tree.split_ids(params.split),
    snakemake.input.outputs,
    load_labels(snakemake.input.labels),
    params.thresholds,
    params.num_classes,
    snakemake.output[0],
)
