"""Load the model once, build the app, launch: shared by `app.py` and `multifusion serve`."""

from __future__ import annotations

import os
from collections.abc import Callable

from multifusion.images import MAX_IMAGE_BYTES
from multifusion.model_card import ModelCard
from multifusion.runtime import DEFAULT_MODEL, Runtime, RuntimeOptions

from .composer import ASSETS
from .demo import CSS, THEME, build_demo
from .handlers import Studio

MAX_UPLOAD = MAX_IMAGE_BYTES  # the largest file a visitor may upload (images are the only uploads)
# How the studio is served. Our own errors are `gr.Error`s, always shown; show_error=False keeps the text of any
# other exception (Gradio's own, e.g. a refused file path naming the server's folders) from reaching a client.
# `js` adds the page-wide keys (Ctrl/Cmd+Enter, Esc).
LAUNCH_OPTIONS = {"theme": THEME, "css": CSS, "js": (ASSETS / "shortcuts.js").read_text(encoding="utf-8"), "show_error": False,
                  "max_file_size": MAX_UPLOAD}  # fmt: skip


def load_studio(model: str | None = None, options: RuntimeOptions | None = None) -> Studio:
    """The given model, else `weights/multifusion-tiny`, else the tiny random test pipeline (said plainly)."""
    if model:
        return Studio(Runtime.load(model, options), model, card=ModelCard.load(model))
    if DEFAULT_MODEL.is_dir():
        return Studio(Runtime.load(DEFAULT_MODEL, options), "multifusion-tiny (weights/multifusion-tiny)", card=ModelCard.load(DEFAULT_MODEL))
    from multifusion.testing import tiny_pipeline

    name = "tiny RANDOM test pipeline — weights/multifusion-tiny is not installed, so images are noise"
    return Studio(Runtime(tiny_pipeline(), options), name)


def zero_gpu_wrapper() -> Callable[[Callable], Callable]:
    """`spaces.GPU` on Hugging Face ZeroGPU Spaces (where the package exists), otherwise no wrapping."""
    try:
        import spaces  # type: ignore[import-not-found]
    except ImportError:
        return lambda fn: fn
    return spaces.GPU


def launch(host: str | None = None, port: int | None = None, model: str | None = None) -> None:
    studio = load_studio(model or os.environ.get("MULTIFUSION_MODEL"))
    if studio.runtime.compiled:
        studio.runtime.warm_up()  # compile before the first visitor, not during their request
    demo = build_demo(studio, zero_gpu_wrapper())
    demo.launch(server_name=host, server_port=port, **LAUNCH_OPTIONS)
