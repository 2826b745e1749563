"""Generation records in PNG text metadata (key `multifusion`): the full prompt, images by SHA-256, settings.

The record is enough to reproduce an image given the same model and the referenced images, and lets the app
restore a composition from a dropped PNG. Beside it, each PNG carries the same facts as AUTOMATIC1111 writes them
(key `parameters`), so PNG-info readers and image browsers show them too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

from . import __version__
from .errors import PromptError
from .prompt import MultimodalPrompt
from .schedulers import LABELS
from .syntax import format_prompt

METADATA_KEY = "multifusion"
PARAMETERS_KEY = "parameters"


def generation_record(prompt: MultimodalPrompt, settings: dict[str, Any], model: str, **extra: Any) -> dict[str, Any]:
    """The JSON-ready record of one image: prompt (images as "sha256:<hex>"), settings, model, version."""
    return {
        "prompt": prompt.to_dict(image_ref=lambda s: "sha256:" + s.digest),
        "settings": settings,
        "model": model,
        "multifusion_version": __version__,
        **extra,
    }


def parameters_text(record: dict[str, Any], size: tuple[int, int]) -> str:
    """The record as AUTOMATIC1111 writes generation parameters: the prompt (in the string syntax, images as
    `<name>`), a `Negative prompt:` line, then `Key: value` pairs."""
    settings = record["settings"]
    lines = [_in_syntax(record["prompt"])]
    if settings.get("negative"):
        lines.append("Negative prompt: " + _in_syntax(settings["negative"]))
    sampler = record.get("scheduler")
    fields = {
        "Steps": settings.get("steps"),
        "Sampler": LABELS.get(sampler, sampler),
        "CFG scale": settings.get("guidance"),
        "Guided steps": None if record.get("guidance_end", 1.0) == 1.0 else f"first {100 * record['guidance_end']:.0f}%",
        "Seed": record.get("image_seed", settings.get("seed")),
        "Size": f"{size[0]}x{size[1]}",
        "Model": record.get("model"),
        "Lora hashes": ", ".join(f"{lora['name']}: {lora['hash']}" for lora in record.get("loras") or ()) or None,
        "LoRAs": ", ".join(f"{lora['name']}:{lora['scale']:g}" for lora in record.get("loras") or ()) or None,
        "Weights in": settings.get("manipulate"),
        "Balance": None if settings.get("auto_balance") is None else ("on" if settings["auto_balance"] else "off"),
        "Version": f"multifusion {record.get('multifusion_version', '')}".strip(),
    }
    lines.append(", ".join(f"{key}: {_field(value)}" for key, value in fields.items() if value is not None))
    return "\n".join(lines)


def _in_syntax(prompt: dict[str, Any]) -> str:
    """A recorded prompt (images by digest) in the string syntax; only the images' names are needed."""
    placeholder = Image.new("RGB", (1, 1))
    return format_prompt(MultimodalPrompt.from_dict(prompt, image_loader=lambda ref, what: placeholder))[0]


def _field(value: Any) -> str:
    """A value as AUTOMATIC1111 writes it: quoted when it holds a separator."""
    text = str(value)
    return json.dumps(text, ensure_ascii=False) if any(c in text for c in ',:"\n') else text


def save_png(image: Image.Image, path: str | Path, record: dict[str, Any]) -> Path:
    """Write `image` as PNG with `record` as JSON under the text key `multifusion` and in AUTOMATIC1111's form
    under `parameters`."""
    info = PngImagePlugin.PngInfo()
    info.add_itxt(METADATA_KEY, json.dumps(record, ensure_ascii=False))
    info.add_text(PARAMETERS_KEY, parameters_text(record, image.size))
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
