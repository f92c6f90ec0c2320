"""Loading the YAML configs that ship in ``configs/``.

Every tunable number lives in those files; command-line flags override them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

# A source checkout (and an editable install) keeps the configs beside the package.
DEFAULT_CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


class ConfigError(ValueError):
    """A config file is missing, malformed or names an unknown setting."""


def load_yaml(name_or_path: str | Path) -> dict[str, Any]:
    """Load ``configs/<name>.yaml`` (a bare name) or an explicit YAML path or URL."""
    from ser_model import storage

    path = str(name_or_path)
    if not path.endswith((".yaml", ".yml")):
        path = str(DEFAULT_CONFIG_DIR / f"{name_or_path}.yaml")
    if not storage.exists(path) or storage.isdir(path):
        raise ConfigError(f"config file not found: {path}")
    data = yaml.safe_load(storage.read_text(path))
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``key=value`` where value is YAML (``n_mels=64``, ``trim_silence=false``)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key=value")
    key, raw = text.split("=", 1)
    return key.strip(), yaml.safe_load(raw)
