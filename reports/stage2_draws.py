"""How well a recipe run's stage 2 (the stand-in U-Net with its own English text encoder) draws, before any later
stage: canonical English captions of random scenes (two in three with one object, one in three with two), euler with
the run's final scheduler, 12 steps, guidance 5 throughout, scored as `multifusion eval` scores images.

    python reports/stage2_draws.py runs/v61 runs/v62 --out stage2.json
"""

import argparse
import json
import random
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
from PIL import Image
from transformers import CLIPTextModel, PreTrainedTokenizerFast

from multifusion.processor import layout_prompts
from multifusion.prompt import MultimodalPrompt
from multifusion.shapes.captions import caption
from multifusion.shapes.scorer import detect, shows
from multifusion.shapes.world import random_scene


@torch.no_grad()
def draws(run: Path, n: int = 96, steps: int = 12, guidance: float = 5.0, max_length: int = 40) -> dict:
    vae = AutoencoderKL.from_pretrained(run / "vae" / "model").eval()
    unet = UNet2DConditionModel.from_pretrained(run / "unet" / "model").eval()
    text_encoder = CLIPTextModel.from_pretrained(run / "unet" / "text_encoder").eval()
    tokenizer = PreTrainedTokenizerFast.from_pretrained(run / "tokenizer")
    scheduler = EulerDiscreteScheduler.from_pretrained(run / "realign" / "pipeline" / "scheduler")
    side = unet.config.sample_size
    rng, right = random.Random(777), {1: [], 2: []}
    for i in range(n):
        scene = random_scene(rng, 2 if i % 3 == 2 else 1)
        ids = layout_prompts([MultimodalPrompt.of(caption(scene, "en")), MultimodalPrompt()], tokenizer,
                             image_tokens=1, max_length=max_length).input_ids  # fmt: skip
        conditioning = text_encoder(ids).last_hidden_state  # (the caption, nothing)
        scheduler.set_timesteps(steps)
        x = torch.randn((1, unet.config.in_channels, side, side), generator=torch.Generator().manual_seed(i))
        x = x * scheduler.init_noise_sigma
        for t in scheduler.timesteps:
            out = unet(scheduler.scale_model_input(torch.cat([x, x]), t), t, conditioning).sample
            x = scheduler.step(out[1:] + guidance * (out[:1] - out[1:]), t, x).prev_sample
        pixels = vae.decode(x / vae.config.scaling_factor).sample.clamp(-1, 1)[0].permute(1, 2, 0).numpy()
        found = detect(Image.fromarray(((pixels + 1) * 127.5).round().astype(np.uint8)))
        right[len(scene.objects)].append(all(shows(found, o) for o in scene.objects))
    return {"single": float(np.mean(right[1])), "n_single": len(right[1]),
            "pair": float(np.mean(right[2])), "n_pair": len(right[2])}  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    report = {}
    for run in args.runs:
        report[str(run)] = draws(run)
        print(run, report[str(run)], flush=True)
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")
