"""OpenAI's CLIP ViT-B/16 for CLIP-ES (Lin et al., CVPR 2023), built by open_clip, with CLIP-ES's changes to the
image tower made by hooks on the stock modules rather than by a fork:

- the positional embedding is interpolated (bilinear) to each image's patch grid: the tower is called through
  ``torch.func.functional_call`` with that one parameter substituted;
- the patch tokens' mean (after ln_post, before the projection) is the image feature, not the class token:
  open_clip's own ``pool_type = "avg"``;
- the attention weights (averaged over heads) of every block are kept: a forward pre-hook asks each block's
  ``nn.MultiheadAttention`` for them (``need_weights=True``) and a forward hook records them;
- the last block's ln_1 output is recorded, detached, and made a leaf that requires grad: Grad-CAM's activations,
  whose gradients need a backward pass through the last block only.

The weights: OpenAI's ViT-B-16.pt is a TorchScript archive (a zip with data.pkl, code/ and the tensors). Neither
torch.jit.load (TorchScript deserialisation: it compiles and runs the archive's code) nor a plain unpickler is
used: ``read_clip_weights`` reads data.pkl with an unpickler that resolves only tensor rebuilding, storage types,
OrderedDict and TorchScript's own list/type-tag helpers, and stands an inert record in for every ``__torch__``
class, so no code of the file runs; the tensors come from the archive's data/ members.
"""

from __future__ import annotations

import logging
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from wsss.data.download import file_digest
from wsss.nets.clip_file import CLIP_VIT_B16_SHA256 as CLIP_VIT_B16_SHA256

CLIP_MODEL = "ViT-B-16"
PATCH = 16
# CLIP's image normalisation (OpenAI)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class WeightsError(ValueError):
    """A weights file that is not there, not the expected file, or not readable as CLIP's weights."""


_STORAGE_DTYPES = {
    "HalfStorage": torch.float16,
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


class _ScriptRecord:
    """What a TorchScript class (``__torch__.*``) unpickles to here: its pickled state, nothing run."""

    def __init__(self, *args):
        self.state = None

    def __setstate__(self, state):
        self.state = state


def _rebuild_tensor(storage, offset, size, stride, *rest):
    return torch.as_strided(storage, size, stride, offset).clone()


def _rebuild_parameter(data, *rest):
    return data


def _first(value, *rest):
    return value


class _ArchiveUnpickler(pickle.Unpickler):
    """Unpickles a TorchScript archive's data.pkl resolving only the names in find_class (else an error)."""

    def __init__(self, handle, archive: zipfile.ZipFile, prefix: str):
        super().__init__(handle)
        self.archive, self.prefix = archive, prefix

    def find_class(self, module, name):
        if module == "__torch__" or module.startswith("__torch__."):
            return type(name, (_ScriptRecord,), {})
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        allowed = {
            ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
            ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
            ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
            ("collections", "OrderedDict"): OrderedDict,
            ("torch.jit._pickle", "restore_type_tag"): _first,
            ("torch.jit._pickle", "build_intlist"): _first,
            ("torch.jit._pickle", "build_doublelist"): _first,
            ("torch.jit._pickle", "build_boollist"): _first,
            ("torch.jit._pickle", "build_tensorlist"): _first,
        }
        if (module, name) not in allowed:
            raise WeightsError(f"refusing to load {module}.{name} from a weights archive")
        return allowed[(module, name)]

    def persistent_load(self, pid):
        kind, dtype, key, _location, numel = pid
        if kind != "storage" or not isinstance(dtype, torch.dtype):
            raise WeightsError(f"unexpected persistent id {pid!r} in a weights archive")
        data = bytearray(self.archive.read(f"{self.prefix}data/{key}"))
        return torch.frombuffer(data, dtype=dtype)[:numel] if data else torch.empty(0, dtype=dtype)


def _flatten(record, prefix="") -> dict[str, torch.Tensor]:
    state = record.state if isinstance(record, _ScriptRecord) else record
    tensors = {}
    if isinstance(state, dict):
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}{key}"] = value
            elif isinstance(value, (_ScriptRecord, dict)):
                tensors.update(_flatten(value, f"{prefix}{key}."))
    return tensors


def _torchscript_prefix(archive: zipfile.ZipFile) -> str | None:
    """The archive's folder when it is a TorchScript archive (data.pkl beside constants.pkl), else None."""
    names = set(archive.namelist())
    for name in names:
        if name.endswith("data.pkl"):
            prefix = name[: -len("data.pkl")]
            if f"{prefix}constants.pkl" in names:
                return prefix
    return None


def read_torchscript_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a TorchScript archive's modules by its dotted name (its state_dict), read without running
    any of the archive's code (see the module's docstring)."""
    with zipfile.ZipFile(path) as archive:
        prefix = _torchscript_prefix(archive)
        if prefix is None:
            raise WeightsError(f"{path} is not a TorchScript archive")
        with archive.open(f"{prefix}data.pkl") as handle:
            return _flatten(_ArchiveUnpickler(handle, archive, prefix).load())


def read_clip_weights(path, sha256: str | None = None) -> dict[str, torch.Tensor]:
    """CLIP's state_dict from a local file, checked against sha256 when given: OpenAI's TorchScript archive, or a
    plain state_dict saved by torch.save (read with torch.load(weights_only=True))."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"CLIP weights file {path} does not exist (clip_es.weights)")
    if sha256 is not None:
        digest = file_digest(path, "sha256")
        if digest != sha256:
            raise WeightsError(f"CLIP weights file {path} has sha256 {digest}, expected {sha256} (clip_es.weights)")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            scripted = _torchscript_prefix(archive) is not None
        if scripted:
            return read_torchscript_tensors(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - the file's problem, said with its name
        raise WeightsError(f"CLIP weights file {path} is not readable as weights: {error}") from error
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"CLIP weights file {path} holds no state_dict of tensors")
    return state


def clip_model(state_dict: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """open_clip's ViT-B/16 as OpenAI trained it (QuickGELU), float32, in eval mode, with the given weights (every
    key of the model required; extra keys of OpenAI's file such as input_resolution ignored), or open_clip's
    random initialisation (seeded by torch's global generator) without them."""
    import open_clip

    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)  # open_clip's "initialized randomly": the weights follow here
    try:
        model = open_clip.create_model(CLIP_MODEL, pretrained=None, force_quick_gelu=True)
    finally:
        logging.disable(previous)
    if state_dict is not None:
        expected = model.state_dict()
        missing = [key for key in expected if key not in state_dict and key != "attn_mask"]
        if missing:
            raise WeightsError(f"CLIP weights lack {len(missing)} tensors of ViT-B/16, e.g. {missing[:3]}")
        wrong = [k for k in expected if k in state_dict and state_dict[k].shape != expected[k].shape]
        if wrong:
            raise WeightsError(f"CLIP weights do not fit ViT-B/16: {wrong[:3]} have other shapes")
        model.load_state_dict({k: state_dict[k].float() for k in expected if k in state_dict}, strict=False)
    model.visual.pool_type = "avg"  # CLIP-ES: the patch tokens' mean, not the class token
    return model.float().eval().requires_grad_(False)


def tokenize(texts: list[str]) -> torch.Tensor:
    import open_clip

    return open_clip.tokenize(texts)


def interpolated_positions(embedding: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """The class token's position, then the patch positions resized (bilinear) to grid (rows, cols), as
    CLIP-ES's upsample_pos_emb, with its rounding to float16 (it makes a half-precision parameter of them)."""
    size = int(round((embedding.shape[0] - 1) ** 0.5))
    patches = embedding[1:].T.reshape(1, -1, size, size)
    patches = F.interpolate(patches, size=grid, mode="bilinear", align_corners=False)
    return torch.cat([embedding[:1], patches.reshape(embedding.shape[1], -1).T]).half().float()


class ClipTaps:
    """Hooks on a CLIP model's image tower that record every block's head-averaged attention weights and the
    last block's ln_1 output (a leaf requiring grad: Grad-CAM's activations). A context manager."""

    def __init__(self, model: nn.Module):
        self.model, self.attentions, self.activation, self.handles = model, [], None, []

    def __enter__(self) -> ClipTaps:
        blocks = self.model.visual.transformer.resblocks
        for block in blocks:
            self.handles.append(block.attn.register_forward_pre_hook(self._want_weights, with_kwargs=True))
            self.handles.append(block.attn.register_forward_hook(self._keep_weights))
        self.handles.append(blocks[-1].ln_1.register_forward_hook(self._keep_activation))
        return self

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()
        self.handles = []

    @staticmethod
    def _want_weights(module, args, kwargs):
        return args, {**kwargs, "need_weights": True, "average_attn_weights": True}

    def _keep_weights(self, module, args, output):
        self.attentions.append(output[1].detach())

    def _keep_activation(self, module, args, output):
        self.activation = output.detach().requires_grad_(True)
        return self.activation


def encode_image(model: nn.Module, image: torch.Tensor) -> tuple[torch.Tensor, ClipTaps]:
    """CLIP-ES's image feature of one normalised image (1, 3, H, W), H and W multiples of 16: (1, D), not
    normalised, differentiable with respect to taps.activation; and the taps (attention weights of every block)."""
    visual = model.visual
    grid = (image.shape[-2] // PATCH, image.shape[-1] // PATCH)
    positions = interpolated_positions(visual.positional_embedding.detach(), grid)
    with ClipTaps(model) as taps, torch.enable_grad():
        feature = torch.func.functional_call(visual, {"positional_embedding": positions}, (image,))
    return feature, taps


def encode_texts(model: nn.Module, texts: list[str]) -> torch.Tensor:
    """CLIP's text features of texts, each L2-normalised: (len(texts), D)."""
    with torch.no_grad():
        features = model.encode_text(tokenize(texts).to(model.logit_scale.device)).float()
    return features / features.norm(dim=-1, keepdim=True)
