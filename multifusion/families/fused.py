"""The fused family: MultiFusion's own architecture (LM + image prefix + re-aligned U-Net), as trained here.

Its conditioning is `pipeline.MultiFusionPipeline.encode` (layout in `processor.py`, encoder in `encoder.py`)
and its U-Net attention manipulation `attention.SegmentBiasProcessor`; this file serves it to the runtime.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import PIL.Image
import torch

from ..model_card import ModelCard
from ..pipeline import MultiFusionPipeline, PromptEncoding
from ..prompt import MultimodalPrompt
from ..schedulers import make_scheduler, scheduler_name
from .base import FamilyInfo, ModelFamily, StepCallback

MANIPULATE_MODES = ("both", "encoder", "unet")
DEFAULT_GUIDANCE = 5.0


class FusedFamily(ModelFamily):
    quantized_components = {"unet": "diffusers"}

    def __init__(self, pipe: MultiFusionPipeline, card: ModelCard | None = None) -> None:
        self.pipe = pipe
        self.limits = pipe.limits
        self.info = FamilyInfo(
            family="MultiFusionPipeline",
            native_side=pipe.unet.config.sample_size * pipe.vae_scale_factor,
            size_multiple=pipe.size_multiple,
            default_steps=int(pipe.config.get("default_steps", 25)),
            default_guidance=DEFAULT_GUIDANCE,
            default_guidance_end=float(pipe.config.get("default_guidance_end", 1.0)),
            default_auto_balance=True,
            max_images=pipe.limits.max_images,
            manipulate_modes=MANIPULATE_MODES,
            denoiser="U-Net",
            gpu_seconds_per_step=0.05,  # an SD-1.5-sized U-Net at 512 px, guided, on an A100-class GPU
        )

    @classmethod
    def load(cls, model: str | Path, dtype: torch.dtype, **from_pretrained: Any) -> FusedFamily:
        return cls(MultiFusionPipeline.from_pretrained(str(model), dtype=dtype, **from_pretrained), ModelCard.load(model))

    @property
    def denoiser(self) -> torch.nn.Module:
        return self.pipe.unet

    def encode(self, prompt: MultimodalPrompt, manipulate: str, auto_balance: bool) -> PromptEncoding:
        return self.pipe.encode([prompt], manipulate, auto_balance)

    def denoise(self, encodings: list[PromptEncoding], negatives: list[PromptEncoding] | None, settings: Any,
                generators: list[torch.Generator], per_prompt: int, on_step: StepCallback | None) -> list[PIL.Image.Image]:  # fmt: skip
        """One U-Net batch for every prompt's `per_prompt` images."""
        pos_embeds, pos_bias = _stack(encodings)
        neg_embeds = neg_bias = None
        if negatives is not None:
            neg_embeds, neg_bias = _stack(negatives)

        def callback(pipe: Any, step: int, timestep: Any, tensors: dict) -> dict:
            on_step(step + 1, settings.steps)
            return tensors

        return self.pipe(
            prompt_embeds=pos_embeds, negative_prompt_embeds=neg_embeds, prompt_key_bias=pos_bias,
            negative_prompt_key_bias=neg_bias, num_inference_steps=settings.steps, guidance_scale=settings.guidance,
            width=settings.width, height=settings.height, num_images_per_prompt=per_prompt, generator=generators,
            callback_on_step_end=callback if on_step else None,
        ).images  # fmt: skip

    def set_scheduler(self, name: str) -> None:
        self.pipe.scheduler = make_scheduler(name, self.pipe.scheduler.config)

    @property
    def scheduler_name(self) -> str:
        return scheduler_name(self.pipe.scheduler)


def _stack(encodings: Sequence[PromptEncoding]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Concatenate cached single-prompt encodings into a batch; neutral rows get a zero bias if others have one."""
    embeds = torch.cat([e.embeds for e in encodings])
    if all(e.unet_bias is None for e in encodings):
        return embeds, None
    zeros = torch.zeros(embeds.shape[1], device=embeds.device, dtype=torch.float32)
    return embeds, torch.stack([zeros if e.unet_bias is None else e.unet_bias[0] for e in encodings])
