"""Stage 3 on real data: teach a fused pipeline's LM to read images, MAGMA-style, on captioned images.

The LM stays frozen; the image prefix (vision features -> `image_tokens` LM embeddings) and the bottleneck adapters
after the LM's MLPs train (and the vision tower, with `train_vision`), by the LM's next-token loss on each caption
after its image: "<image> caption". The diffusion side is untouched; stage 4 (`stage_realign.py`) then re-aligns
the U-Net to the trained encoder. Same scale options as stage 4 (`StageConfig`; `shard` splits the encoder, the LM's
layers each their own unit); the EMA of the trained weights is what is saved.

Semantic tuning (the paper's semantic bias tuning, as SGPT does it; off by default): with `semantic_weight` > 0, an
image alone and its caption alone must also encode alike, by a symmetric InfoNCE on their pooled states (the
cosine the evaluation compares translations by) against the other samples of the process's batch; with
`bias_tuning` the LM's bias terms train too (BitFit), the LM's only weights that move. Llama, Mistral and Gemma have
no bias terms (Qwen2 has its attention's): for them `bias_tuning` is refused and the adapters carry the tuning.

    multifusion prefix --from FUSED --data SHARDS --out runs/prefix [--config prefix.json]
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator

from ..encoder import mean_pool
from ..errors import PromptError
from ..pipeline import MultiFusionPipeline
from ..prompt import ImageSegment, MultimodalPrompt, TextSegment
from ..training.captioned_images import prepare
from ..training.encoder_step import EncoderStep
from ..training.loop import train
from ..training.losses import info_nce
from ..training.sharding import ShardedState, is_sharded, lm_blocks, shard
from .assemble import truncated
from .stage_config import Batches, StageConfig, TrainedWeights


@dataclass
class PrefixConfig(StageConfig):
    lr: float = 1e-4
    resolution: int = 224  # the vision tower's input side
    train_vision: bool = False  # MAGMA fine-tunes the vision tower too; off keeps it as pretrained
    semantic_weight: float = 0.0  # > 0: an image and its caption encode alike (InfoNCE on pooled states)
    semantic_temperature: float = 0.05
    bias_tuning: bool = False  # the LM's bias terms train too (BitFit)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.semantic_weight >= 0 or not self.semantic_temperature > 0:
            raise ValueError("semantic_weight must be 0 or more and semantic_temperature positive")


def trained_parameters(encoder, config: PrefixConfig) -> list[torch.nn.Parameter]:
    """The image prefix, the adapters, and (as configured) the vision tower and the LM's biases."""
    parts = [encoder.image_prefix] + ([encoder.adapters] if encoder.adapters is not None else [])
    parameters = [p for part in parts + ([encoder.vision] if config.train_vision else []) for p in part.parameters()]
    if config.bias_tuning:
        biases = [p for name, p in encoder.lm.named_parameters() if name.endswith(".bias")]
        if not biases:
            raise PromptError(f"--config: bias_tuning: this LM ({type(encoder.lm).__name__}) has no bias terms; "
                              "leave bias_tuning off (the adapters train either way)")  # fmt: skip
        parameters += biases
    return parameters


def run(source: str | Path, data: str | Path, out: Path, accelerator: Accelerator, config: PrefixConfig,
        resume: bool = False) -> Path:  # fmt: skip
    pipe = MultiFusionPipeline.from_pretrained(source)
    inner = pipe.encoder
    inner.requires_grad_(False)
    for p in trained_parameters(inner, config):
        p.requires_grad_(True)
    if config.gradient_checkpointing:
        inner.lm.gradient_checkpointing_enable()
    inner.to(accelerator.device)
    sharded = is_sharded(accelerator, config.shard)
    if sharded:
        shard("encoder", inner, lm_blocks(inner), accelerator)
    trained = trained_parameters(inner, config)  # (sharded: this process's shards)
    encoder = inner if sharded else accelerator.prepare(inner)
    weights = TrainedWeights(trained, config, accelerator, sharded)
    encode = EncoderStep(encoder, inner, pipe.tokenizer, pipe.vision_processor, accelerator.device)
    stream = Batches(data, accelerator.process_index, accelerator.num_processes, config.batch_size)
    room = inner.config.max_length - 1 - inner.config.image_tokens - 1  # after the prefix token, the image, a space
    if room < 4:
        raise ValueError(f"the encoder's max_length ({inner.config.max_length}) leaves {room} tokens for a caption after "
                         f"its {inner.config.image_tokens} image tokens")  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)

    def loss_fn(step: int) -> torch.Tensor:
        epoch, samples = stream.at(step)
        images, captions = [], []
        for sample in samples:
            rng = random.Random(f"{config.seed}/{epoch}/{sample.key}")
            images.append(prepare(sample.image, config.resolution, config.center_crop, rng))
            captions.append(truncated(sample.caption, pipe.tokenizer, room))
        shown = [MultimodalPrompt((ImageSegment(image), TextSegment(" " + text))) for image, text in zip(images, captions)]
        loss = encode.lm_loss(*encode(shown), per_prompt=True)  # each caption counts alike
        if config.semantic_weight:
            seen = F.normalize(mean_pool(encode([MultimodalPrompt.of(ImageSegment(image)) for image in images])[1]), dim=-1)
            said = F.normalize(mean_pool(encode([MultimodalPrompt.of(text) for text in captions])[1]), dim=-1)
            loss = loss + config.semantic_weight * info_nce(seen @ said.T, config.semantic_temperature)
        return loss

    train("prefix", trained, [encoder], loss_fn, config.steps, config.lr, out, accelerator, resume, config.checkpoint_every,
          lambda _: weights.after_step(), ShardedState(inner, weights.ema) if sharded else None)  # fmt: skip
    if config.gradient_checkpointing:
        inner.lm.gradient_checkpointing_disable()
    if sharded:
        return weights.save(pipe, out, "prefix", config, sharded={"encoder": inner})
    pipe.encoder = accelerator.unwrap_model(encoder).eval()
    return weights.save(pipe, out, "prefix", config)
