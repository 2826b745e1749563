"""MultiFusion: multilingual, multimodal prompts for diffusion models (Bellagente et al., NeurIPS 2023).

The prompt model imports without torch; the model classes load on first use.
"""

from importlib import import_module
from typing import Any

from .errors import MultiFusionError, OutOfMemoryError, PromptError
from .prompt import ImageSegment, MultimodalPrompt, PromptLimits, TextSegment
from .syntax import format_prompt, parse_prompt

__version__ = "0.1.0"

_LAZY = {
    "MultiFusionEncoder": "multifusion.encoder",
    "MultiFusionPipeline": "multifusion.pipeline",
    "MultiFusionPipelineOutput": "multifusion.pipeline",
    "Runtime": "multifusion.runtime",
    "RuntimeOptions": "multifusion.runtime",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'multifusion' has no attribute {name!r}")


__all__ = [
    "ImageSegment",
    "MultiFusionError",
    "MultimodalPrompt",
    "OutOfMemoryError",
    "PromptError",
    "PromptLimits",
    "TextSegment",
    "format_prompt",
    "parse_prompt",
    *_LAZY,
]
