"""`multifusion plan`: what a fusion costs before it runs: parameters, memory per GPU per stage, and hours.

Nothing is downloaded but configs: every model is built on the meta device from its config (exact parameter
counts), and activation memory is estimated from a meta-device forward pass at the stage's batch and resolution:
the sum of every leaf module's output (the tensors autograd keeps for the backward pass). That is an estimate: it
leaves out tensors kept inside a module (e.g. attention probabilities when no fused kernel is used) and allocator
overhead, hence the headroom `--headroom` keeps free. Memory per GPU, for the stage's trainable parameters P and
frozen parameters F (all fp32, as the stages keep them): 4F + 4P (weights) + 4P (gradients) + 8P (AdamW) + 4P
(EMA), plus activations. With `--shard` (the stages' `shard: true`, FSDP2: `training/sharding.py`) the LM's and
the U-Net's weights, frozen and trained, and the trained ones' state are split over the GPUs, and each GPU also
holds what is gathered at once: the sharded modules' roots (embeddings, vision tower, U-Net stem) and two of their
largest layers or blocks (FSDP2 fetches the next while one runs); the VAE stays whole.
Hours come from a run's measured step time (its `log.jsonl`), when one is given.

    multifusion plan --config fusion.json [--gpus 8 --gpu-memory 80] [--measured runs/realign/log.jsonl]
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import init_empty_weights
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import AutoConfig

from ..encoder import MultiFusionEncoder
from ..training.cross_attention import cross_attention_modules
from ..training.sharding import lm_blocks, unet_blocks
from .stage_prefix import PrefixConfig, trained_parameters
from .stage_realign import RealignConfig

GiB = 2**30


@dataclass
class FusionConfig:
    """A fusion as `multifusion plan` and the docs describe it: the three components by reference, the encoder's
    shape, and each stage's settings (`PrefixConfig`, `RealignConfig`)."""

    stable_diffusion: str
    lm: str
    vision: str
    image_tokens: int = 16
    adapter_dim: int = 64
    max_length: int = 77
    prefix: PrefixConfig = field(default_factory=PrefixConfig)
    realign: RealignConfig = field(default_factory=RealignConfig)

    @classmethod
    def load(cls, path: str | Path) -> FusionConfig:
        values = json.loads(Path(path).read_text())
        missing = [k for k in ("stable_diffusion", "lm", "vision") if k not in values]
        if missing:
            raise ValueError(f"{path}: name the {', '.join(missing)} (hub ids or directories)")
        stages = {"prefix": PrefixConfig, "realign": RealignConfig}
        for name, stage_class in stages.items():
            unknown = set(values.get(name, {})) - set(stage_class.__dataclass_fields__)
            if unknown:
                raise ValueError(f"{path}: unknown {name} keys {', '.join(sorted(unknown))}")
            values[name] = stage_class(**values.get(name, {}))
        return cls(**values)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def leaf_outputs(module: torch.nn.Module, *args: Any, **kwargs: Any) -> int:
    """Elements of every leaf module's output in one meta-device forward pass of `module`."""
    return sum(_leaf_output_sizes(module, *args, **kwargs))


def largest_leaf_output(module: torch.nn.Module, *args: Any, **kwargs: Any) -> int:
    return max(_leaf_output_sizes(module, *args, **kwargs), default=0)


def _leaf_output_sizes(module: torch.nn.Module, *args: Any, **kwargs: Any) -> list[int]:
    sizes = []

    def hook(leaf, _inputs, output) -> None:
        for tensor in output if isinstance(output, tuple) else (output,):
            if isinstance(tensor, torch.Tensor):
                sizes.append(tensor.numel())

    handles = [m.register_forward_hook(hook) for m in module.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            module(*args, **kwargs)
    finally:
        for handle in handles:
            handle.remove()
    return sizes


@dataclass
class StagePlan:
    name: str
    trainable: int
    frozen: int
    activation_bytes: float  # per process, at the stage's batch size
    steps: int
    checkpointing: bool
    unsharded: int = 0  # frozen parameters that sharding leaves whole on every GPU (the VAE)
    gathered: int = 0  # parameters gathered at once when sharded

    def memory(self, shard: int) -> float:
        """Bytes per GPU with the weights split over `shard` GPUs (1: each holds all of them)."""
        if shard == 1:
            return 4 * self.frozen + 20 * self.trainable + self.activation_bytes
        split = 4 * (self.frozen - self.unsharded) + 20 * self.trainable
        return split / shard + 4 * (self.unsharded + self.gathered) + self.activation_bytes


def plan(config: FusionConfig) -> list[StagePlan]:
    """Both stages' parameter counts and activation estimates, from the components' configs alone."""
    sd = config.stable_diffusion
    with init_empty_weights():
        lm_config, vision_config = AutoConfig.from_pretrained(config.lm), AutoConfig.from_pretrained(config.vision)
        vision_config = getattr(vision_config, "vision_config", None) or vision_config
        encoder = MultiFusionEncoder(lm_config=lm_config.to_dict(), vision_config=vision_config.to_dict(),
                                     image_tokens=config.image_tokens, adapter_dim=config.adapter_dim,
                                     max_length=config.max_length)  # fmt: skip
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(sd, subfolder="unet"))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(sd, subfolder="vae"))
    width, device = encoder.hidden_size, torch.device("meta")

    p = config.prefix
    prefix_trainable = sum(t.numel() for t in trained_parameters(encoder, p))
    tokens = torch.zeros(p.batch_size, config.max_length, dtype=torch.long, device=device)
    lm_elements = leaf_outputs(encoder.lm.base_model, input_ids=tokens)
    if p.gradient_checkpointing:  # a layer's inputs kept, one layer's activations at a time
        layers = lm_config.num_hidden_layers
        lm_elements = p.batch_size * config.max_length * width * layers + lm_elements / layers
    if p.semantic_weight:  # the image alone and the caption alone pass through the LM too
        lm_elements *= 3
    # the LM head's logits over the vocabulary, in fp32, with their gradient (the loss's largest tensors)
    lm_elements += 2 * p.batch_size * config.max_length * lm_config.vocab_size * 4 / _bytes(p)
    lm_layers = [count(block) for block in lm_blocks(encoder)]
    encoder_root = count(encoder) - sum(lm_layers)
    prefix = StagePlan("prefix", prefix_trainable, count(encoder) - prefix_trainable, _bytes(p) * lm_elements, p.steps,
                       p.gradient_checkpointing, gathered=encoder_root + 2 * max(lm_layers, default=0))  # fmt: skip

    r = config.realign
    kv_before = sum(m.to_k.weight.numel() + m.to_v.weight.numel() for m in cross_attention_modules(unet))
    kv_after = sum(m.to_k.out_features * width + m.to_v.out_features * width for m in cross_attention_modules(unet))
    attn2 = sum(count(m) for m in cross_attention_modules(unet)) - kv_before + kv_after
    unet_total = count(unet) - kv_before + kv_after
    side = r.resolution // 2 ** (len(vae.config.block_out_channels) - 1)
    latents = torch.zeros(r.batch_size, unet.config.in_channels, side, side, device=device)
    # the text states at the old width: what the leaves output (keys, values) does not depend on it
    states = torch.zeros(r.batch_size, config.max_length, unet.config.cross_attention_dim, device=device)
    unet_elements = leaf_outputs(unet, latents, torch.zeros(r.batch_size, device=device), states)
    if r.gradient_checkpointing:  # diffusers checkpoints each block: its input kept, one block recomputed at a time
        blocks = len(unet.down_blocks) + len(unet.up_blocks) + 1
        unet_elements = unet_elements / blocks * 2
    # encoding the batch's pixels with the VAE (no gradient): its two largest tensors at once, before the U-Net runs
    pixels = torch.zeros(r.batch_size, 3, r.resolution, r.resolution, device=device)
    unet_elements = max(unet_elements, 2 * largest_leaf_output(vae.encoder, pixels))
    unet_parts = [count(block) for block in unet_blocks(unet)]
    gathered = encoder_root + count(unet) - sum(unet_parts) + 2 * max(lm_layers + unet_parts, default=0)
    realign = StagePlan("realign", attn2, count(vae) + count(encoder) + unet_total - attn2, _bytes(r) * unet_elements,
                        r.steps, r.gradient_checkpointing, unsharded=count(vae), gathered=gathered)  # fmt: skip
    return [prefix, realign]


def _bytes(config) -> int:
    return 2 if config.mixed_precision in ("fp16", "bf16") else 4


def measured_seconds_per_step(log: str | Path) -> dict[str, float]:
    """Each stage's median seconds per step in a run's `log.jsonl`, from consecutive entries (a resumed run appends
    entries that go back to its checkpoint's step and time, or to 0 s in logs from before checkpoints kept their
    time; those gaps are left out)."""
    rates: dict[str, list[float]] = {}
    previous: dict[str, dict] = {}
    for line in Path(log).read_text().splitlines():
        entry = json.loads(line)
        before = previous.get(entry["stage"])
        if before and entry["step"] > before["step"] and entry["elapsed_s"] > before["elapsed_s"]:
            rates.setdefault(entry["stage"], []).append((entry["elapsed_s"] - before["elapsed_s"]) / (entry["step"] - before["step"]))
        previous[entry["stage"]] = entry
    return {stage: statistics.median(r) for stage, r in rates.items()}


def report(stages: list[StagePlan], gpus: int, gpu_memory_gib: float, shard: bool, headroom: float,
           measured: dict[str, float]) -> tuple[list[str], list[str]]:  # fmt: skip
    """Printable lines, and the problems that keep the plan from fitting (empty when it fits)."""
    lines, problems = [], []
    budget = gpu_memory_gib * GiB * (1 - headroom)
    for s in stages:
        need = s.memory(gpus if shard else 1)
        lines.append(f"{s.name:8} trainable {s.trainable / 1e6:9.1f} M   frozen {s.frozen / 1e6:9.1f} M   "
                     f"activations {s.activation_bytes / GiB:6.1f} GiB   per GPU {need / GiB:6.1f} GiB of {gpu_memory_gib:g}")  # fmt: skip
        if s.name in measured:
            hours = measured[s.name] * s.steps / 3600
            lines.append(f"{'':8} {s.steps} steps x {measured[s.name]:.2f} s (measured) = {hours:.1f} h")
        if need > budget:
            fixes = ["a smaller batch_size (activations scale with it)"]
            if not s.checkpointing:
                fixes.append("gradient_checkpointing")
            if not shard and gpus > 1:
                fixes.append('"shard": true in the stage config, planned with --shard (FSDP2 splits the weights over the GPUs)')
            problems.append(f"{s.name}: needs {need / GiB:.1f} GiB per GPU, {budget / GiB:.1f} GiB usable "
                            f"({100 * headroom:.0f}% headroom): try " + ", ".join(fixes))  # fmt: skip
    return lines, problems
