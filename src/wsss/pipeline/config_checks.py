"""Config mistakes said in words, before the schema's own messages: keys that were renamed, and the
combinations the schema's if/then rules rule out (e.g. U-Net's output stride), which jsonschema would
report as a bare "32 was expected"."""

from __future__ import annotations

# (section, old key) -> its new name: one word per meaning (`backbone` in every section, `arch` for the
# segmentation network only)
RENAMED = {("classifier", "arch"): "backbone", ("irn", "arch"): "backbone"}


def _allowed(rule: dict) -> list:
    return rule["enum"] if "enum" in rule else [rule["const"]]


def _matches(config_section: dict, condition: dict) -> bool:
    return all(
        key in config_section and config_section[key] in _allowed(rule)
        for key, rule in condition.get("properties", {}).items()
    )


def config_errors(config: dict, schema: dict, where: str = "") -> list[str]:
    """What is wrong with config in words, each prefixed by where (e.g. "experiments.unet: "); [] if nothing
    these checks know of (the schema then checks the rest)."""
    errors = [
        f"{where}{section}.{old} is now called {section}.{new}: rename it"
        for (section, old), new in RENAMED.items()
        if isinstance(config.get(section), dict) and old in config[section]
    ]
    for section, section_schema in schema.get("properties", {}).items():
        values = config.get(section)
        if not isinstance(values, dict):
            continue
        for rule in section_schema.get("allOf", []):
            if "if" not in rule or not _matches(values, rule["if"]):
                continue
            for key, needed in rule["then"].get("properties", {}).items():
                allowed = _allowed(needed)
                if key in values and values[key] not in allowed:
                    condition = ", ".join(f"{section}.{k}: {values[k]}" for k in rule["if"]["properties"])
                    wanted = allowed[0] if len(allowed) == 1 else " or ".join(map(str, allowed))
                    errors.append(f"{where}{condition} needs {section}.{key}: {wanted} (it is {values[key]})")
    return errors
