"""ReCAM's training step and re-activated maps written out independently of the wsss package
(zhaozhengChen/ReCAM: net/resnet50_cam.py Net_CAM_Feature, Class_Predictor and CAM.forward2,
step/train_recam.py, step/make_recam.py, misc/torchutils.py PolyOptimizer), for the parity tests. Only the
networks' modules (their weights) come from the project; every computation around them is ReCAM's."""

from types import SimpleNamespace

import torch
import torch.nn.functional as F

from tests import irn_reference as irn


def net_cam_feature(model, x):
    """Net_CAM_Feature.forward: (logits, cams_feature (N, K, C), normalised cams)."""
    feature = model.features(x)
    logits = F.conv2d(feature.mean((2, 3), keepdim=True), model.classifier.weight).view(x.shape[0], -1)
    cams = F.relu(F.conv2d(feature, model.classifier.weight))
    cams = cams / (F.adaptive_max_pool2d(cams, (1, 1)) + 1e-5)
    cams_feature = cams.unsqueeze(2) * feature.unsqueeze(1)  # N x K x C x h x w
    cams_feature = cams_feature.view(cams_feature.size(0), cams_feature.size(1), cams_feature.size(2), -1)
    return logits, torch.mean(cams_feature, -1), cams


def class_predictor(weight, x, label):
    """Class_Predictor.forward with its 1x1 conv weight (K, C, 1, 1): (loss, accuracy)."""
    batch_size, num_classes = x.shape[0], weight.shape[0]
    x = x.reshape(batch_size, num_classes, -1)
    mask = label > 0
    feature_list = [x[i][mask[i]] for i in range(batch_size)]
    prediction = [F.conv2d(y.unsqueeze(-1).unsqueeze(-1), weight).squeeze(-1).squeeze(-1) for y in feature_list]
    labels = [torch.nonzero(label[i]).squeeze(1) for i in range(label.shape[0])]
    loss, acc, num = 0, 0, 0
    for logit, target in zip(prediction, labels):
        if target.shape[0] == 0:
            continue
        loss += F.cross_entropy(logit, target)
        acc += (logit.argmax(dim=1) == target.view(-1)).sum().float()
        num += target.size(0)
    return loss / batch_size, acc / num


def train_step(model, predictor_weight, img, label, loss_weight, lr, weight_decay, momentum, max_step):
    """One step of train_recam.py (global step 0) on model (a project Classifier, its backbone in eval mode:
    IRN's FixedBatchNorm) and the predictor's weight, in place: returns (loss, loss_cls, loss_ce).

    Net.train freezes conv1 and bn1 (requires_grad False); param groups: backbone and the CAM head at 0.1 x lr,
    the predictor at lr, each with weight_decay; PolyOptimizer is SGD(params, lr, weight_decay), i.e. SGD's
    momentum is the third positional argument given (momentum here), and lr x (1 - step/max_step)^0.9."""
    model.eval()
    for module in model.features.stem[:2]:  # conv1, bn1
        module.requires_grad_(False)
    backbone = list(model.features.parameters())
    groups = [
        {"params": backbone, "lr": 0.1 * lr, "weight_decay": weight_decay},
        {"params": [model.classifier.weight], "lr": 0.1 * lr, "weight_decay": weight_decay},
        {"params": [predictor_weight], "lr": lr, "weight_decay": weight_decay},
    ]
    optimizer = torch.optim.SGD(groups, lr, momentum)
    initial = [g["lr"] for g in optimizer.param_groups]
    lr_mult = (1 - 0 / max_step) ** 0.9
    for group, start in zip(optimizer.param_groups, initial):
        group["lr"] = start * lr_mult
    x, cam, _ = net_cam_feature(model, img)
    loss_cls = F.multilabel_soft_margin_loss(x, label)
    loss_ce, _ = class_predictor(predictor_weight, cam, label)
    loss = loss_cls + loss_weight * loss_ce
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item(), loss_cls.item(), loss_ce.item()


def make_recam(model, predictor_weight, image, class_ids, scales, stride=16):
    """make_recam.py: IRN's make_cam (tests/irn_reference.py) with CAM.forward2's weight, the predictor's
    times the CAM head's: relu(conv2d(x, W_recam * W_cls)) summed with the flip, over scales, max-normalised."""
    head = SimpleNamespace(weight=predictor_weight * model.classifier.weight)
    return irn.make_cam(SimpleNamespace(features=model.features, classifier=head), image, class_ids, scales, stride)
