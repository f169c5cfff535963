"""What the images and labels are: the dataset kinds (VOC, COCO, tagged photos) and the index every step
reads, image labels, the demo data, downloads."""
