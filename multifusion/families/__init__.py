"""Model families: one prompt model, several generators (design §12).

A model directory's `model_index.json` names its pipeline class, and so its family:

| `_class_name` | family | conditioning and attention code |
|---|---|---|
| `MultiFusionPipeline` | `fused.FusedFamily` | `pipeline.py`, `encoder.py`, `processor.py`, `attention.py` |
| `QwenImageEditPlusPipeline` | `qwen_image.QwenImageEditPlusFamily` | `qwen_image/` |
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import PromptError
from .base import FamilyInfo, ModelFamily


def _families() -> dict[str, type[ModelFamily]]:
    from .fused import FusedFamily
    from .qwen_image.family import QwenImageEditPlusFamily

    return {"MultiFusionPipeline": FusedFamily, "QwenImageEditPlusPipeline": QwenImageEditPlusFamily}


def family_class(model: str | Path) -> type[ModelFamily]:
    """The family of a model folder or hub id, from its `model_index.json`."""
    from diffusers import DiffusionPipeline

    index = DiffusionPipeline.load_config(str(model))  # OSError when there is none, as from_pretrained's
    name = index.get("_class_name")
    families = _families()
    if name not in families:
        raise PromptError(f"{model} is a {name or 'pipeline of unknown class'}; this studio serves {', '.join(families)}")
    return families[name]


def load_family(model: str | Path, dtype: torch.dtype, quantize: str | None = None, device_map: str | None = None) -> ModelFamily:
    """Load a model folder (or hub id, with network) as its family, quantized or device-mapped as asked
    (`memory.py`)."""
    cls = family_class(model)
    extra: dict[str, Any] = {}
    if quantize:
        from ..memory import quantization_config

        extra["quantization_config"] = quantization_config(quantize, cls.quantized_components)
    if device_map:
        extra["device_map"] = device_map
    return cls.load(model, dtype, **extra)


def family_of(pipe: Any) -> ModelFamily:
    """A pipeline object already built (a family, or a pipeline of a known class) as its family."""
    if isinstance(pipe, ModelFamily):
        return pipe
    families = _families()
    if type(pipe).__name__ not in families:
        raise TypeError(f"no model family serves {type(pipe).__name__}; known: {', '.join(families)}")
    return families[type(pipe).__name__](pipe)


__all__ = ["FamilyInfo", "ModelFamily", "family_class", "family_of", "load_family"]
