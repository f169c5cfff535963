"""The networks: backbones and their ImageNet weights, the classifier and its CAM expansions, the segmentation
networks, checkpoints, transforms, devices."""
