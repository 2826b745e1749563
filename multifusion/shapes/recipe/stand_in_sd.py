"""Stage 2: the stand-in for pretrained Stable Diffusion. A U-Net and a small CLIP-style text encoder learn
together to generate shapes-world latents from English captions only."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from ...processor import layout_prompts
from ...prompt import MultimodalPrompt
from ...training.loop import train
from ...training.losses import diffusion_loss
from ..captions import N_FRAMES, caption
from .data import encode_latents, noise_scheduler, scenes, shared_tokenizer


def build_unet(config: dict[str, Any], sample_size: int, latent_channels: int) -> UNet2DConditionModel:
    c = config["unet"]
    levels = len(c["block_out_channels"])
    return UNet2DConditionModel(
        sample_size=sample_size, in_channels=latent_channels, out_channels=latent_channels, layers_per_block=1,
        block_out_channels=tuple(c["block_out_channels"]), cross_attention_dim=config["encoder"]["hidden"],
        attention_head_dim=c["attention_head_dim"], norm_num_groups=c["norm_num_groups"],
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (levels - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (levels - 1) + ("UpBlock2D",),
    )  # fmt: skip


def build_text_encoder(config: dict[str, Any], tokenizer) -> CLIPTextModel:
    """The stand-in for CLIP's text encoder; its width is the U-Net's cross-attention width."""
    c = config["unet"]
    if c["text_hidden"] != config["encoder"]["hidden"]:
        raise ValueError("the stand-in text encoder must match the MultiFusion encoder's width (cross_attention_dim)")
    return CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=c["text_hidden"], intermediate_size=2 * c["text_hidden"],
        num_hidden_layers=c["text_layers"], num_attention_heads=4, max_position_embeddings=c["max_length"],
        projection_dim=c["text_hidden"], pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    ))  # fmt: skip


def load_text_encoder(out: Path, device: torch.device | str = "cpu") -> CLIPTextModel:
    """Stage 2's finished text encoder from the run folder `out`, frozen, for the stages that read its space."""
    text_encoder = CLIPTextModel.from_pretrained(out / "unet" / "text_encoder").to(device).eval()
    text_encoder.requires_grad_(False)
    return text_encoder


def run(config: dict[str, Any], out: Path, accelerator: Accelerator, resume: bool = False) -> Path:
    c = config["unet"]
    torch.manual_seed(config["seed"])
    tokenizer = shared_tokenizer(config, out)
    vae = AutoencoderKL.from_pretrained(out / "vae" / "model").to(accelerator.device).eval()
    vae.requires_grad_(False)
    scale = 2 ** (len(vae.config.block_out_channels) - 1)
    unet = build_unet(config, config["canvas"] // scale, vae.config.latent_channels)
    text_encoder = build_text_encoder(config, tokenizer)
    unet, text_encoder = accelerator.prepare(unet, text_encoder)
    scheduler = noise_scheduler(config)
    items = scenes(c["scenes"], config["seed"] + 1)
    latents = encode_latents(vae, items, config["canvas"])
    rng = random.Random(config["seed"])

    def loss_fn(step: int) -> torch.Tensor:
        index = rng.sample(range(len(items)), c["batch_size"])
        prompts = [
            MultimodalPrompt() if rng.random() < c["uncond_prob"]
            else MultimodalPrompt.of(caption(items[i][0], "en", rng.randrange(N_FRAMES), rng.random() < 0.5))
            for i in index
        ]  # fmt: skip
        ids = layout_prompts(prompts, tokenizer, image_tokens=1, max_length=c["max_length"]).input_ids
        conditioning = text_encoder(ids.to(accelerator.device)).last_hidden_state
        return diffusion_loss(unet, scheduler, latents[index].to(accelerator.device), conditioning)

    stage = out / "unet"
    params = [*unet.parameters(), *text_encoder.parameters()]
    train("unet", params, [unet, text_encoder], loss_fn, c["steps"], c["lr"], stage, accelerator, resume)
    accelerator.unwrap_model(unet).save_pretrained(stage / "model")
    accelerator.unwrap_model(text_encoder).save_pretrained(stage / "text_encoder")
    return stage / "model"
