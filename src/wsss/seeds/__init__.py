"""From a classifier to pseudo-labels: CAM methods, adversarial erasing, CRF and pseudo-masks."""
