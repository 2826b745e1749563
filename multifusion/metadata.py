"""Generation records in PNG text metadata (key `multifusion`): the full prompt, images by SHA-256, settings.

The record is enough to reproduce an image given the same model and the referenced images, and lets the app
restore a composition from a dropped PNG.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

from . import __version__
from .errors import PromptError
from .prompt import MultimodalPrompt

METADATA_KEY = "multifusion"


def generation_record(prompt: MultimodalPrompt, settings: dict[str, Any], model: str, **extra: Any) -> dict[str, Any]:
    """The JSON-ready record of one image: prompt (images as "sha256:<hex>"), settings, model, version."""
    return {
        "prompt": prompt.to_dict(image_ref=lambda s: "sha256:" + s.digest),
        "settings": settings,
        "model": model,
        "multifusion_version": __version__,
        **extra,
    }


def save_png(image: Image.Image, path: str | Path, record: dict[str, Any]) -> Path:
    """Write `image` as PNG with `record` as JSON under the text key `multifusion`."""
    info = PngImagePlugin.PngInfo()
    info.add_itxt(METADATA_KEY, json.dumps(record, ensure_ascii=False))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG", pnginfo=info)
    return path


def read_record(image: Image.Image) -> dict[str, Any]:
    """The record stored in a PNG written by `save_png`; `PromptError` when there is none or it is unreadable."""
    text = getattr(image, "text", {}).get(METADATA_KEY) if hasattr(image, "text") else image.info.get(METADATA_KEY)
    if text is None:
        raise PromptError("this image carries no MultiFusion metadata (was it made by MultiFusion and saved as PNG?)")
    try:
        record = json.loads(text)
    except ValueError as error:
        raise PromptError(f"the image's MultiFusion metadata is not valid JSON ({error})") from None
    if not isinstance(record, dict) or "prompt" not in record or "settings" not in record:
        raise PromptError("the image's MultiFusion metadata has no prompt or settings")
    return record
