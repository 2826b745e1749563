"""Fuse pretrained models named by reference into one `MultiFusionPipeline`, before any training.

    pipe, r2 = fuse_pretrained("stable-diffusion-v1-5/stable-diffusion-v1-5", "Qwen/Qwen2-1.5B",
                               "google/siglip-base-patch16-224", captions)

Each reference is a hub id or a local directory in the model's own format: a diffusers Stable Diffusion checkpoint
(U-Net, VAE, scheduler, and its CLIP text encoder and tokenizer, the teacher), any `AutoModelForCausalLM` with its
tokenizer (Llama, Qwen2, Mistral, Gemma, ...), and a CLIP or SigLIP vision tower (a vision-only checkpoint or the
vision half of a two-tower one). The U-Net's cross-attention is re-dimensioned to the LM's width and started from a
map fitted on `captions` (`redimension.py`); the image prefix and adapters start as in `MultiFusionEncoder`.
The result saves and reloads with `MultiFusionPipeline.from_pretrained`; stages 3 and 4 then train it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, UNet2DConditionModel
from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoModelForCausalLM, AutoTokenizer, CLIPTextModel

from ..encoder import MultiFusionEncoder, mean_pool
from ..pipeline import MultiFusionPipeline
from ..processor import layout_prompts
from ..prompt import MultimodalPrompt
from .redimension import fit_state_map, redimension_cross_attention


def vision_tower(reference: str | Path) -> torch.nn.Module:
    """A vision model from `reference`; of a two-tower checkpoint (CLIP, SigLIP), its vision half."""
    config = AutoConfig.from_pretrained(reference)
    if getattr(config, "vision_config", None) is None:
        return AutoModel.from_pretrained(reference)
    vision_class = type(AutoModel.from_config(config.vision_config))  # e.g. CLIPVisionModel, SiglipVisionModel
    return vision_class.from_pretrained(reference)  # which reads its half of the two-tower weights


@torch.no_grad()
def teacher_states(stable_diffusion: str | Path, captions: Sequence[str]) -> torch.Tensor:
    """(n, D_old): each caption as Stable Diffusion's text encoder gives it to the U-Net (padded to its length),
    averaged over the positions after the first (as `mean_pool` leaves out the encoder's prefix token)."""
    tokenizer = AutoTokenizer.from_pretrained(stable_diffusion, subfolder="tokenizer")
    text_encoder = CLIPTextModel.from_pretrained(stable_diffusion, subfolder="text_encoder").eval()
    ids = tokenizer(list(captions), padding="max_length", truncation=True, max_length=tokenizer.model_max_length,
                    return_tensors="pt").input_ids  # fmt: skip
    return text_encoder(ids).last_hidden_state[:, 1:].mean(dim=1)


def truncated(caption: str, tokenizer, room: int) -> str:
    """`caption` cut after its first `room` tokens (as Stable Diffusion's tokenizer cuts at its length)."""
    ends = [end for _, end in tokenizer(caption, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]]
    return caption if len(ends) <= room else caption[: ends[room - 1]]


@torch.no_grad()
def encoder_states(encoder: MultiFusionEncoder, tokenizer, captions: Sequence[str]) -> torch.Tensor:
    """(n, D_new): each caption as the fused encoder gives it to the U-Net, averaged over positions (`mean_pool`)."""
    room = encoder.config.max_length - 1  # after the prefix token
    prompts = [MultimodalPrompt.of(truncated(c, tokenizer, room)) for c in captions]
    inputs = layout_prompts(prompts, tokenizer, encoder.config.image_tokens, encoder.config.max_length)
    return mean_pool(encoder.eval()(inputs.input_ids, image_mask=inputs.image_mask))


def fuse_pretrained(
    stable_diffusion: str | Path,
    language_model: str | Path,
    vision_model: str | Path,
    captions: Sequence[str],
    image_tokens: int = 16,
    adapter_dim: int = 64,
    max_length: int = 77,
    ridge: float = 1e-3,
) -> tuple[MultiFusionPipeline, float]:
    """The fused pipeline and the R² of the state map its cross-attention starts from (fitted on `captions`, a
    few thousand of the training data's, in English as the teacher reads them)."""
    if len(captions) < 2:
        raise ValueError("fitting the cross-attention's start needs captions (a few thousand of the training data's)")
    if max_length < image_tokens + 8:
        raise ValueError(f"max_length {max_length} leaves too little room for a caption after {image_tokens} image tokens")
    tokenizer = AutoTokenizer.from_pretrained(language_model)
    encoder = MultiFusionEncoder.from_parts(
        AutoModelForCausalLM.from_pretrained(language_model), vision_tower(vision_model),
        image_tokens=image_tokens, adapter_dim=adapter_dim, max_length=max_length,
    )  # fmt: skip
    mapping, r2 = fit_state_map(encoder_states(encoder, tokenizer, captions), teacher_states(stable_diffusion, captions), ridge)
    unet = UNet2DConditionModel.from_pretrained(stable_diffusion, subfolder="unet")
    redimension_cross_attention(unet, encoder.hidden_size, mapping)
    pipe = MultiFusionPipeline(
        vae=AutoencoderKL.from_pretrained(stable_diffusion, subfolder="vae"), unet=unet,
        scheduler=DPMSolverMultistepScheduler.from_pretrained(stable_diffusion, subfolder="scheduler"),
        encoder=encoder, tokenizer=tokenizer, vision_processor=AutoImageProcessor.from_pretrained(vision_model),
    )  # fmt: skip
    return pipe, r2
