from wsss.runtime import device, setup
from wsss.segmentation import load_segmentation, predict_images
from wsss.voc import VOCTree

setup(snakemake.log[0], snakemake.threads)
tree = VOCTree.open(snakemake.input.data)
predict_images(
    load_segmentation(snakemake.input.model), tree, tree.split_ids(snakemake.params.split), snakemake.output[0], device()
)
