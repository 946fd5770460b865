"""--set NAME=VALUE for the evaluation scripts: tuning an options dataclass without a flag per field."""
from __future__ import annotations

import dataclasses


def option_overrides(options_class, settings: list[str]) -> dict:
    """NAME=VALUE strings as fields of options_class, each value of its field's default's type.

    Only bool, int and float fields: the others (device, max_side, ...) have their own flags.
    """
    fields = [f.name for f in dataclasses.fields(options_class)]
    defaults = options_class()
    overrides = {}
    for setting in settings:
        name, _, value = setting.partition("=")
        if name not in fields or not value:
            raise SystemExit(f"--set {setting}: expected NAME=VALUE with NAME one of {', '.join(fields)}")
        kind = type(getattr(defaults, name))
        if kind not in (bool, int, float):
            raise SystemExit(f"--set {setting}: {name} has its own flag")
        # bool("no") is True: a flag's words are read, not cast
        overrides[name] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
    return overrides
