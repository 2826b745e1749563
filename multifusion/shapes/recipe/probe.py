"""Probe stage 2 while it trains: generate single-object English prompts with the stand-in text encoder and U-Net
(the latest checkpoint or the saved models) and read them with the scorer.

    python -m multifusion.shapes.recipe.probe --config tiny --out runs/tiny [--n 32] [--guidance 5]
    python -m multifusion.shapes.recipe.probe --config tiny --out runs/tiny --objects 2
    python -m multifusion.shapes.recipe.probe --config tiny --out runs/tiny --vae

Prints how often the main object has the right shape, the right colour, and both: the figures that say whether
stage 2 is ready before stages 3 and 4 build on it. With `--objects 2`, two-object captions instead: how often both
objects have their shapes and colours (`pair`), and also their named sides (`pair_sides`). With `--vae`, stage 1's
colour error instead: per colour, how far a reconstructed object's median RGB lies from the render's (guided
sampling amplifies such a bias).
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, StableDiffusionPipeline, UNet2DConditionModel
from safetensors.torch import load_file

from ...processor import layout_prompts
from ...prompt import MultimodalPrompt
from ...training.latents import to_tensor
from ..captions import caption
from ..render import render_scene
from ..scorer import detect, main_object, shows
from ..world import BACKGROUND, COLOURS, SHAPES, Scene, ShapeObject, random_scene
from .config import load_config
from .data import schedule, shared_tokenizer
from .stand_in_sd import build_text_encoder, build_unet, load_text_encoder


def load_stage2(config: dict, out: Path) -> tuple:
    """(unet, text_encoder, vae, tokenizer) from `out`: the saved models, or the latest checkpoint mid-training."""
    tokenizer = shared_tokenizer(config, out)
    vae = AutoencoderKL.from_pretrained(out / "vae" / "model").eval()
    state = out / "unet" / "unet-state"
    if (state / "model.safetensors").exists():
        scale = 2 ** (len(vae.config.block_out_channels) - 1)
        unet = build_unet(config, config["canvas"] // scale, vae.config.latent_channels)
        text_encoder = build_text_encoder(config, tokenizer)
        unet.load_state_dict(load_file(state / "model.safetensors"))
        text_encoder.load_state_dict(load_file(state / "model_1.safetensors"))
    else:
        unet = UNet2DConditionModel.from_pretrained(out / "unet" / "model")
        text_encoder = load_text_encoder(out)
    return unet.eval(), text_encoder.eval(), vae, tokenizer


@torch.no_grad()
def probe(config: dict, out: Path, n: int = 32, guidance: float = 5.0, steps: int = 20, objects: int = 1) -> dict[str, float]:
    """Shares of `n` single-object English prompts whose main object has the right shape, colour, and both; with
    `objects` 2, of two-object prompts with both objects right, and right on their sides."""
    unet, text_encoder, vae, tokenizer = load_stage2(config, out)
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
        scheduler=DPMSolverMultistepScheduler(steps_offset=1, **schedule(config)),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    rng = random.Random("probe")
    scenes = [random_scene(rng, objects) for _ in range(n)]
    prompts = [MultimodalPrompt.of(caption(s, "en")) for s in scenes] + [MultimodalPrompt()] * n
    ids = layout_prompts(prompts, tokenizer, image_tokens=1, max_length=config["unet"]["max_length"]).input_ids
    embeds = text_encoder(ids).last_hidden_state
    images = pipe(
        prompt_embeds=embeds[:n], negative_prompt_embeds=embeds[n:], guidance_scale=guidance, num_inference_steps=steps,
        generator=[torch.Generator().manual_seed(i) for i in range(n)],
    ).images  # fmt: skip
    if objects == 2:
        found = [detect(image) for image in images]
        drawn = [all(shows(f, o) for o in s.objects) for f, s in zip(found, scenes)]
        sided = [all(shows(f, o, sided=True) for o in s.objects) for f, s in zip(found, scenes)]
        return {"pair": sum(drawn) / n, "pair_sides": sum(sided) / n, "n": n}
    shape = colour = both = 0
    for image, scene in zip(images, scenes):
        main = main_object(image)
        target = scene.objects[0]
        shape += bool(main and main.shape == target.shape)
        colour += bool(main and main.colour == target.colour)
        both += bool(main and main.shape == target.shape and main.colour == target.colour)
    return {"shape": shape / n, "colour": colour / n, "both": both / n, "n": n}


def _object_rgb(pixels: np.ndarray) -> np.ndarray:
    """Median RGB (0–255) of the pixels that are clearly not background."""
    mask = np.abs(pixels - np.array(BACKGROUND)).sum(axis=-1) > 150
    return np.median(pixels[mask], axis=0)


@torch.no_grad()
def vae_colour_error(out: Path, canvas: int = 64) -> dict[str, list[int]]:
    """Per colour, reconstructed minus rendered median RGB of a large object (mean over the five shapes)."""
    vae = AutoencoderKL.from_pretrained(out / "vae" / "model").eval()
    errors = {}
    for colour in COLOURS:
        renders = [render_scene(Scene((ShapeObject(shape, colour, "large"),)), seed=i, canvas=canvas)
                   for i, shape in enumerate(SHAPES)]  # fmt: skip
        decoded = vae.decode(vae.encode(to_tensor(renders)).latent_dist.mean).sample
        decoded = ((decoded.permute(0, 2, 3, 1).numpy() + 1) * 127.5).clip(0, 255)
        diffs = [_object_rgb(d) - _object_rgb(np.asarray(r, dtype=np.float64)) for r, d in zip(renders, decoded)]
        errors[colour] = np.mean(diffs, axis=0).round().astype(int).tolist()
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tiny")
    parser.add_argument("--out", required=True)
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--guidance", type=float, default=5.0)
    parser.add_argument("--objects", type=int, choices=(1, 2), default=1, help="objects per prompt")
    parser.add_argument("--vae", action="store_true", help="stage 1's colour error instead")
    args = parser.parse_args()
    torch.set_num_threads(1)  # leave the cores to the training run
    if args.vae:
        print(vae_colour_error(Path(args.out), load_config(args.config)["canvas"]))
    else:
        print(probe(load_config(args.config), Path(args.out), args.n, args.guidance, objects=args.objects))


if __name__ == "__main__":
    main()
