"""Qwen-Image-Edit-Plus (Qwen-Image-Edit-2509 / -2511) driven by MultiFusion's interleaved, weighted prompts.

Qwen2.5-VL reads the prompt's text and images in the order the person wrote them (`layout.py`) with each
segment's weight applied in its self-attention (`encoder.py`); the MMDiT reads those hidden states and the
reference images' VAE latents, each segment's weight applied in its joint attention (`attention.py`). The rest
is upstream's: the denoising below follows `QwenImageEditPlusPipeline.__call__` step for step, through its
`prompt_embeds` path and its own helpers (latent packing, VAE encoding, timestep shift, true CFG with its norm
rescale, decoding), so that with neutral weights and the images first it gives upstream's image bit for bit
(tested). What it adds: text-only prompts (no reference latents), and a reference-latent area a small test
model may declare smaller than upstream's 1024x1024.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch
from diffusers import QwenImageEditPlusPipeline
from diffusers.pipelines.qwenimage.pipeline_qwenimage_edit_plus import (
    VAE_IMAGE_SIZE,
    calculate_dimensions,
    calculate_shift,
    retrieve_timesteps,
)

from ...attention import key_bias, place_bias, token_factors
from ...errors import PromptError
from ...model_card import ModelCard
from ...prompt import DEFAULT_LIMITS, ImageSegment, MultimodalPrompt, TextSegment
from ..base import FamilyInfo, ModelFamily, StepCallback
from .attention import install_joint_key_bias
from .encoder import encode_layout
from .layout import check_template, layout_chat
from .processor import QwenVLImageTextProcessor

MANIPULATE_MODES = ("both", "encoder", "transformer")
MAX_IMAGES = 3  # the released models are trained on one to three reference images


@dataclass
class QwenEncoding:
    """One prompt's conditioning: what the transformer reads, and the biases that carry its weights."""

    embeds: torch.Tensor  # (1, T, D) Qwen2.5-VL's last hidden states, the template's system part dropped
    mask: torch.Tensor  # (1, T) 1 for every token (upstream's `prompt_embeds_mask`)
    text_bias: torch.Tensor | None  # (1, T) log-factors on the conditioning tokens' key columns; None: neutral
    image_bias: torch.Tensor | None  # (1, N) log-factor of each reference image's latents; None: neutral
    images: tuple[PIL.Image.Image, ...]  # the reference images, in prompt order


class QwenImageEditPlusFamily(ModelFamily):
    quantized_components = {"transformer": "diffusers", "text_encoder": "transformers"}

    def __init__(self, pipe: QwenImageEditPlusPipeline, card: ModelCard | None = None) -> None:
        card = card or ModelCard()
        self.pipe = pipe
        declared = card.settings
        self.reference_pixels = int(declared.get("reference_pixels", VAE_IMAGE_SIZE))
        max_images = int(declared.get("max_images", MAX_IMAGES))
        self.limits = replace(DEFAULT_LIMITS, max_images=max_images)
        self.info = FamilyInfo(
            family="QwenImageEditPlusPipeline",
            native_side=int(declared.get("native_size", pipe.default_sample_size * pipe.vae_scale_factor)),
            size_multiple=pipe.vae_scale_factor * 2,
            default_steps=int(declared.get("default_steps", 40)),
            default_guidance=float(declared.get("default_guidance", 4.0)),
            default_guidance_end=1.0,
            # Qwen2.5-VL was trained on prompts where an image's hundreds of tokens outnumber the text's: balancing
            # them by default would move every prompt with an image away from upstream's picture
            default_auto_balance=False,
            max_images=max_images,
            manipulate_modes=MANIPULATE_MODES,
            denoiser="transformer",
            # two passes of a 20 B MMDiT over about 8,500 tokens (1024 px and one reference) at about 400 TFLOP/s
            gpu_seconds_per_step=2.0,
            draws="anything you describe, from up to three reference images placed in the sentence",
        )
        check_template(pipe)

    @classmethod
    def load(cls, model: str | Path, dtype: torch.dtype, **from_pretrained: Any) -> QwenImageEditPlusFamily:
        """From a diffusers folder or hub id; the processor is read without its video part (no torchvision needed)."""
        processor = QwenVLImageTextProcessor.from_pretrained(str(model), subfolder="processor")
        pipe = QwenImageEditPlusPipeline.from_pretrained(str(model), processor=processor, dtype=dtype, **from_pretrained)
        return cls(pipe, ModelCard.load(model))

    @property
    def denoiser(self) -> torch.nn.Module:
        return self.pipe.transformer

    def set_shift(self, shift: float) -> None:
        """A fixed timestep shift, as few-step LoRAs are distilled with: exponential shift by log(shift) whatever
        the image size, no terminal stretch."""
        self.pipe.scheduler = type(self.pipe.scheduler).from_config(
            self.pipe.scheduler.config, base_shift=math.log(shift), max_shift=math.log(shift), shift_terminal=None,
            use_dynamic_shifting=True, time_shift_type="exponential",
        )  # fmt: skip

    # --- conditioning ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, prompt: MultimodalPrompt, manipulate: str, auto_balance: bool) -> QwenEncoding:
        layout = layout_chat(prompt, self.pipe)
        factors = token_factors(layout.segment_ids, layout.token_kinds, [prompt.weights], auto_balance)
        bias = None if factors is None else key_bias(factors)
        text_bias = place_bias(bias, manipulate in ("transformer", "both"))
        embeds, mask = encode_layout(self.pipe.text_encoder, layout, place_bias(bias, manipulate in ("encoder", "both")))
        images = tuple(s.image for s in prompt.segments if isinstance(s, ImageSegment))
        image_weights = torch.tensor([[float(s.weight) for s in prompt.segments if isinstance(s, ImageSegment)]])
        image_bias = None
        if images and not torch.all(image_weights == 1.0):
            image_bias = place_bias(torch.log(image_weights), manipulate in ("transformer", "both"))
        return QwenEncoding(embeds, mask, None if text_bias is None else text_bias[:, layout.system_tokens :], image_bias, images)

    def negative_prompt(self, negative: MultimodalPrompt, positive: MultimodalPrompt) -> MultimodalPrompt:
        """Upstream encodes the negative text after the same pictures as the prompt: the positive's images (with
        their weights), then the negative's segments."""
        if negative.images:
            raise PromptError("the negative prompt of this model takes text only (it is read beside the prompt's own images)")
        pictures = tuple(s for s in positive.segments if isinstance(s, ImageSegment))
        texts = tuple(s for s in negative.segments if isinstance(s, TextSegment))
        return MultimodalPrompt(pictures + (texts or (TextSegment(""),)))

    # --- denoising, as upstream's __call__ ---------------------------------------------------------------------
    def denoise(self, encodings, negatives, settings, generators, per_prompt, on_step: StepCallback | None) -> list[PIL.Image.Image]:
        images = []
        for index, encoding in enumerate(encodings):
            progress = None if on_step is None else (lambda i, n, done=index: on_step(done * n + i, len(encodings) * n))
            images += self._denoise_one(encoding, None if negatives is None else negatives[index], settings,
                                        generators[index * per_prompt : (index + 1) * per_prompt], per_prompt, progress)  # fmt: skip
        return images

    @torch.no_grad()
    def _denoise_one(self, encoding: QwenEncoding, negative: QwenEncoding | None, settings, generators: list[torch.Generator],
                     n: int, on_step: StepCallback | None) -> list[PIL.Image.Image]:  # fmt: skip
        pipe = self.pipe
        height, width = settings.height or self.info.native_side, settings.width or self.info.native_side
        device = pipe._execution_device
        scale = pipe.vae_scale_factor

        # 1. Reference images for the VAE, at the family's reference area (upstream: 1024x1024)
        vae_sizes = [calculate_dimensions(self.reference_pixels, im.width / im.height) for im in encoding.images]
        vae_images = [pipe.image_processor.preprocess(im, h, w).unsqueeze(2) for im, (w, h) in zip(encoding.images, vae_sizes)]

        # 2. Prompt embeddings through upstream's `prompt_embeds` path
        guided = negative is not None and settings.guidance > 1
        embeds, mask = pipe.encode_prompt(prompt=None, prompt_embeds=encoding.embeds, prompt_embeds_mask=encoding.mask,
                                          device=device, num_images_per_prompt=n)  # fmt: skip
        if guided:
            neg_embeds, neg_mask = pipe.encode_prompt(prompt=None, prompt_embeds=negative.embeds, prompt_embeds_mask=negative.mask,
                                                      device=device, num_images_per_prompt=n)  # fmt: skip

        # 3. Latents and the reference latents
        latents, image_latents = pipe.prepare_latents(vae_images or None, n, pipe.transformer.config.in_channels // 4, height,
                                                      width, embeds.dtype, device, generators)  # fmt: skip
        img_shapes = [[(1, height // scale // 2, width // scale // 2), *[(1, h // scale // 2, w // scale // 2) for w, h in vae_sizes]]]
        reference_tokens = [(h // scale // 2) * (w // scale // 2) for w, h in vae_sizes]

        # 4. Timesteps
        steps = settings.steps
        sigmas = np.linspace(1.0, 1 / steps, steps)
        config = pipe.scheduler.config
        mu = calculate_shift(latents.shape[1], config.get("base_image_seq_len", 256), config.get("max_image_seq_len", 4096),
                             config.get("base_shift", 0.5), config.get("max_shift", 1.15))  # fmt: skip
        timesteps, steps = retrieve_timesteps(pipe.scheduler, steps, device, sigmas=sigmas, mu=mu)
        if not bool(torch.isfinite(pipe.scheduler.sigmas).all()):
            raise PromptError(f"this model's noise schedule is undefined at {steps} step(s): use at least 2 steps")
        guidance = None
        if pipe.transformer.config.guidance_embeds:
            guidance = torch.full([1], settings.guidance, device=device, dtype=torch.float32).expand(latents.shape[0])

        # 5. Denoising loop
        attention = self._attention_kwargs(encoding, latents.shape[1], reference_tokens, n)
        neg_attention = self._attention_kwargs(negative, latents.shape[1], reference_tokens, n) if guided else {}
        pipe.scheduler.set_begin_index(0)
        for i, t in enumerate(timesteps):
            model_input = latents if image_latents is None else torch.cat([latents, image_latents], dim=1)
            timestep = t.expand(latents.shape[0]).to(latents.dtype)
            with pipe.transformer.cache_context("cond"):
                noise_pred = pipe.transformer(hidden_states=model_input, timestep=timestep / 1000, guidance=guidance,
                                              encoder_hidden_states_mask=mask, encoder_hidden_states=embeds, img_shapes=img_shapes,
                                              attention_kwargs=attention, return_dict=False)[0][:, : latents.size(1)]  # fmt: skip
            if guided:
                with pipe.transformer.cache_context("uncond"):
                    neg_pred = pipe.transformer(hidden_states=model_input, timestep=timestep / 1000, guidance=guidance,
                                                encoder_hidden_states_mask=neg_mask, encoder_hidden_states=neg_embeds,
                                                img_shapes=img_shapes, attention_kwargs=neg_attention, return_dict=False)[0]  # fmt: skip
                neg_pred = neg_pred[:, : latents.size(1)]
                combined = neg_pred + settings.guidance * (noise_pred - neg_pred)
                noise_pred = combined * (torch.norm(noise_pred, dim=-1, keepdim=True) / torch.norm(combined, dim=-1, keepdim=True))
            latents = pipe.scheduler.step(noise_pred, t, latents, return_dict=False)[0]
            if on_step is not None:
                on_step(i + 1, steps)

        # 6. Decode
        latents = pipe._unpack_latents(latents, height, width, scale).to(pipe.vae.dtype)
        z = pipe.vae.config.z_dim
        mean = torch.tensor(pipe.vae.config.latents_mean).view(1, z, 1, 1, 1).to(latents.device, latents.dtype)
        inverse_std = 1.0 / torch.tensor(pipe.vae.config.latents_std).view(1, z, 1, 1, 1).to(latents.device, latents.dtype)
        image = pipe.vae.decode(latents / inverse_std + mean, return_dict=False)[0][:, :, 0]
        pipe.maybe_free_model_hooks()
        return pipe.image_processor.postprocess(image, output_type="pil")

    def _attention_kwargs(self, encoding: QwenEncoding, noise_tokens: int, reference_tokens: list[int], n: int) -> dict:
        """`{"key_bias": (n, S_txt + S_img)}` for a pass over `encoding`, or `{}` (upstream's) when it is neutral."""
        if encoding.text_bias is None and encoding.image_bias is None:
            return {}
        install_joint_key_bias(self.pipe.transformer)
        text = encoding.text_bias if encoding.text_bias is not None else torch.zeros(encoding.embeds.shape[:2])
        images = encoding.image_bias if encoding.image_bias is not None else torch.zeros(1, len(reference_tokens))
        parts = [text.float().cpu(), torch.zeros(1, noise_tokens)]
        parts += [images[:, k : k + 1].float().cpu().expand(1, count) for k, count in enumerate(reference_tokens)]
        return {"key_bias": torch.cat(parts, 1).repeat(n, 1).to(self.pipe._execution_device)}
