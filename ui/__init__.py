"""MultiFusion Studio's Gradio app: `build_demo(studio)` with pure handlers in `handlers.py`."""

from .demo import build_demo
from .handlers import Studio

__all__ = ["Studio", "build_demo"]
