"""Load the model once, build the app, launch: shared by `app.py` and `multifusion serve`."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import replace

from multifusion.images import MAX_IMAGE_BYTES
from multifusion.model_card import ModelCard, model_label
from multifusion.runtime import DEFAULT_MODEL, Runtime, RuntimeOptions

from .composer import ASSETS
from .demo import CSS, THEME, build_demo
from .handlers import Studio
from .http_limits import app_kwargs, name_event_refusals
from .zero_gpu import Wrap, no_gpu_slices, zero_gpu

MAX_UPLOAD = MAX_IMAGE_BYTES  # the largest file a visitor may upload (images are the only uploads)
# How the studio is served. Our own errors are `gr.Error`s, always shown; show_error=False keeps the text of any
# other exception (Gradio's own, e.g. a refused file path naming the server's folders) from reaching a client.
# `app_kwargs` bounds request bodies and keeps refusals from echoing their input (`http_limits.py`).
# `js` adds the page-wide keys (Ctrl/Cmd+Enter, Esc).
_OPTIONS = {"theme": THEME, "css": CSS, "js": (ASSETS / "shortcuts.js").read_text(encoding="utf-8"), "show_error": False,
            "max_file_size": MAX_UPLOAD}  # fmt: skip


def launch_options() -> dict:
    """`Blocks.launch` keyword arguments; new ones each time (Gradio adds to the app's arguments it is given). Also
    makes Gradio's own refusals of an event say what was wrong (`http_limits.name_event_refusals`)."""
    name_event_refusals()
    return {**_OPTIONS, "app_kwargs": app_kwargs()}


def load_studio(model: str | None = None, options: RuntimeOptions | None = None) -> Studio:
    """The given model, else `weights/multifusion-tiny`, else the tiny random test pipeline (said plainly)."""
    if model:
        return Studio(Runtime.load(model, options), model_label(model), card=ModelCard.load(model))
    if DEFAULT_MODEL.is_dir():
        return Studio(Runtime.load(DEFAULT_MODEL, options), model_label(DEFAULT_MODEL), card=ModelCard.load(DEFAULT_MODEL))
    from multifusion.testing import tiny_pipeline

    name = "tiny RANDOM test pipeline — weights/multifusion-tiny is not installed, so images are noise"
    return Studio(Runtime(tiny_pipeline(), options), name)


def zero_gpu_wrapper(studio: Studio) -> Wrap:
    """On Hugging Face ZeroGPU Spaces (where the `spaces` package exists): every generation under `spaces.GPU`,
    asking for its request's duration; elsewhere no wrapping."""
    try:
        import spaces  # type: ignore[import-not-found]
    except ImportError:
        return no_gpu_slices
    return zero_gpu(spaces, studio)


def options_from_env() -> RuntimeOptions | None:
    """Memory modes and LoRAs a host sets by environment (a Space's variables): MULTIFUSION_OFFLOAD,
    MULTIFUSION_QUANTIZE, MULTIFUSION_DEVICE_MAP, MULTIFUSION_LORAS (comma-separated PATH_OR_ID[:SCALE])."""
    env = {key: os.environ.get(f"MULTIFUSION_{key.upper()}") or None for key in ("offload", "quantize", "device_map", "loras")}
    if not any(env.values()):
        return None
    loras = tuple(item.strip() for item in (env.pop("loras") or "").split(",") if item.strip())
    return RuntimeOptions(**env, loras=loras)


def launch(host: str | None = None, port: int | None = None, model: str | None = None,
           options: RuntimeOptions | None = None) -> None:  # fmt: skip
    options = options or options_from_env() or RuntimeOptions()
    if importlib.util.find_spec("spaces") is not None:  # ZeroGPU: no GPU outside a slice, so no compile at start
        options = replace(options, compile_unet=False)
    studio = load_studio(model or os.environ.get("MULTIFUSION_MODEL"), options)
    if studio.runtime.compiled:
        studio.runtime.warm_up()  # compile before the first visitor, not during their request
    demo = build_demo(studio, zero_gpu_wrapper(studio))
    demo.launch(server_name=host, server_port=port, **launch_options())
