"""What the images and labels are: the VOC tree, the dataset index, image labels, the demo data, downloads."""
