"""Training data from the shapes world: image tensors, caption corpora, and latents cached per stage."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..shapes.captions import LANGUAGES, random_caption
from ..shapes.render import render_scene
from ..shapes.vocabulary import write_vocabulary
from ..shapes.world import Scene, random_scene


def save_pipeline(pipe, path: Path) -> Path:
    """Save a trained pipeline with the shapes vocabulary it can know (`vocabulary.txt`, for the studio)."""
    pipe.save_pretrained(path)
    write_vocabulary(path)
    return path


def to_tensor(images: list[Image.Image]) -> torch.Tensor:
    """PIL images -> (N, 3, H, W) in [-1, 1], the VAE's range."""
    array = np.stack([np.asarray(im.convert("RGB"), dtype=np.float32) for im in images])
    return torch.from_numpy(array).permute(0, 3, 1, 2) / 127.5 - 1.0


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


@torch.no_grad()
def scaled_latents(vae, pixels: torch.Tensor) -> torch.Tensor:
    """What the U-Net trains on: the VAE posterior's mean of `pixels` (B, 3, H, W) in [-1, 1], scaled."""
    return vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist.mean * vae.config.scaling_factor


def encode_latents(vae, items: list[tuple[Scene, int]], canvas: int, batch_size: int = 128) -> torch.Tensor:
    """Scaled VAE latents of the rendered scenes, computed once per stage."""
    return torch.cat([scaled_latents(vae, render_batch(items[start : start + batch_size], canvas))
                      for start in range(0, len(items), batch_size)])  # fmt: skip


def shared_tokenizer(config: dict, out) -> "PreTrainedTokenizerFast":  # noqa: F821
    """The byte-level BPE tokenizer of this run, trained once on the multilingual caption corpus."""
    from transformers import PreTrainedTokenizerFast

    from ..tokenizer import build_tokenizer

    path = out / "tokenizer"
    if path.is_dir():
        return PreTrainedTokenizerFast.from_pretrained(path)
    tokenizer = build_tokenizer(caption_corpus(config["seed"]), config["encoder"]["vocab_size"])
    tokenizer.save_pretrained(path)
    return tokenizer


def diffusion_loss(unet, scheduler, latents: torch.Tensor, conditioning: torch.Tensor, snr_gamma: float = 5.0,
                   teacher: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                   teacher_weights: torch.Tensor | None = None, noise: torch.Tensor | None = None,
                   timesteps: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """Denoising loss at random timesteps (epsilon or v target, by the scheduler's `prediction_type`), weighted by
    min-SNR-gamma (Hang et al. 2023) to converge faster.

    With a `teacher(noisy, t)`, each sample's prediction is also pulled towards the teacher's on the same noisy
    latents, by `teacher_weights` (one per sample): the teacher's prediction is a low-variance target that keeps
    what it already draws right while the student learns new inputs. `noise` and `timesteps` may be given (drawn
    per sample, so that a sample trains alike in any batch or process); else they are drawn here.

    For v-prediction the clamp is on SNR + 1 (the v loss's own weight on the clean-image error): clamping SNR, as
    for epsilon, would give the noisiest timesteps, where the layout and colours are read from the prompt, a weight
    near zero, and exactly zero at t = T under a zero-terminal-SNR schedule."""
    noise = torch.randn_like(latents) if noise is None else noise
    t = torch.randint(0, scheduler.config.num_train_timesteps, (latents.shape[0],), device=latents.device) if timesteps is None else timesteps
    noisy = scheduler.add_noise(latents, noise, t)
    prediction = unet(noisy, t, conditioning).sample
    alphas = scheduler.alphas_cumprod.to(latents.device)[t]
    snr = alphas / (1 - alphas)
    if scheduler.config.prediction_type == "v_prediction":
        target, weight = scheduler.get_velocity(latents, noise, t), torch.clamp(snr + 1, max=snr_gamma) / (snr + 1)
    else:
        target, weight = noise, torch.clamp(snr, max=snr_gamma) / snr
    loss = ((prediction - target) ** 2).mean(dim=(1, 2, 3))
    if teacher is not None:
        with torch.no_grad():
            guide = teacher(noisy, t)
        loss = loss + teacher_weights.to(loss) * ((prediction - guide) ** 2).mean(dim=(1, 2, 3))
    return (weight * loss).mean()


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
