"""The networks trained on seeds and images: the classifier (erasing rounds), IRN's boundary branch, the
segmentation network and its inference, and the one training loop they share."""
