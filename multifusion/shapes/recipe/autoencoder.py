"""Stage 1: the autoencoder. An `AutoencoderKL` learns to reconstruct shapes-world renders (L2 + a small KL term,
as Stable Diffusion's VAE); its `scaling_factor` is then set so that latents have unit variance.

The L2 term weights the objects' pixels `object_weight` times the background's: objects are a small share of each
render but carry everything a prompt names. Unweighted, the VAE reconstructed red with +24/255 blue and purple with
−21 red, +19 blue (median over the object; `probe --vae`), and the U-Net, sampling with guidance, amplified that
into red objects scored purple."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from diffusers import AutoencoderKL

from ...training.loop import train
from ..world import BACKGROUND
from .data import encode_latents, render_batch, scenes


def object_weighted_mse(reconstruction: torch.Tensor, pixels: torch.Tensor, object_weight: float) -> torch.Tensor:
    """Mean squared error with every pixel that is not background weighted `object_weight` (pixels in [-1, 1])."""
    background = torch.tensor(BACKGROUND, dtype=pixels.dtype, device=pixels.device).view(1, 3, 1, 1) / 127.5 - 1.0
    is_object = (pixels - background).abs().sum(dim=1, keepdim=True) > 0.1
    weight = 1.0 + (object_weight - 1.0) * is_object
    return (weight * (reconstruction - pixels) ** 2).mean()


def run(config: dict[str, Any], out: Path, accelerator: Accelerator, resume: bool = False) -> Path:
    c, canvas = config["vae"], config["canvas"]
    torch.manual_seed(config["seed"])
    levels = len(c["block_out_channels"])
    vae = AutoencoderKL(
        block_out_channels=tuple(c["block_out_channels"]), layers_per_block=1, latent_channels=c["latent_channels"],
        norm_num_groups=c["norm_num_groups"], sample_size=canvas,
        down_block_types=("DownEncoderBlock2D",) * levels, up_block_types=("UpDecoderBlock2D",) * levels,
    )  # fmt: skip
    vae = accelerator.prepare(vae)
    pool = scenes(4096, config["seed"])
    rng = random.Random(config["seed"])

    def loss_fn(step: int) -> torch.Tensor:
        pixels = render_batch(rng.sample(pool, c["batch_size"]), canvas)
        top, left = rng.randrange(canvas - c["crop"] + 1), rng.randrange(canvas - c["crop"] + 1)
        pixels = pixels[:, :, top : top + c["crop"], left : left + c["crop"]].to(accelerator.device)
        posterior = vae.encode(pixels).latent_dist
        reconstruction = vae.decode(posterior.sample()).sample
        reconstruction_loss = object_weighted_mse(reconstruction, pixels, c.get("object_weight", 1.0))
        return reconstruction_loss + c["kl_weight"] * posterior.kl().mean()

    stage = out / "vae"
    train("vae", vae.parameters(), [vae], loss_fn, c["steps"], c["lr"], stage, accelerator, resume)
    vae = accelerator.unwrap_model(vae)
    latents = encode_latents(vae, pool[:512], canvas) / vae.config.scaling_factor
    vae.register_to_config(scaling_factor=float(1.0 / latents.std()))
    vae.save_pretrained(stage / "model")
    return stage / "model"
