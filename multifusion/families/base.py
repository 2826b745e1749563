"""What a model family is to the runtime, the CLI and the studio (design §12).

A family turns a `MultimodalPrompt` into its denoiser's conditioning, with each segment's weight applied by
attention manipulation where the family's model has attention, and denoises with its upstream diffusers
pipeline. Everything else (the prompt, its limits, the AtMan arithmetic, seeds, PNG records, the runtime, the CLI,
the API and the studio) is written once and knows no family: it reads what a family declares in `FamilyInfo`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import PIL.Image
import torch

from ..prompt import MultimodalPrompt, PromptLimits

StepCallback = Callable[[int, int], None]  # (steps done, steps in all)


@dataclass(frozen=True)
class FamilyInfo:
    """What a loaded model declares or implies, for the controls and limits of whoever drives it."""

    family: str  # the pipeline class it is served as, e.g. "QwenImageEditPlusPipeline"
    native_side: int  # the side, in pixels, the model makes by default
    size_multiple: int  # widths and heights must be multiples of this
    default_steps: int
    default_guidance: float
    default_guidance_end: float  # the share of the steps guided by default (1.0: all)
    default_auto_balance: bool  # whether text is balanced against images (`attention.token_factors`) by default
    max_images: int  # images one prompt may hold
    manipulate_modes: tuple[str, ...]  # where weights may act, "both" first
    denoiser: str  # what denoises, in words ("U-Net", "transformer")
    gpu_seconds_per_step: float  # a guess of one native-size step's seconds on a large GPU, until one is measured
    draws: str | None = None  # what it draws, when its card says nothing


class ModelFamily(ABC):
    """One loaded pipeline of a family. Subclasses set `pipe`, `info` and `limits`."""

    pipe: Any
    info: FamilyInfo
    limits: PromptLimits
    quantized_components: dict[str, str] = {}  # what `quantize` quantizes (the big ones), by the library that built it

    @classmethod
    @abstractmethod
    def load(cls, model: str | Path, dtype: torch.dtype, **from_pretrained: Any) -> ModelFamily:
        """From a folder or hub id; `from_pretrained` goes to the pipeline's (quantization config, device map)."""

    @property
    @abstractmethod
    def denoiser(self) -> torch.nn.Module:
        """The module that runs every step (compiled when the runtime compiles)."""

    @abstractmethod
    def encode(self, prompt: MultimodalPrompt, manipulate: str, auto_balance: bool) -> Any:
        """The conditioning of one validated prompt, with its weights' biases; has `embeds` (1, T, D)."""

    def negative_prompt(self, negative: MultimodalPrompt, positive: MultimodalPrompt) -> MultimodalPrompt:
        """What is encoded as the negative of `positive`: `negative` itself, unless the family's guidance needs
        more of the positive (as the Qwen family's needs its images)."""
        return negative

    @abstractmethod
    def denoise(self, encodings: list[Any], negatives: list[Any] | None, settings: Any, generators: list[torch.Generator],
                per_prompt: int, on_step: StepCallback | None) -> list[PIL.Image.Image]:  # fmt: skip
        """`per_prompt` images for each encoded prompt (guided by its negative when `negatives` is given), one
        generator per image, in the order prompt by prompt."""

    def set_scheduler(self, name: str) -> None:
        from ..errors import PromptError

        raise PromptError(f"{self.info.family} keeps its own scheduler; choosing a sampler is not supported for it")

    def set_shift(self, shift: float) -> None:
        from ..errors import PromptError

        raise PromptError(f"{self.info.family} has no timestep shift to set (a LoRA declares one)")

    @property
    def scheduler_name(self) -> str:
        return type(self.pipe.scheduler).__name__
