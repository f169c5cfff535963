from wsss.runtime import setup
from wsss.scoring.evaluate import load_scores
from wsss.scoring.figures import confusion_figure, save_figure

setup(snakemake.log[0], snakemake.threads)
title = f"segmentation network on {snakemake.params.split}: rows = ground truth, normalised"
figure = confusion_figure(load_scores(snakemake.input[0])["confusion"], snakemake.params.classes, title)
save_figure(figure, snakemake.output[0])
