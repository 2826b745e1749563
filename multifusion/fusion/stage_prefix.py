"""Stage 3 on real data: teach a fused pipeline's LM to read images, MAGMA-style, on captioned images.

The LM stays frozen; the image prefix (vision features -> `image_tokens` LM embeddings) and the bottleneck adapters
after the LM's MLPs train (and the vision tower, with `train_vision`), by the LM's next-token loss on each caption
after its image: "<image> caption". The diffusion side is untouched; stage 4 (`stage_realign.py`) then re-aligns
the U-Net to the trained encoder. Same scale options as stage 4 (`StageConfig`); the EMA of the trained weights is
what is saved.

    multifusion prefix --from FUSED --data SHARDS --out runs/prefix [--config prefix.json]
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator

from ..pipeline import MultiFusionPipeline
from ..prompt import ImageSegment, MultimodalPrompt, TextSegment
from ..train.captioned_images import prepare
from ..train.loop import train
from ..train.stage_encoder import EncoderStep
from .assemble import truncated
from .stage_config import Batches, StageConfig, TrainedWeights


@dataclass
class PrefixConfig(StageConfig):
    lr: float = 1e-4
    resolution: int = 224  # the vision tower's input side
    train_vision: bool = False  # MAGMA fine-tunes the vision tower too; off keeps it as pretrained


def trained_parts(encoder, config: PrefixConfig) -> list[torch.nn.Module]:
    parts = [encoder.image_prefix] + ([encoder.adapters] if encoder.adapters is not None else [])
    return parts + ([encoder.vision] if config.train_vision else [])


def run(source: str | Path, data: str | Path, out: Path, accelerator: Accelerator, config: PrefixConfig,
        resume: bool = False) -> Path:  # fmt: skip
    pipe = MultiFusionPipeline.from_pretrained(source)
    inner = pipe.encoder
    inner.requires_grad_(False)
    trained = [p for part in trained_parts(inner, config) for p in part.parameters()]
    for p in trained:
        p.requires_grad_(True)
    if config.gradient_checkpointing:
        inner.lm.gradient_checkpointing_enable()
    encoder = accelerator.prepare(inner.to(accelerator.device))
    weights = TrainedWeights(trained, config, accelerator)
    encode = EncoderStep(encoder, inner, pipe.tokenizer, pipe.vision_processor, accelerator.device)
    stream = Batches(data, accelerator.process_index, accelerator.num_processes, config.batch_size)
    room = inner.config.max_length - 1 - inner.config.image_tokens - 1  # after the prefix token, the image, a space
    if room < 4:
        raise ValueError(f"the encoder's max_length ({inner.config.max_length}) leaves {room} tokens for a caption after "
                         f"its {inner.config.image_tokens} image tokens")  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)

    def loss_fn(step: int) -> torch.Tensor:
        epoch, samples = stream.at(step)
        prompts = []
        for sample in samples:
            rng = random.Random(f"{config.seed}/{epoch}/{sample.key}")
            image = prepare(sample.image, config.resolution, config.center_crop, rng)
            prompts.append(MultimodalPrompt((ImageSegment(image), TextSegment(" " + truncated(sample.caption, pipe.tokenizer, room)))))
        return encode.lm_loss(*encode(prompts), per_prompt=True)  # each caption alike, on any number of processes

    train("prefix", trained, [encoder], loss_fn, config.steps, config.lr, out, accelerator, resume, config.checkpoint_every,
          lambda _: weights.after_step())  # fmt: skip
    pipe.encoder = accelerator.unwrap_model(encoder).eval()
    if config.gradient_checkpointing:
        pipe.encoder.lm.gradient_checkpointing_disable()
    return weights.save(pipe, out, "prefix", config)
