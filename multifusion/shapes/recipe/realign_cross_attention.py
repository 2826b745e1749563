"""Stage 4: re-align only the U-Net's cross-attention to the MultiFusion encoder (the paper's fusion step).

Everything but the `attn2` (cross-attention) modules is frozen. Training starts from a closed-form fit: the new
encoder's states for English captions are mapped onto the stage-2 text encoder's states for the same captions (both
use one tokenizer and one layout, so positions correspond) by least squares, and the map is folded into every
`attn2`'s key and value projections, so the U-Net starts out reading the new encoder roughly as it read the old one.
Each sample is then conditioned on either its English caption or its objects' reference images, never both; a
share of samples is unconditional for guidance. The result is the complete `MultiFusionPipeline`, saved in
diffusers layout."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, UNet2DConditionModel

from ...encoder import MultiFusionEncoder
from ...pipeline import MultiFusionPipeline
from ...processor import layout_prompts
from ...prompt import MultimodalPrompt
from ...training.cross_attention import cross_attention_modules
from ...training.loop import train
from ...training.losses import diffusion_loss
from ..captions import N_FRAMES, caption, random_caption
from ..world import random_scene
from .data import encode_latents, fitting, noise_scheduler, save_pipeline, scenes, schedule, shared_tokenizer
from .multilingual_encoder import object_prompt, vision_processor
from .stand_in_sd import load_text_encoder


@torch.no_grad()
def fit_cross_attention(unet, pipe: MultiFusionPipeline, text_encoder, config: dict[str, Any], rng: random.Random, n: int = 2048) -> float:
    """Fold a least-squares map from the new encoder's states to the stage-2 text encoder's (English captions and
    a share of empty prompts) into the key and value projections of every `attn2`. Returns the fit's R²."""
    # English captions in the five frames stage 2's text encoder learned
    prompts = [MultimodalPrompt() if rng.random() < 0.1
               else MultimodalPrompt.of(caption(random_scene(rng), "en", rng.randrange(N_FRAMES), rng.random() < 0.5))
               for _ in range(n)]  # fmt: skip
    new = pipe.encode(prompts).embeds.flatten(0, 1).float()  # (n * T, D)
    ids = layout_prompts(prompts, pipe.tokenizer, image_tokens=1, max_length=config["unet"]["max_length"]).input_ids
    old = text_encoder(ids.to(text_encoder.device)).last_hidden_state.flatten(0, 1).float()
    if new.shape != old.shape:
        raise ValueError(f"encoder and stage-2 text encoder lay prompts out differently: {new.shape} vs {old.shape}")
    mapping = torch.linalg.lstsq(new, old).solution  # old ≈ new @ mapping
    r2 = 1 - (new @ mapping - old).pow(2).sum() / (old - old.mean(0)).pow(2).sum()
    for module in cross_attention_modules(unet):
        for projection in (module.to_k, module.to_v):  # k = old @ W.T ≈ new @ (W @ mapping.T).T
            projection.weight.copy_(projection.weight @ mapping.T.to(projection.weight.dtype))
    return float(r2)


def condition(scene, rng: random.Random, tokenizer, max_length: int, c: dict[str, Any]) -> MultimodalPrompt:
    """What one re-alignment sample is conditioned on: nothing (share `uncond_prob`), its objects' varied images
    (share `image_prob`; of two-object scenes a share `mixed_prob` with one object in words), or else a
    training-frame caption: in English as in the paper, or in one of the section's `caption_languages`."""
    draw = rng.random()
    if draw < c["uncond_prob"]:
        return MultimodalPrompt()
    if draw < c["uncond_prob"] + c["image_prob"]:
        return object_prompt(scene, rng, c["mixed_prob"])
    # without the key no language is drawn, so English-only runs keep their random stream
    lang = rng.choice(c["caption_languages"]) if "caption_languages" in c else "en"
    terse = c.get("terse_share", 0.0)  # refine rounds type a share of captions as tags
    return MultimodalPrompt.of(fitting(lambda: random_caption(scene, lang, rng, mixed_prob=0.0, terse_share=terse),
                                       tokenizer, max_length - 1))


def run(config: dict[str, Any], out: Path, accelerator: Accelerator, resume: bool = False) -> Path:
    c = config["realign"]
    torch.manual_seed(config["seed"])
    tokenizer = shared_tokenizer(config, out)
    vae = AutoencoderKL.from_pretrained(out / "vae" / "model").eval()
    encoder = MultiFusionEncoder.from_pretrained(out / "encoder" / "model").eval()
    unet = UNet2DConditionModel.from_pretrained(out / "unet" / "model")
    for module in (vae, encoder, unet):
        module.requires_grad_(False)
    cross_attention = [p for m in cross_attention_modules(unet) for p in m.parameters()]
    for p in cross_attention:
        p.requires_grad_(True)
    inference_scheduler = DPMSolverMultistepScheduler(steps_offset=1, **schedule(config))
    pipe = MultiFusionPipeline(vae, unet, inference_scheduler, encoder, tokenizer, vision_processor(config["canvas"]))
    pipe.set_progress_bar_config(disable=True)
    pipe.to(accelerator.device)
    rng = random.Random(config["seed"])
    stage = out / "realign"
    stage.mkdir(parents=True, exist_ok=True)
    r2 = fit_cross_attention(unet, pipe, load_text_encoder(out, accelerator.device), config, rng)
    (stage / "init.json").write_text(json.dumps({"least_squares_r2": round(r2, 4)}))
    unet = accelerator.prepare(unet)
    scheduler = noise_scheduler(config)
    items = scenes(c["scenes"], config["seed"] + 2)
    latents = encode_latents(vae, items, config["canvas"])

    def loss_fn(step: int) -> torch.Tensor:
        index = rng.sample(range(len(items)), c["batch_size"])
        conditioning = pipe.encode([condition(items[i][0], rng, tokenizer, encoder.config.max_length, c) for i in index]).embeds
        return diffusion_loss(unet, scheduler, latents[index].to(accelerator.device), conditioning)

    train("realign", cross_attention, [unet], loss_fn, c["steps"], c["lr"], stage, accelerator, resume)
    pipe.unet = accelerator.unwrap_model(unet).eval()
    return save_pipeline(pipe, stage / "pipeline")
