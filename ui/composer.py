"""The composer: a `gr.HTML` whose value is the ordered list of segment cards (assets/composer.js, .css)."""

from __future__ import annotations

import io
import base64
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

ASSETS = Path(__file__).resolve().parents[1] / "assets"

TEMPLATE = """
<div class="mf-composer">
  <div class="mf-toolbar">
    <button class="mf-add mf-add-text" type="button">+ Text</button>
    <button class="mf-add mf-add-image" type="button">+ Image</button>
    <input class="mf-file" type="file" accept="image/*" multiple hidden>
    <span class="mf-hint">Drag cards to reorder · drop or paste images between cards · weight 0 removes a segment · up to {max_images} images</span>
  </div>
  <div class="mf-list" role="list" aria-label="Prompt segments"></div>
  <div class="mf-notice" role="status" hidden></div>
</div>
"""


def composer(value: dict[str, Any] | None = None, max_images: int = 8) -> gr.HTML:
    return gr.HTML(
        value=value or {"segments": []},
        html_template=TEMPLATE.replace("{max_images}", str(max_images)),
        css_template=(ASSETS / "composer.css").read_text(encoding="utf-8"),
        js_on_load=(ASSETS / "composer.js").read_text(encoding="utf-8"),
        apply_default_css=False,
        elem_id="composer",
    )


def thumbnail_url(path: str | Path, side: int = 128) -> str:
    """A small PNG data URL for showing an image card the browser did not upload itself."""
    with Image.open(path) as image:
        image = image.convert("RGB")
        image.thumbnail((side, side))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def with_thumbnails(composition: dict[str, Any]) -> dict[str, Any]:
    """Give every image card of a server-made composition a thumbnail the composer can show."""
    segments = []
    for seg in composition.get("segments", []):
        if seg.get("type") == "image" and seg.get("path") and not seg.get("url"):
            seg = {**seg, "thumb": thumbnail_url(seg["path"])}
        segments.append(seg)
    return {"segments": segments}
