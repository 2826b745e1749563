"""What the tiny recipe's stages share: shapes-world scenes rendered and encoded to latents, the caption corpus and
the run's tokenizer, captions drawn to fit, the noise schedule of the tiny config, and pipelines saved with the
world's vocabulary."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import torch

from ...training.latents import scaled_latents, to_tensor
from ..captions import LANGUAGES, random_caption
from ..render import render_scene
from ..vocabulary import write_vocabulary
from ..world import Scene, random_scene


def save_pipeline(pipe, path: Path) -> Path:
    """Save a trained pipeline with the shapes vocabulary it can know (`vocabulary.txt`, for the studio)."""
    pipe.save_pretrained(path)
    write_vocabulary(path)
    return path


def scenes(count: int, seed: int) -> list[tuple[Scene, int]]:
    """`count` (scene, render seed) pairs, fixed by `seed`."""
    rng = random.Random(f"scenes/{seed}")
    return [(random_scene(rng), rng.randrange(2**31)) for _ in range(count)]


def render_batch(items: list[tuple[Scene, int]], canvas: int) -> torch.Tensor:
    return to_tensor([render_scene(scene, seed=s, canvas=canvas) for scene, s in items])


def caption_corpus(seed: int, count: int = 20000) -> list[str]:
    """Captions of random scenes in all languages from the training frames only (the tokenizer's corpus)."""
    rng = random.Random(f"corpus/{seed}")
    return [random_caption(random_scene(rng), rng.choice(LANGUAGES), rng) for _ in range(count)]


def fitting(draw: Callable[[], str], tokenizer, room: int, tries: int = 50,
            laid_out: Callable[[str], str] = lambda text: text) -> str:  # fmt: skip
    """A caption from `draw()` that takes at most `room` tokens as it will be laid out (`laid_out(caption)`: free
    phrasing with a small vocabulary can outgrow a prompt layout); draws again otherwise."""
    for _ in range(tries):
        text = draw()
        if len(tokenizer(laid_out(text), add_special_tokens=False).input_ids) <= room:
            return text
    raise ValueError(f"no caption of {tries} drawn fits in {room} tokens: raise max_length or vocab_size")


def encode_latents(vae, items: list[tuple[Scene, int]], canvas: int, batch_size: int = 128) -> torch.Tensor:
    """Scaled VAE latents of the rendered scenes, computed once per stage."""
    return torch.cat([scaled_latents(vae, render_batch(items[start : start + batch_size], canvas))
                      for start in range(0, len(items), batch_size)])  # fmt: skip


def shared_tokenizer(config: dict, out) -> "PreTrainedTokenizerFast":  # noqa: F821
    """The byte-level BPE tokenizer of this run, trained once on the multilingual caption corpus; its normalizer
    re-spells the world's words typed in other casings ("BLUE STAR") and leaves every training caption as it is."""
    from transformers import PreTrainedTokenizerFast

    from ...tokenizer import build_tokenizer, recasing_normalizer
    from ..vocabulary import grammar_spellings

    path = out / "tokenizer"
    if path.is_dir():
        return PreTrainedTokenizerFast.from_pretrained(path)
    tokenizer = build_tokenizer(caption_corpus(config["seed"]), config["encoder"]["vocab_size"])
    tokenizer.backend_tokenizer.normalizer = recasing_normalizer(grammar_spellings())  # "BLUE STAR" is "blue star"
    tokenizer.save_pretrained(path)
    return tokenizer


def schedule(config: dict) -> dict:
    """The noise schedule shared by training and inference. `zero_terminal_snr` (Lin et al. 2024) rescales the
    betas so that the last timestep holds no signal: without it, low frequencies of the training latents (an
    object's colour) leak through at t = T, the U-Net learns to read colour from that leak instead of the text,
    and pure noise at inference has none. It goes with v-prediction and trailing timesteps."""
    zero_snr = config["unet"].get("zero_terminal_snr", False)
    return {
        "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012,
        "prediction_type": config["unet"].get("prediction_type", "epsilon"),
        "rescale_betas_zero_snr": zero_snr, "timestep_spacing": "trailing" if zero_snr else "linspace",
    }  # fmt: skip


def noise_scheduler(config: dict):
    """The training noise schedule; inference uses DPM-Solver++ on the same schedule."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, **schedule(config))
