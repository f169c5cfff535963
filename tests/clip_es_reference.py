"""CLIP-ES's computation (linyq2117/CLIP-ES: generate_cams_voc12.py, clip/model.py, pytorch_grad_cam, utils.py,
eval_cam_with_crf.py), written out independently of the project for the parity test (tests/unit/test_clip_es.py),
as CLIP-ES runs it on a CPU (clip.load makes the model float32 there): a functional ViT-B/16 and text
transformer over a CLIP state_dict (batch-first here, CLIP's LND there), the first 11 blocks once without
gradients and the last block once per class with them (its forward_last_layer); Grad-CAM as pytorch_grad_cam
computes it (activations and gradients at the last block's ln_1, reshape_transform, relu, scale_cam_image per
layer and again over the layers); scoremap2bbox with OpenCV's contours; the CAA loop as written; the CRF on
cv2.imread's BGR image minus the mean, cast straight to uint8 by numpy.

Shared with the project, not being CLIP-ES's computation: the BPE tokenizer (open_clip.tokenize, the same
vocabulary file as OpenAI's clip.tokenize).
"""

from __future__ import annotations

import cv2
import numpy as np
import pydensecrf.densecrf as dcrf
import pydensecrf.utils as crf_utils
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms import Compose, InterpolationMode, Normalize, Resize, ToTensor


def heads_of(width):
    return width // 64  # CLIP: 64-dimensional heads (ViT-B/16: 12 in the image tower, 8 in the text tower)


def layer_norm(x, sd, name):
    return F.layer_norm(x, (x.shape[-1],), sd[f"{name}.weight"], sd[f"{name}.bias"], eps=1e-5)


def attention(x, sd, name, heads, mask=None):
    """Multi-head self-attention of x (N, L, D): (output, weights averaged over heads (N, L, L))."""
    n, length, width = x.shape
    q, k, v = (x @ sd[f"{name}.in_proj_weight"].T + sd[f"{name}.in_proj_bias"]).chunk(3, dim=-1)
    q, k, v = (t.reshape(n, length, heads, width // heads).transpose(1, 2) for t in (q, k, v))
    scores = q @ k.transpose(-1, -2) / (width // heads) ** 0.5
    if mask is not None:
        scores = scores + mask
    weights = scores.softmax(-1)
    out = (weights @ v).transpose(1, 2).reshape(n, length, width)
    return out @ sd[f"{name}.out_proj.weight"].T + sd[f"{name}.out_proj.bias"], weights.mean(1)


def mlp(x, sd, name):
    hidden = x @ sd[f"{name}.c_fc.weight"].T + sd[f"{name}.c_fc.bias"]
    hidden = hidden * torch.sigmoid(1.702 * hidden)  # QuickGELU
    return hidden @ sd[f"{name}.c_proj.weight"].T + sd[f"{name}.c_proj.bias"]


def block(x, sd, name, mask=None, tap=None):
    """One residual attention block; tap(ln_1 output) may replace the ln_1 output (Grad-CAM's hook)."""
    normed = layer_norm(x, sd, f"{name}.ln_1")
    if tap is not None:
        normed = tap(normed)
    out, weights = attention(normed, sd, f"{name}.attn", heads_of(x.shape[-1]), mask)
    x = x + out
    return x + mlp(layer_norm(x, sd, f"{name}.ln_2"), sd, f"{name}.mlp"), weights


def upsample_pos_emb(emb, new_size):
    first, rest = emb[:1], emb[1:]
    size = int(np.sqrt(rest.shape[0]))
    rest = rest.permute(1, 0).reshape(1, -1, size, size)
    rest = F.interpolate(rest, size=new_size, mode="bilinear")
    rest = rest.reshape(emb.shape[1], -1).permute(1, 0)
    return torch.cat([first, rest], 0).half()


def encode_text(sd, tokens):
    x = sd["token_embedding.weight"][tokens] + sd["positional_embedding"]
    length = tokens.shape[1]
    mask = torch.full((length, length), float("-inf")).triu(1)
    for i in range(12):
        x, _ = block(x, sd, f"transformer.resblocks.{i}", mask)
    x = layer_norm(x, sd, "ln_final")
    return x[torch.arange(len(tokens)), tokens.argmax(-1)] @ sd["text_projection"]


def zeroshot_classifier(sd, classnames, template):
    import open_clip

    with torch.no_grad():
        out = []
        for name in classnames:
            emb = encode_text(sd, open_clip.tokenize([template.format(name)]))
            emb = emb / emb.norm(dim=-1, keepdim=True)
            emb = emb.mean(0)
            out.append(emb / emb.norm())
    return torch.stack(out)


def preprocess(path, height, width):
    h, w = int(np.ceil(height / 16) * 16), int(np.ceil(width / 16) * 16)
    transform = Compose(
        [
            Resize((h, w), interpolation=InterpolationMode.BICUBIC),
            lambda image: image.convert("RGB"),
            ToTensor(),
            Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
        ]
    )
    return transform(Image.open(path))


def scale_cam_image(cams, target_size=None):
    result = []
    for img in cams:
        img = img - np.min(img)
        img = img / (1e-7 + np.max(img))
        if target_size is not None:
            img = cv2.resize(img, target_size)
        result.append(img)
    return np.float32(result)


def scoremap2bbox(scoremap, threshold):
    height, width = scoremap.shape
    scoremap_image = np.expand_dims((scoremap * 255).astype(np.uint8), 2)
    _, thr = cv2.threshold(scoremap_image, int(threshold * np.max(scoremap_image)), 255, cv2.THRESH_BINARY)
    contours = cv2.findContours(thr, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
    if len(contours) == 0:
        return np.asarray([[0, 0, 0, 0]]), 1
    boxes = []
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        boxes.append([x, y, min(x + w, width - 1), min(y + h, height - 1)])
    return np.asarray(boxes), len(contours)


def clip_es_cams(sd, path, class_ids, fg_features, bg_features, box_threshold=0.4):
    """CLIP-ES's maps of one image for its classes (ids 1..; fg_features row id - 1): dict of "gradcam",
    "refined" (patch grid) and "attn_highres" (float16 at the image's size, what generate_cams saves)."""
    width, height = Image.open(path).size
    image = preprocess(path, height, width)[None]
    h, w = image.shape[-2:]
    with torch.no_grad():
        x = torch.nn.functional.conv2d(image, sd["visual.conv1.weight"], stride=16)
        x = x.reshape(1, x.shape[1], -1).permute(0, 2, 1)
        x = torch.cat([sd["visual.class_embedding"].expand(1, 1, -1), x], 1)
        x = x + upsample_pos_emb(sd["visual.positional_embedding"], (h // 16, w // 16)).float()
        x = layer_norm(x, sd, "visual.ln_pre")
        attn_weights = []
        for i in range(11):
            x, weights = block(x, sd, f"visual.transformer.resblocks.{i}")
            attn_weights.append(weights)
    texts = torch.cat([fg_features[[c - 1 for c in class_ids]], bg_features])
    gradcams, refined, highres = [], [], []
    for idx in range(len(class_ids)):
        kept = {}

        def tap(normed, kept=kept):
            normed = normed.detach().requires_grad_(True)
            kept["act"] = normed
            return normed

        with torch.enable_grad():
            y, attn_last = block(x, sd, "visual.transformer.resblocks.11", tap=tap)
            y = layer_norm(y, sd, "visual.ln_post")
            feature = y[:, 1:].mean(1) @ sd["visual.proj"]
            feature = feature / feature.norm(dim=1, keepdim=True)
            logits = (sd["logit_scale"].exp() * feature @ (texts / texts.norm(dim=1, keepdim=True)).T).softmax(-1)
            logits[0][idx].backward()
        act = kept["act"].detach()[:, 1:].reshape(1, h // 16, w // 16, -1).permute(0, 3, 1, 2).numpy()
        grad = kept["act"].grad[:, 1:].reshape(1, h // 16, w // 16, -1).permute(0, 3, 1, 2).numpy()
        weights = np.mean(grad, axis=(2, 3))
        cam = (weights[:, :, None, None] * act).sum(axis=1)
        cam = scale_cam_image(np.maximum(cam, 0).astype(np.float32))[:, None]
        cam = scale_cam_image(np.mean(np.maximum(cam, 0), axis=1))[0]
        gradcams.append(cam)
        if idx == 0:
            attn = torch.stack([a for a in [*attn_weights, attn_last.detach()]], 0)[-8:]
            attn = torch.mean(attn[:, :, 1:, 1:], 0)[0].float()
        box, cnt = scoremap2bbox(cam, box_threshold)
        aff_mask = torch.zeros(cam.shape)
        for i in range(cnt):
            x0, y0, x1, y1 = box[i]
            aff_mask[y0:y1, x0:x1] = 1
        aff_mask = aff_mask.view(1, -1)
        trans = attn / torch.sum(attn, dim=0, keepdim=True)
        trans = trans / torch.sum(trans, dim=1, keepdim=True)
        for _ in range(2):
            trans = trans / torch.sum(trans, dim=0, keepdim=True)
            trans = trans / torch.sum(trans, dim=1, keepdim=True)
        trans = (trans + trans.transpose(1, 0)) / 2
        trans = torch.matmul(trans, trans)
        trans = trans * aff_mask
        out = torch.matmul(trans, torch.FloatTensor(cam).view(-1, 1)).reshape(h // 16, w // 16).numpy()
        refined.append(out.astype(np.float32))
        highres.append(scale_cam_image([out.astype(np.float32)], (width, height))[0])
    return {
        "gradcam": np.stack(gradcams),
        "refined": np.stack(refined),
        "attn_highres": np.stack(highres).astype(np.float16),
    }


def clip_es_crf_label(path, cams, class_ids, confidence=0.95):
    """eval_cam_with_crf.py's label of one image from its saved float16 maps (keys: class ids - 1)."""
    image = cv2.imread(path, cv2.IMREAD_COLOR).astype(np.float32)
    image -= (104.008, 116.669, 122.675)
    image = image.transpose(2, 0, 1)
    bg_score = np.power(1 - np.max(cams, axis=0, keepdims=True), 1)
    prob = np.concatenate((bg_score, cams), axis=0)
    image = image.astype(np.uint8).transpose(1, 2, 0)
    C, H, W = prob.shape
    unary = np.ascontiguousarray(crf_utils.unary_from_softmax(prob))
    d = dcrf.DenseCRF2D(W, H, C)
    d.setUnaryEnergy(unary)
    d.addPairwiseGaussian(sxy=1, compat=3)
    d.addPairwiseBilateral(sxy=67, srgb=3, rgbim=np.ascontiguousarray(image), compat=4)
    q = np.array(d.inference(10)).reshape((C, H, W))
    label = np.argmax(q, axis=0)
    keys = np.pad(np.asarray(class_ids) - 1 + 1, (1, 0), mode="constant")
    label = keys[label]
    label[np.max(q, axis=0) < confidence] = 255
    return label.astype(np.uint8)
