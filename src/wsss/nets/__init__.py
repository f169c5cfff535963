"""The networks and their training: backbones and their ImageNet weights, classifier, segmentation."""
