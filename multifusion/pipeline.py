"""MultiFusionPipeline: a frozen text-to-image diffusion model conditioned by the MultiFusion encoder.

`__call__` mirrors diffusers' `StableDiffusionPipeline`: given the same U-Net, VAE, scheduler, generator and
prompt embeddings it produces the same image (tested). What differs is the prompt: any interleaving of text and
images with a weight per segment, encoded by `MultiFusionEncoder`, with the weights applied by attention
manipulation in the encoder and/or the U-Net's cross-attention (see `attention.py`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Union

import PIL.Image
import torch
from diffusers import AutoencoderKL, DiffusionPipeline, UNet2DConditionModel
from diffusers.image_processor import VaeImageProcessor
from diffusers.pipelines.pipeline_utils import StableDiffusionMixin
from diffusers.schedulers import KarrasDiffusionSchedulers
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor
from transformers import PreTrainedTokenizerBase
from transformers.image_processing_utils import BaseImageProcessor

from .attention import MANIPULATE_MODES, Manipulate, install_segment_bias, key_bias, place_bias, token_factors
from .encoder import MultiFusionEncoder
from .errors import PromptError
from .processor import layout_prompts
from .prompt import DEFAULT_LIMITS, MultimodalPrompt
from .syntax import parse_prompt

PromptInput = Union[MultimodalPrompt, str]


@dataclass
class PromptEncoding:
    """Encoded prompts: what the U-Net reads, and the cross-attention bias that goes with it."""

    embeds: torch.Tensor  # (B, T, D)
    unet_bias: torch.Tensor | None  # (B, T) log-factors for the U-Net's cross-attention keys; None = neutral


@dataclass
class MultiFusionPipelineOutput(BaseOutput):
    """`images`: a list of PIL images, a numpy array, or a tensor, by `output_type`."""

    images: list[PIL.Image.Image] | Any


def as_prompts(prompt: PromptInput | Sequence[PromptInput] | None, batch: int | None = None) -> list[MultimodalPrompt]:
    """Normalise a prompt argument to a list of prompts; strings use the prompt syntax (`syntax.py`)."""
    if prompt is None:
        return [MultimodalPrompt()] * (batch or 1)
    items = [prompt] if isinstance(prompt, (str, MultimodalPrompt)) else list(prompt)
    prompts = [parse_prompt(p) if isinstance(p, str) else p for p in items]
    for p in prompts:
        if not isinstance(p, MultimodalPrompt):
            raise PromptError(f"expected a MultimodalPrompt or a string, got {type(p).__name__}")
    if batch is not None and len(prompts) != batch:
        if len(prompts) != 1:
            raise PromptError(f"got {len(prompts)} negative prompts for {batch} prompts")
        prompts = prompts * batch
    return prompts


class MultiFusionPipeline(DiffusionPipeline, StableDiffusionMixin):
    r"""Multilingual, multimodal text-to-image generation (Bellagente et al., NeurIPS 2023).

    Args:
        vae: the autoencoder of the diffusion model.
        unet: the diffusion U-Net, whose cross-attention reads the encoder's hidden states.
        scheduler: any Karras diffusion scheduler of diffusers.
        encoder: the MultiFusion encoder (LM + image prefix + adapters).
        tokenizer: the LM's fast tokenizer.
        vision_processor: the vision encoder's image processor.
        default_steps: the number of denoising steps this model is meant to run with its saved scheduler (kept in
            `model_index.json`; the studio and CLI use it when a request names none).
        default_guidance_end: the share of the steps, from the first, that classifier-free guidance runs for by
            default (1.0: all). Later, nearly denoised steps then take one U-Net pass instead of two.
    """

    model_cpu_offload_seq = "encoder->unet->vae"
    _callback_tensor_inputs = ["latents", "prompt_embeds", "negative_prompt_embeds"]

    def __init__(
        self,
        vae: AutoencoderKL,
        unet: UNet2DConditionModel,
        scheduler: KarrasDiffusionSchedulers,
        encoder: MultiFusionEncoder,
        tokenizer: PreTrainedTokenizerBase,
        vision_processor: BaseImageProcessor,
        default_steps: int = 25,
        default_guidance_end: float = 1.0,
    ) -> None:
        super().__init__()
        if unet.config.cross_attention_dim != encoder.hidden_size:
            raise ValueError(
                f"the U-Net's cross_attention_dim ({unet.config.cross_attention_dim}) must equal the encoder's "
                f"hidden size ({encoder.hidden_size})"
            )
        self.register_modules(
            vae=vae, unet=unet, scheduler=scheduler, encoder=encoder, tokenizer=tokenizer,
            vision_processor=vision_processor,
        )  # fmt: skip
        self.register_to_config(default_steps=default_steps, default_guidance_end=default_guidance_end)
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor)
        self.limits = DEFAULT_LIMITS

    # --- properties, as in StableDiffusionPipeline -----------------------------------------------------------
    @property
    def guidance_scale(self) -> float:
        return self._guidance_scale

    @property
    def do_classifier_free_guidance(self) -> bool:
        return self._guidance_scale > 1 and self.unet.config.time_cond_proj_dim is None

    @property
    def interrupt(self) -> bool:
        return self._interrupt

    @property
    def size_multiple(self) -> int:
        """Height and width must be multiples of this (VAE downsampling times U-Net downsampling)."""
        return self.vae_scale_factor * 2 ** (len(self.unet.config.block_out_channels) - 1)

    # --- encoding ---------------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode(
        self,
        prompts: Sequence[MultimodalPrompt],
        manipulate: Manipulate = "both",
        auto_balance: bool = True,
        device: torch.device | None = None,
    ) -> PromptEncoding:
        """Encode prompts (already validated) to U-Net conditioning and its cross-attention bias."""
        device = device or self._execution_device
        inputs = layout_prompts(prompts, self.tokenizer, self.encoder.config.image_tokens, self.encoder.config.max_length)
        factors = token_factors(inputs.segment_ids, inputs.token_kinds, inputs.segment_weights, auto_balance)
        bias = None if factors is None else key_bias(factors).to(device)
        pixel_values = None
        if inputs.images:
            pixel_values = self.vision_processor(images=self.encoder.prepare_images(inputs.images), return_tensors="pt").pixel_values
        embeds = self.encoder(
            inputs.input_ids.to(device),
            image_mask=inputs.image_mask.to(device),
            pixel_values=pixel_values,
            key_bias=place_bias(bias, manipulate in ("encoder", "both")),
        )
        return PromptEncoding(embeds, place_bias(bias, manipulate in ("unet", "both")))

    def encode_prompt(
        self,
        prompt: PromptInput | Sequence[PromptInput] | None,
        device: torch.device,
        num_images_per_prompt: int,
        do_classifier_free_guidance: bool,
        negative_prompt: PromptInput | Sequence[PromptInput] | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        prompt_key_bias: torch.Tensor | None = None,
        negative_prompt_key_bias: torch.Tensor | None = None,
        manipulate: Manipulate = "both",
        auto_balance: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """Prompt and negative-prompt embeddings (B * num_images_per_prompt, T, D) and their U-Net key biases."""
        if prompt_embeds is None:
            encoded = self.encode(self._checked(prompt), manipulate, auto_balance, device)
            prompt_embeds, prompt_key_bias = encoded.embeds, encoded.unet_bias
        if do_classifier_free_guidance and negative_prompt_embeds is None:
            negatives = self._checked(negative_prompt, batch=prompt_embeds.shape[0])
            encoded = self.encode(negatives, manipulate, auto_balance, device)
            negative_prompt_embeds, negative_prompt_key_bias = encoded.embeds, encoded.unet_bias

        def repeat(x: torch.Tensor | None) -> torch.Tensor | None:  # (B, ...) -> (B * n, ...), as diffusers orders it
            return None if x is None else x.to(device, self.unet.dtype).repeat_interleave(num_images_per_prompt, 0)

        return (
            repeat(prompt_embeds),
            repeat(negative_prompt_embeds) if do_classifier_free_guidance else None,
            repeat(prompt_key_bias),
            repeat(negative_prompt_key_bias) if do_classifier_free_guidance else None,
        )

    def _checked(self, prompt: Any, batch: int | None = None) -> list[MultimodalPrompt]:
        prompts = as_prompts(prompt, batch)
        for p in prompts:
            p.validate(self.limits, allow_empty=batch is not None)  # an empty negative prompt is unconditional
        return prompts

    # --- inputs and latents, as in StableDiffusionPipeline -----------------------------------------------------
    def check_inputs(
        self,
        prompt: Any,
        height: int,
        width: int,
        num_inference_steps: int,
        num_images_per_prompt: int,
        prompt_embeds: torch.Tensor | None,
        negative_prompt_embeds: torch.Tensor | None,
        prompt_key_bias: torch.Tensor | None,
        negative_prompt_key_bias: torch.Tensor | None,
        manipulate: str,
        callback_on_step_end_tensor_inputs: Sequence[str] | None,
        guidance_end: float = 1.0,
    ) -> None:
        multiple = self.size_multiple
        if height <= 0 or width <= 0 or height % multiple or width % multiple:
            raise PromptError(f"height and width must be positive multiples of {multiple}, got {height}x{width}")
        if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise PromptError(f"num_inference_steps must be a positive integer, got {num_inference_steps!r}")
        if not isinstance(num_images_per_prompt, int) or num_images_per_prompt < 1:
            raise PromptError(f"num_images_per_prompt must be a positive integer, got {num_images_per_prompt!r}")
        if not isinstance(guidance_end, (int, float)) or not 0.0 <= guidance_end <= 1.0:  # also refuses NaN
            raise PromptError(f"guidance_end must be between 0 and 1 (a share of the steps), got {guidance_end!r}")
        if manipulate not in MANIPULATE_MODES:
            raise PromptError(f"manipulate must be one of {', '.join(MANIPULATE_MODES)}, got {manipulate!r}")
        if (prompt is None) == (prompt_embeds is None):
            raise PromptError("pass exactly one of `prompt` and `prompt_embeds`")
        if prompt_embeds is not None and negative_prompt_embeds is not None:
            if prompt_embeds.shape != negative_prompt_embeds.shape:
                raise PromptError(
                    f"prompt_embeds {tuple(prompt_embeds.shape)} and negative_prompt_embeds "
                    f"{tuple(negative_prompt_embeds.shape)} must have the same shape"
                )
        pairs = (("prompt", prompt_embeds, prompt_key_bias), ("negative_prompt", negative_prompt_embeds, negative_prompt_key_bias))
        for name, embeds, bias in pairs:
            if bias is not None and (embeds is None or bias.shape != embeds.shape[:2]):
                raise PromptError(f"{name}_key_bias must come with {name}_embeds and have shape (batch, tokens)")
        unknown = set(callback_on_step_end_tensor_inputs or ()) - set(self._callback_tensor_inputs)
        if unknown:
            raise PromptError(f"callback_on_step_end_tensor_inputs must be in {self._callback_tensor_inputs}")

    def prepare_latents(
        self,
        batch_size: int,
        num_channels_latents: int,
        height: int,
        width: int,
        dtype: torch.dtype,
        device: torch.device,
        generator: torch.Generator | list[torch.Generator] | None,
        latents: torch.Tensor | None = None,
    ) -> torch.Tensor:
        shape = (batch_size, num_channels_latents, height // self.vae_scale_factor, width // self.vae_scale_factor)
        if isinstance(generator, list) and len(generator) != batch_size:
            raise PromptError(f"got {len(generator)} generators for {batch_size} images")
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        else:
            latents = latents.to(device)
        return latents * self.scheduler.init_noise_sigma

    def prepare_extra_step_kwargs(self, generator: Any, eta: float) -> dict[str, Any]:
        accepted = set(inspect.signature(self.scheduler.step).parameters)
        kwargs: dict[str, Any] = {}
        if "eta" in accepted:
            kwargs["eta"] = eta
        if "generator" in accepted:
            kwargs["generator"] = generator
        return kwargs

    # --- generation ---------------------------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(
        self,
        prompt: PromptInput | Sequence[PromptInput] | None = None,
        height: int | None = None,
        width: int | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float = 7.5,
        guidance_end: float | None = None,
        negative_prompt: PromptInput | Sequence[PromptInput] | None = None,
        num_images_per_prompt: int = 1,
        eta: float = 0.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        prompt_key_bias: torch.Tensor | None = None,
        negative_prompt_key_bias: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        cross_attention_kwargs: dict[str, Any] | None = None,
        manipulate: Manipulate = "both",
        auto_balance: bool = True,
        callback_on_step_end: Callable[[Any, int, Any, dict], dict] | None = None,
        callback_on_step_end_tensor_inputs: list[str] = ["latents"],
    ) -> MultiFusionPipelineOutput | tuple:
        r"""Generate images from multimodal prompts.

        Args:
            prompt: a `MultimodalPrompt`, a string in the prompt syntax (`(text:1.3)`, images need
                `MultimodalPrompt`), or a list of them. Alternatively pass `prompt_embeds`.
            height, width: image size in pixels; defaults to the U-Net's sample size.
            num_inference_steps: denoising steps; None is the model's `default_steps`.
            guidance_scale, eta, cross_attention_kwargs: as in `StableDiffusionPipeline`.
            guidance_end: guidance runs for this share of the steps, from the first (like ControlNet's
                `control_guidance_end`); the rest denoise on the prompt alone, one U-Net pass each instead of two.
                None is the model's `default_guidance_end`.
            negative_prompt: a prompt (multimodal too) to guide away from; None is the unconditional prompt.
            num_images_per_prompt: images per prompt.
            generator: a `torch.Generator`, or one per image for results that do not depend on batching.
            latents: pre-generated noise latents.
            prompt_embeds, negative_prompt_embeds: pre-computed `PromptEncoding.embeds`, e.g. from a cache.
            prompt_key_bias, negative_prompt_key_bias: the `PromptEncoding.unet_bias` that goes with them.
            output_type: "pil", "np", "pt" or "latent".
            manipulate: where segment weights act: "encoder", "unet" or "both".
            auto_balance: up-weight text when image tokens outnumber text tokens (see `attention.token_factors`).
            callback_on_step_end: called as `fn(pipe, step, timestep, tensors)` after each step; may return
                replacements for the tensors named in `callback_on_step_end_tensor_inputs`. Set
                `pipe._interrupt = True` inside it to skip the remaining steps.

        Returns:
            `MultiFusionPipelineOutput` with `images`, or a tuple `(images, None)` when `return_dict` is False.
        """
        # 0. Defaults: the model's steps and native size
        num_inference_steps = self.config.default_steps if num_inference_steps is None else num_inference_steps
        guidance_end = self.config.get("default_guidance_end", 1.0) if guidance_end is None else guidance_end
        height = height or self.unet.config.sample_size * self.vae_scale_factor
        width = width or self.unet.config.sample_size * self.vae_scale_factor

        # 1. Check inputs
        self.check_inputs(
            prompt, height, width, num_inference_steps, num_images_per_prompt, prompt_embeds,
            negative_prompt_embeds, prompt_key_bias, negative_prompt_key_bias, manipulate,
            callback_on_step_end_tensor_inputs, guidance_end,
        )  # fmt: skip
        self._guidance_scale = guidance_scale
        self._interrupt = False
        device = self._execution_device

        # 2. Encode the prompts
        prompt_embeds, negative_prompt_embeds, prompt_key_bias, negative_prompt_key_bias = self.encode_prompt(
            prompt, device, num_images_per_prompt, self.do_classifier_free_guidance, negative_prompt,
            prompt_embeds, negative_prompt_embeds, prompt_key_bias, negative_prompt_key_bias, manipulate,
            auto_balance,
        )  # fmt: skip
        batch_size = prompt_embeds.shape[0] // num_images_per_prompt
        unet_bias = prompt_key_bias
        if self.do_classifier_free_guidance:
            prompt_embeds = torch.cat([negative_prompt_embeds, prompt_embeds])
            if prompt_key_bias is not None or negative_prompt_key_bias is not None:
                zeros = torch.zeros(prompt_embeds.shape[:2], device=device, dtype=prompt_embeds.dtype).chunk(2)
                unet_bias = torch.cat([
                    zeros[0] if negative_prompt_key_bias is None else negative_prompt_key_bias,
                    zeros[1] if prompt_key_bias is None else prompt_key_bias,
                ])  # fmt: skip
        attention_kwargs = dict(cross_attention_kwargs or {})
        if unet_bias is not None:
            install_segment_bias(self.unet)
            attention_kwargs["key_bias"] = unet_bias

        # 3. Timesteps
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps

        # 4. Latents
        latents = self.prepare_latents(
            batch_size * num_images_per_prompt, self.unet.config.in_channels, height, width,
            prompt_embeds.dtype, device, generator, latents,
        )  # fmt: skip
        extra_step_kwargs = self.prepare_extra_step_kwargs(generator, eta)

        # 5. Denoising loop
        num_warmup_steps = len(timesteps) - num_inference_steps * self.scheduler.order
        self._num_timesteps = len(timesteps)
        with self.progress_bar(total=num_inference_steps) as progress_bar:
            for i, t in enumerate(timesteps):
                if self.interrupt:
                    continue
                guided = self.do_classifier_free_guidance and i < guidance_end * len(timesteps)
                latent_model_input = torch.cat([latents] * 2) if guided else latents
                latent_model_input = self.scheduler.scale_model_input(latent_model_input, t)
                if guided or not self.do_classifier_free_guidance:
                    embeds, step_kwargs = prompt_embeds, attention_kwargs
                else:  # past guidance_end: the prompt's half of the batch alone
                    embeds, step_kwargs = prompt_embeds.chunk(2)[1], dict(attention_kwargs)
                    if "key_bias" in step_kwargs:
                        step_kwargs["key_bias"] = step_kwargs["key_bias"].chunk(2)[1]
                noise_pred = self.unet(
                    latent_model_input,
                    t,
                    encoder_hidden_states=embeds,
                    cross_attention_kwargs=step_kwargs or None,
                    return_dict=False,
                )[0]
                if guided:
                    noise_pred_uncond, noise_pred_text = noise_pred.chunk(2)
                    noise_pred = noise_pred_uncond + guidance_scale * (noise_pred_text - noise_pred_uncond)
                latents = self.scheduler.step(noise_pred, t, latents, **extra_step_kwargs, return_dict=False)[0]

                if callback_on_step_end is not None:
                    tensors = {"latents": latents, "prompt_embeds": prompt_embeds}
                    tensors["negative_prompt_embeds"] = negative_prompt_embeds
                    outputs = callback_on_step_end(self, i, t, {k: tensors[k] for k in callback_on_step_end_tensor_inputs})
                    latents = (outputs or {}).get("latents", latents)
                if i == len(timesteps) - 1 or ((i + 1) > num_warmup_steps and (i + 1) % self.scheduler.order == 0):
                    progress_bar.update()

        # 6. Decode
        if output_type == "latent":
            image = latents
        else:
            image = self.vae.decode(latents / self.vae.config.scaling_factor, return_dict=False, generator=generator)[0]
            image = self.image_processor.postprocess(image, output_type=output_type, do_denormalize=[True] * len(image))
        self.maybe_free_model_hooks()
        if not return_dict:
            return (image, None)
        return MultiFusionPipelineOutput(images=image)
