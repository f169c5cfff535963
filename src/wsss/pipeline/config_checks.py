"""Config mistakes said in words, before the schema's own messages: keys that were renamed, and the
combinations the schema's if/then rules rule out, within a section (e.g. U-Net's output stride) or across
sections (e.g. random-walk labels without the walk), which jsonschema would report as a bare "32 was
expected"."""

from __future__ import annotations

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
    return errors
