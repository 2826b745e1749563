"""Stage 4 on real data: re-align a fused pipeline's U-Net cross-attention to its encoder, on captioned images.

Only the `attn2` modules of the U-Net train (the paper's fusion step, AltDiffusion's too); each sample is
conditioned on its caption OR on its image as an image prompt (never both), or on nothing for guidance. Data
streams from a webdataset or an imagefolder (`training/captioned_images.py`), each process reading its own share.

Scale: accelerate runs it on one device or many (DDP; `accelerate launch`), with the precision, gradient
accumulation and gradient checkpointing of `RealignConfig`, VAE latents cached on disk after the first epoch
(`cache_latents`), an EMA of the trained weights (what is saved), resumable checkpoints, a JSONL loss log, and
sample images every `sample_every` steps. With `shard` the LM and the U-Net are split over the processes (FSDP2,
`training/sharding.py`) instead of copied to each.

Every random choice of a sample (its crop, conditioning, noise and timestep) is drawn from a generator seeded by
the epoch and the sample's key, so on an imagefolder (whose lines the processes share round-robin) a run on N
processes trains exactly as one process with the same global batch, as long as no sample is skipped as unreadable
and the number of lines divides by the global batch (else the processes' epochs drift apart). A resumed run
continues the data where the checkpoint left it.

    multifusion realign --from FUSED --data SHARDS --out runs/realign [--config realign.json]
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from diffusers import DDPMScheduler

from ..pipeline import MultiFusionPipeline
from ..prompt import ImageSegment, MultimodalPrompt
from ..training.captioned_images import prepare
from ..training.cross_attention import cross_attention_modules
from ..training.latent_cache import LatentCache
from ..training.latents import scaled_latents, to_tensor
from ..training.loop import train
from ..training.losses import diffusion_loss
from ..training.sharding import ShardedState, is_sharded, lm_blocks, shard, unet_blocks
from .assemble import truncated
from .stage_config import Batches, StageConfig, TrainedWeights


@dataclass
class RealignConfig(StageConfig):
    image_prob: float = 0.3  # samples conditioned on their image instead of their caption
    uncond_prob: float = 0.1  # samples conditioned on nothing (classifier-free guidance)
    sample_every: int = 1000  # 0 for none
    sample_prompts: tuple[str, ...] = ("a photo of a red car", "ein Aquarell eines Leuchtturms")
    cache_latents: str | None = None  # a folder: VAE latents encoded once, read later (`training/latent_cache.py`)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.cache_latents and not self.center_crop:
            raise ValueError("cache_latents needs center_crop: a random crop gives other latents every epoch")


def run(source: str | Path, data: str | Path, out: Path, accelerator: Accelerator, config: RealignConfig,
        resume: bool = False) -> Path:  # fmt: skip
    pipe = MultiFusionPipeline.from_pretrained(source).to(accelerator.device)
    pipe.set_progress_bar_config(disable=True)
    for module in (pipe.vae, pipe.encoder, pipe.unet):
        module.requires_grad_(False)
    pipe.vae.eval()
    pipe.encoder.eval()
    unet = pipe.unet
    for m in cross_attention_modules(unet):
        m.requires_grad_(True)
    if config.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    sharded = is_sharded(accelerator, config.shard)
    if sharded:  # the LM (frozen) and the U-Net split over the processes
        shard("encoder", pipe.encoder, lm_blocks(pipe.encoder), accelerator)
        shard("unet", unet, unet_blocks(unet), accelerator)
    trained = [p for m in cross_attention_modules(unet) for p in m.parameters()]  # (sharded: this process's shards)
    weights = TrainedWeights(trained, config, accelerator, sharded)
    if not sharded:
        unet = accelerator.prepare(unet)
    noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    stream = Batches(data, accelerator.process_index, accelerator.num_processes, config.batch_size)
    room = pipe.encoder.config.max_length - 1
    out.mkdir(parents=True, exist_ok=True)
    cache = LatentCache(config.cache_latents, pipe.vae, config.resolution) if config.cache_latents else None

    def loss_fn(step: int) -> torch.Tensor:
        epoch, samples = stream.at(step)
        images, prompts, noise, timesteps = [], [], [], []
        latent_side = config.resolution // pipe.vae_scale_factor
        for sample in samples:  # every draw from the sample's own generator: the same on any number of processes
            rng = random.Random(f"{config.seed}/{epoch}/{sample.key}")
            images.append(prepare(sample.image, config.resolution, config.center_crop, rng))
            draw = rng.random()
            if draw < config.uncond_prob:
                prompts.append(MultimodalPrompt())
            elif draw < config.uncond_prob + config.image_prob:
                prompts.append(MultimodalPrompt.of(ImageSegment(images[-1])))
            else:
                prompts.append(MultimodalPrompt.of(truncated(sample.caption, pipe.tokenizer, room)))
            generator = torch.Generator().manual_seed(rng.randrange(2**63))
            noise.append(torch.randn(pipe.unet.config.in_channels, latent_side, latent_side, generator=generator))
            timesteps.append(int(torch.randint(0, noise_scheduler.config.num_train_timesteps, (1,), generator=generator)))
        device, pixels = accelerator.device, to_tensor(images)
        with torch.no_grad():
            keys = [sample.key for sample in samples]
            latents = cache.latents(keys, pixels) if cache is not None else scaled_latents(pipe.vae, pixels)
            conditioning = pipe.encode(prompts, device=device).embeds
        return diffusion_loss(unet, noise_scheduler, latents, conditioning, noise=torch.stack(noise).to(device),
                              timesteps=torch.tensor(timesteps, device=device))  # fmt: skip

    def after_step(step: int) -> None:
        weights.after_step()
        if config.sample_every and (step + 1) % config.sample_every == 0 and (sharded or accelerator.is_main_process):
            with weights.averaged():  # the weights that will be saved
                images = sample_images(pipe, config)  # sharded: every process runs the pipeline
            if accelerator.is_main_process:
                save_sheet(images, config.resolution, out / "samples" / f"step-{step + 1:07d}.png")

    train("realign", trained, [unet], loss_fn, config.steps, config.lr, out, accelerator, resume,
          config.checkpoint_every, after_step, ShardedState(unet, weights.ema) if sharded else None)  # fmt: skip
    if sharded:
        return weights.save(pipe, out, "realign", config, sharded={"unet": unet, "encoder": pipe.encoder})
    pipe.unet = accelerator.unwrap_model(unet).eval()
    return weights.save(pipe, out, "realign", config)


@torch.no_grad()
def sample_images(pipe: MultiFusionPipeline, config: RealignConfig) -> list:
    """The sample prompts at the current weights, seed 0."""
    return pipe(list(config.sample_prompts), num_inference_steps=20, guidance_scale=5.0,
                generator=torch.Generator().manual_seed(0), height=config.resolution, width=config.resolution).images  # fmt: skip


def save_sheet(images: list, resolution: int, path: Path) -> None:
    """Images side by side in one PNG."""
    from PIL import Image

    sheet = Image.new("RGB", (resolution * len(images), resolution))
    for i, image in enumerate(images):
        sheet.paste(image, (i * resolution, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
