"""Example compositions from assets/examples.json, in all five languages, multimodal ones included."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .composer import ASSETS, with_thumbnails

EXAMPLES_DIR = ASSETS / "examples"


def load_examples(path: Path = ASSETS / "examples.json") -> list[dict[str, Any]]:
    """Examples with image paths made absolute and thumbnails attached, ready for the composer."""
    examples = json.loads(path.read_text(encoding="utf-8"))
    for example in examples:
        segments = []
        for seg in example["segments"]:
            seg = {"weight": 1.0, **seg}
            if seg["type"] == "image":
                seg["path"] = str((ASSETS / seg["path"]).resolve())
            segments.append(seg)
        example["composition"] = with_thumbnails({"segments": segments})
    return examples
