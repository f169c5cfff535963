"""Config mistakes said in words, before the schema's own messages: keys that were renamed, the
combinations the schema's if/then rules rule out, within a section (e.g. U-Net's output stride) or across
sections (e.g. random-walk labels without the walk), which jsonschema would report as a bare "32 was
expected", a dataset kind's keys (wsss.data.kinds: the ones it needs, and another kind's set by mistake), and
the comparisons JSON Schema cannot make (segmentation.inference.tile's overlap < size)."""

from __future__ import annotations

from wsss.data.kinds import DATASET_KEYS, KINDS
from wsss.pipeline.registry import SALIENCY_METHODS

# (section, old key) -> its new name: one word per meaning (`backbone` in every section, `arch` for the
# segmentation network only)
RENAMED = {("classifier", "arch"): "backbone", ("irn", "arch"): "backbone"}


_MISSING = object()


def _allowed(rule: dict) -> list:
    return rule["enum"] if "enum" in rule else [rule["const"]]


def _leaves(condition: dict, prefix: tuple = ()) -> list[tuple[tuple, dict]]:
    """(key path, rule) of every enum or const a schema condition sets, its nested properties followed."""
    found = []
    for key, rule in condition.get("properties", {}).items():
        path = (*prefix, key)
        found += [(path, rule)] if "enum" in rule or "const" in rule else _leaves(rule, path)
    return found


def _value(config: dict, path: tuple):
    for key in path:
        if not isinstance(config, dict) or key not in config:
            return _MISSING
        config = config[key]
    return config


def _word(value) -> str:
    """A value as the config file writes it (true, null, unet)."""
    if value is None:
        return "null"
    return str(value).lower() if isinstance(value, bool) else str(value)


def _combination_errors(config: dict, rule: dict, prefix: tuple, where: str) -> list[str]:
    """An if/then rule of the schema (prefix: the section it sits in, () at the top) in words, where config
    meets its if and breaks its then."""
    condition = _leaves(rule["if"], prefix)
    if not all(_value(config, path) in _allowed(allowed) for path, allowed in condition):
        return []
    said = ", ".join(f"{'.'.join(path)}: {_word(_value(config, path))}" for path, _ in condition)
    errors = []
    for path, needed in _leaves(rule["then"], prefix):
        value, allowed = _value(config, path), _allowed(needed)
        if value is not _MISSING and value not in allowed:
            wanted = " or ".join(map(_word, allowed))
            errors.append(f"{where}{said} needs {'.'.join(path)}: {wanted} (it is {_word(value)})")
    return errors


def _dataset_errors(config: dict, where: str) -> list[str]:
    """The dataset section against its kind's keys: each key the kind needs is set, no other kind's key is,
    and voc_root / sbd_root only with the voc kind."""
    settings = config.get("dataset")
    if not isinstance(settings, dict) or settings.get("kind") not in KINDS:
        return []  # the schema names the section or the kind
    kind = KINDS[settings["kind"]]
    reads = ", ".join(f"dataset.{key}" for key in kind.keys) or "voc_root and sbd_root"
    errors = [
        f"{where}dataset.kind: {kind.name} needs dataset.{key} (it is null)"
        for key in kind.required
        if settings.get(key) is None
    ]
    errors += [
        f"{where}dataset.{key} is set, but dataset.kind {kind.name} does not read it (it reads {reads})"
        for key, unset in DATASET_KEYS.items()
        if key not in kind.keys and settings.get(key, unset) != unset
    ]
    if kind.name != "voc":
        errors += [
            f"{where}{key} is set, but dataset.kind {kind.name} does not read it (it reads {reads})"
            for key in ("voc_root", "sbd_root")
            if config.get(key)
        ]
    return errors


def _tile_errors(config: dict, where: str) -> list[str]:
    """segmentation.inference.tile's overlap against its size (JSON Schema cannot compare two values): the tiles'
    stride, size - overlap, must be at least 1 px."""
    tile = _value(config, ("segmentation", "inference", "tile"))
    if not isinstance(tile, dict) or not all(isinstance(tile.get(key), int) for key in ("size", "overlap")):
        return []  # null, or the schema names what is missing
    if tile["overlap"] < tile["size"]:
        return []
    return [
        f"{where}segmentation.inference.tile: overlap {tile['overlap']} needs to be less than size {tile['size']}"
        " (the tiles move on by size - overlap)"
    ]


def _saliency_errors(config: dict, where: str) -> list[str]:
    """Saliency as the background cue needs maps: pseudo_mask.saliency_threshold set with saliency.source null
    (a folder that is not there is said when the workflow is planned: workflow/rules/common.smk)."""
    threshold = _value(config, ("pseudo_mask", "saliency_threshold"))
    if threshold in (None, _MISSING) or _value(config, ("saliency", "source")) is not None:
        return []
    return [
        f"{where}pseudo_mask.saliency_threshold: {_word(threshold)} needs saliency.source: a saliency method "
        f"({', '.join(SALIENCY_METHODS)}) or a folder of <image id>.png maps (it is null)"
    ]


def config_errors(config: dict, schema: dict, where: str = "") -> list[str]:
    """What is wrong with config in words, each prefixed by where (e.g. "experiments.unet: "); [] if nothing
    these checks know of (the schema then checks the rest)."""
    errors = [
        f"{where}{section}.{old} is now called {section}.{new}: rename it"
        for (section, old), new in RENAMED.items()
        if isinstance(config.get(section), dict) and old in config[section]
    ]
    rules = [((), rule) for rule in schema.get("allOf", [])]  # across sections
    rules += [
        ((section,), rule)
        for section, section_schema in schema.get("properties", {}).items()
        for rule in section_schema.get("allOf", [])
    ]
    for prefix, rule in rules:
        if "if" in rule:
            errors += _combination_errors(config, rule, prefix, where)
    return errors + _dataset_errors(config, where) + _tile_errors(config, where) + _saliency_errors(config, where)
