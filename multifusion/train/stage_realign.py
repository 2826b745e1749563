"""Stage 4: re-align only the U-Net's cross-attention to the MultiFusion encoder (the paper's fusion step).

Everything but the `attn2` (cross-attention) modules is frozen. Each sample is conditioned on either its English
caption or its objects' reference images, never both; a share of samples is unconditional for guidance. The
result is the complete `MultiFusionPipeline`, saved in diffusers layout."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, UNet2DConditionModel

from ..encoder import MultiFusionEncoder
from ..pipeline import MultiFusionPipeline
from ..prompt import MultimodalPrompt
from ..shapes.captions import random_caption
from .data import diffusion_loss, encode_latents, noise_scheduler, scenes, schedule, shared_tokenizer
from .loop import train
from .stage_encoder import object_prompt, vision_processor


def run(config: dict[str, Any], out: Path, accelerator: Accelerator, resume: bool = False) -> Path:
    c = config["realign"]
    torch.manual_seed(config["seed"])
    tokenizer = shared_tokenizer(config, out)
    vae = AutoencoderKL.from_pretrained(out / "vae" / "model").eval()
    encoder = MultiFusionEncoder.from_pretrained(out / "encoder" / "model").eval()
    unet = UNet2DConditionModel.from_pretrained(out / "unet" / "model")
    for module in (vae, encoder, unet):
        module.requires_grad_(False)
    cross_attention = [p for name, m in unet.named_modules() if name.endswith("attn2") for p in m.parameters()]
    for p in cross_attention:
        p.requires_grad_(True)
    inference_scheduler = DPMSolverMultistepScheduler(steps_offset=1, **schedule(config))
    pipe = MultiFusionPipeline(vae, unet, inference_scheduler, encoder, tokenizer, vision_processor(config["canvas"]))
    pipe.set_progress_bar_config(disable=True)
    pipe.to(accelerator.device)
    unet = accelerator.prepare(unet)
    scheduler = noise_scheduler(config)
    items = scenes(c["scenes"], config["seed"] + 2)
    latents = encode_latents(vae, items, config["canvas"])
    rng = random.Random(config["seed"])

    def condition(scene) -> MultimodalPrompt:
        draw = rng.random()
        if draw < c["uncond_prob"]:
            return MultimodalPrompt()
        if draw < c["uncond_prob"] + c["image_prob"]:
            return object_prompt(scene, rng)
        return MultimodalPrompt.of(random_caption(scene, "en", rng))  # English only, as in the paper

    def loss_fn(step: int) -> torch.Tensor:
        index = rng.sample(range(len(items)), c["batch_size"])
        conditioning = pipe.encode([condition(items[i][0]) for i in index]).embeds
        return diffusion_loss(unet, scheduler, latents[index].to(accelerator.device), conditioning)

    stage = out / "realign"
    train("realign", cross_attention, [unet], loss_fn, c["steps"], c["lr"], stage, accelerator, resume)
    pipe.unet = accelerator.unwrap_model(unet).eval()
    pipe.save_pretrained(stage / "pipeline")
    return stage / "pipeline"
