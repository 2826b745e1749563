"""Training configs: one JSON file per scale (`configs/tiny.json`), one section per stage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def load_config(name_or_path: str) -> dict[str, Any]:
    """A bundled config by name (`tiny`) or a JSON file by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = CONFIG_DIR / f"{name_or_path}.json"
    if not path.is_file():
        known = ", ".join(p.stem for p in CONFIG_DIR.glob("*.json"))
        raise FileNotFoundError(f"no training config {name_or_path!r} (bundled: {known})")
    return json.loads(path.read_text())
