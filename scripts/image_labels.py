from wsss.data.labels import image_labels
from wsss.data.voc import VOCTree
from wsss.runtime import setup

setup(snakemake.log[0], snakemake.threads)
tree = VOCTree.open(snakemake.input.data)
image_ids = sorted({i for split in snakemake.params.splits for i in tree.split_ids(split)})
image_labels(tree, image_ids, len(snakemake.params.classes)).to_parquet(snakemake.output[0], index=False)
