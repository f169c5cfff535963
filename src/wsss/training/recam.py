"""ReCAM (Chen et al., CVPR 2022, "Class Re-Activation Maps for Weakly-Supervised Semantic Segmentation").

A trained CAM classifier is fine-tuned further with a second, bias-free linear classifier (the class predictor)
on CAM-weighted features: for every class k an image is labelled with, the feature vector

    f_k = mean over pixels p of  (relu(CAM_k(p)) / (max_p relu(CAM_k) + 1e-5)) * features(p)

is classified by a softmax over all the classes, with target k. That cross-entropy, averaged over an image's
labelled classes, summed over the batch and divided by the batch size, is added to the multi-label soft-margin
loss with weight loss_weight (VOC 1.0, COCO 0.1). Gradients reach the backbone and the CAM head through the
maps and the features (nothing is detached). The re-activated maps are then the classifier's CAMs with its head
W_cls replaced by the element-wise product W_recam * W_cls (ReCAM's make_recam, CAM.forward2), computed as
the classifier's CAMs are (scales, flip, max-normalisation: wsss.seeds.cam), so the step saves the classifier
with that head folded in and the CAM code reads it unchanged.

Training as ReCAM's step/train_recam.py: the backbone and the CAM head at lr x backbone_lr_mult (0.1), the
class predictor at lr; SGD with poly decay; the stem (conv1, bn1) frozen and every BatchNorm in eval mode
(IRN's FixedBatchNorm, whose affine weights still train), stages 1-4 all train (no detach, unlike IRN's CAM
training).
"""

from __future__ import annotations

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from wsss.nets.checkpoints import load_checkpoint, save_model
from wsss.nets.models import Classifier
from wsss.training.classifier import load_classifier, trainable_ids
from wsss.training.datasets import ClassificationDataset, TrainingImages
from wsss.training.loop import TrainingJob, discard_checkpoint, fit, make_loader

EPS = 1e-5  # ReCAM's (and IRN's) max-normalisation epsilon


def cam_weighted_features(maps: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """(N, K, C): per class k the spatial mean of the max-normalised ReLU'd map k times the features.

    maps: (N, K, h, w) CAM head outputs before ReLU; features: (N, C, h, w). Computed as one batched matrix
    product (not the (N, K, C, h, w) broadcast): the same sum, without its memory."""
    cams = F.relu(maps)
    cams = cams / (F.adaptive_max_pool2d(cams, 1) + EPS)
    n, k = cams.shape[:2]
    pixels = cams.shape[2] * cams.shape[3]
    return (
        torch.bmm(cams.reshape(n, k, pixels), features.reshape(n, features.shape[1], pixels).transpose(1, 2)) / pixels
    )


def recam_cross_entropy(predictor: nn.Linear, weighted: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """ReCAM's class-predictor loss: softmax cross-entropy of predictor(f_k) with target k over each image's
    labelled classes (targets > 0), the mean per image, summed over the batch, divided by the batch size
    (images without a label add nothing but still count)."""
    total = weighted.new_zeros(())
    for features, present in zip(weighted, targets > 0):
        classes = present.nonzero().flatten()
        if len(classes):
            total = total + F.cross_entropy(predictor(features[classes]).float(), classes)
    return total / len(weighted)


class ReCAMNet(nn.Module):
    """A trained classifier plus ReCAM's class predictor; forward -> {"logits", "weighted"}."""

    def __init__(self, classifier: Classifier, loss_weight: float):
        super().__init__()
        if classifier.method != "cam":
            raise ValueError(
                f"ReCAM re-activates a classic CAM classifier, not classifier.method {classifier.method!r}"
            )
        self.classifier = classifier
        channels, num_classes = classifier.classifier.in_channels, classifier.classifier.out_channels
        self.predictor = nn.Linear(channels, num_classes, bias=False)  # Class_Predictor's bias-free 1x1 conv
        self.loss_weight = loss_weight

    def forward(self, x: torch.Tensor) -> dict:
        features = self.classifier.features(x)
        maps = self.classifier.classifier(features)
        return {"logits": self.classifier.logits(features), "weighted": cam_weighted_features(maps, features)}

    def loss(self, outputs: dict, targets: torch.Tensor) -> torch.Tensor:
        return self.loss_parts(outputs, targets)[0]

    def loss_parts(self, outputs: dict, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(total, multi-label soft margin, class-predictor cross-entropy)."""
        cls = F.multilabel_soft_margin_loss(outputs["logits"].float(), targets)
        ce = recam_cross_entropy(self.predictor, outputs["weighted"], targets)
        return cls + self.loss_weight * ce, cls, ce

    def param_groups(self, backbone_lr_mult: float) -> list[tuple[list, float]]:
        """ReCAM's groups: the backbone's trainable parameters and the CAM head at lr x backbone_lr_mult, the
        class predictor at lr."""
        backbone = [p for p in self.classifier.parameters() if p.requires_grad]
        return [(backbone, backbone_lr_mult), (list(self.predictor.parameters()), 1.0)]

    def folded(self) -> Classifier:
        """The classifier with head W_recam * W_cls: its CAMs are ReCAM's re-activated maps."""
        with torch.no_grad():
            self.classifier.classifier.weight.mul_(self.predictor.weight[:, :, None, None])
        return self.classifier


def prepare(classifier: Classifier) -> Classifier:
    """ReCAM's trainable parts: the stem frozen, every BatchNorm in eval mode, everything else trains."""
    classifier.requires_grad_(True)
    classifier.features.freeze(0, frozen_bn=True)
    return classifier


def train_recam(classifier_path, images: TrainingImages, settings: dict, classifier_settings: dict, job: TrainingJob):
    """Fine-tune the saved classifier at classifier_path (the round-0 classifier) with ReCAM's class predictor
    on images (settings: the recam section; the crops are the classifier's: classifier_settings' resize_long,
    crop_size, num_workers); writes the classifier with the folded head to job.model_path (a classifier
    checkpoint with meta recam: true, read by wsss.training.classifier.load_classifier) and the per-epoch
    history to job.history_path, and returns the history."""
    meta = load_checkpoint(classifier_path)["meta"]
    classifier = load_classifier(classifier_path)
    torch.manual_seed(job.seed)
    dataset = ClassificationDataset(
        images.dataset,
        trainable_ids(images.image_ids, images.targets),
        images.targets,
        images.num_classes - 1,
        classifier_settings["resize_long"],
        classifier_settings["crop_size"],
    )
    net = ReCAMNet(prepare(classifier), settings["loss_weight"])
    cuda = torch.device(job.device).type == "cuda"
    loader = make_loader(dataset, settings["batch_size"], classifier_settings["num_workers"], job.seed, cuda)
    history = fit(net, loader, net.loss, net.param_groups(settings["backbone_lr_mult"]), settings, job, "recam")
    save_model(job.model_path, net.cpu().folded(), **{**meta, "recam": True})
    frame = pd.DataFrame(history)
    frame.to_parquet(job.history_path, index=False)
    discard_checkpoint(job.checkpoint_path)
    return frame
