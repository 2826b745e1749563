"""`multifusion plan --serve MODEL`: which memory mode serves a Qwen-Image-Edit-Plus model on which GPU, and at
what cost, from its components' configs alone.

Every component is built on the meta device from its config (exact parameter counts, and which of them are
`nn.Linear` weights, the ones 8- and 4-bit quantization stores in 1 and about 0.5 byte). Activations are estimated
analytically at the model's native size with as many reference images as the family allows (see `activations`),
so the figures are a plan, not a measurement. Modes, fastest first:

| mode | what stays on the GPU | host-to-GPU transfers per denoising step |
|---|---|---|
| on the GPU | every component | none |
| model offload | one component at a time | none (the transformer comes once per generation) |
| group offload | each component's non-block weights and two of its blocks (one computing, one arriving) | the transformer's blocks, once per transformer pass |
| sequential offload | the largest single layer | every transformer weight, once per pass, without overlap |

each with bf16, 8-bit or 4-bit weights. Quantized weights come before per-step transfers (a 4-bit model offload
before a bf16 group offload): transfers cost every step, quantization a little quality once. A mode serves a GPU when its peak fits in the GPU's memory less
`headroom` (CUDA context, allocator fragmentation).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import PromptError

GiB = 2**30
GPU_SIZES = (12, 16, 24, 48, 80)
SNAPSHOTS = Path(__file__).resolve().parent / "families" / "qwen_image" / "configs"
PRECISIONS = {"bf16": 2.0, "8-bit": 1.0, "4-bit": 0.53}  # bytes per quantizable weight (4-bit: NF4 with its scales)
BLOCKS = {"transformer": "QwenImageTransformerBlock", "text_encoder": "Qwen2_5_VLDecoderLayer"}
MODES = ("on the GPU", "model offload", "group offload", "sequential offload")
TEXT_TOKENS = 80  # the prompt's own words, besides the template and the images


@dataclass
class Component:
    name: str
    params: int
    linear_params: int  # of `params`, the nn.Linear weights quantization shrinks
    largest_block: int  # parameters of its largest repeated block (0: none)
    in_blocks: int  # parameters inside its repeated blocks
    largest_leaf: int  # parameters of its largest single layer
    activations: float  # bytes at the native size, one generation (estimate)

    def weights(self, precision: str) -> float:
        return 2.0 * (self.params - self.linear_params) + PRECISIONS[precision] * self.linear_params


def model_folder(model: str) -> tuple[Path | str, str]:
    """Where to read `model`'s configs, and from where: a local folder, the hub, or a shipped snapshot."""
    if Path(model).is_dir():
        return Path(model), "local folder"
    snapshot = SNAPSHOTS / model.split("/")[-1]
    try:
        from diffusers import DiffusionPipeline

        with warnings.catch_warnings():  # huggingface_hub's notice about an argument diffusers passes
            warnings.simplefilter("ignore", UserWarning)
            DiffusionPipeline.load_config(model)
        return model, "the hub"
    except OSError:
        if snapshot.is_dir():
            return snapshot, f"shipped snapshot ({snapshot.relative_to(SNAPSHOTS.parents[2])})"
        raise PromptError(f"cannot read {model}'s configs: not a folder, the hub is out of reach, and no snapshot is "
                          f"shipped (snapshots: {', '.join(sorted(p.name for p in SNAPSHOTS.iterdir() if p.is_dir()))})") from None  # fmt: skip


def meta_component(folder: Path | str, name: str) -> torch.nn.Module:
    """Component `name` of a Qwen-Image-Edit-Plus model, built from its config on the meta device."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKLQwenImage, QwenImageTransformer2DModel
    from transformers import AutoConfig, Qwen2_5_VLForConditionalGeneration

    with init_empty_weights():
        if name == "text_encoder":
            return Qwen2_5_VLForConditionalGeneration._from_config(AutoConfig.from_pretrained(folder, subfolder=name))
        cls = QwenImageTransformer2DModel if name == "transformer" else AutoencoderKLQwenImage
        return cls.from_config(cls.load_config(folder, subfolder=name))


def activations(name: str, module: torch.nn.Module, side: int, images: int) -> float:
    """Peak bytes of activations while `name` runs once at `side` px with `images` reference images (bf16).

    transformer: tokens S = S_txt + (side/16)^2 x (1 + images); at the MLP the residual, the modulated input, the
    4x-wide hidden layer and its output are alive: 8 x S x width. text encoder: S tokens (template, images at about
    384x384 each, words); at the MLP 2 x width + 3 x intermediate per token, and the LM head's float32 logits.
    VAE decode: five feature maps of the widest full-resolution layer."""
    config = module.config
    if name == "transformer":
        tokens = TEXT_TOKENS + 200 * images + (side // 16) ** 2 * (1 + images)
        return 2.0 * 8 * tokens * config.num_attention_heads * config.attention_head_dim
    if name == "text_encoder":
        text = config.text_config if hasattr(config, "text_config") else config
        tokens = 100 + TEXT_TOKENS + 200 * images
        return 2.0 * tokens * (2 * text.hidden_size + 3 * text.intermediate_size) + 4.0 * tokens * text.vocab_size
    return 2.0 * 5 * config.base_dim * side * side


def components(folder: Path | str, side: int, images: int) -> list[Component]:
    out = []
    for name in ("text_encoder", "transformer", "vae"):
        module = meta_component(folder, name)
        linear = sum(m.weight.numel() for m in module.modules() if isinstance(m, torch.nn.Linear))
        blocks = [m for m in module.modules() if type(m).__name__ == BLOCKS.get(name)]
        leaves = [sum(p.numel() for p in m.parameters(recurse=False)) for m in module.modules()]
        out.append(Component(name, sum(p.numel() for p in module.parameters()), linear,
                             max((sum(p.numel() for p in b.parameters()) for b in blocks), default=0),
                             sum(p.numel() for b in blocks for p in b.parameters()), max(leaves),
                             activations(name, module, side, images)))  # fmt: skip
    return out


def peak(parts: list[Component], mode: str, precision: str) -> float:
    """Bytes on the GPU at the peak of one generation."""
    if mode == "on the GPU":
        return sum(c.weights(precision) for c in parts) + max(c.activations for c in parts)
    if mode == "model offload":
        return max(c.weights(precision) + c.activations for c in parts)
    if mode == "group offload":
        def resident(c: Component) -> float:
            share = c.weights(precision) / max(c.params, 1)
            return share * (c.params - c.in_blocks + 2 * c.largest_block) if c.largest_block else c.weights(precision)

        return max(resident(c) + c.activations for c in parts)
    return max(2.0 * c.largest_leaf + c.activations for c in parts)  # sequential: one layer at a time


def transfers(parts: list[Component], mode: str, precision: str, passes: int) -> float:
    """Bytes moved host to GPU per denoising step (`passes` transformer calls a step: 2 with true CFG)."""
    transformer = next(c for c in parts if c.name == "transformer")
    if mode in ("group offload", "sequential offload"):
        return passes * transformer.weights(precision)
    return 0.0


def plan(model: str, gpus: tuple[float, ...] = GPU_SIZES, headroom: float = 1.5, side: int = 1024, images: int = 1,
         passes: int = 2) -> dict:  # fmt: skip
    """The plan as data: components, and for each GPU size the fastest mode and precision that fits."""
    folder, source = model_folder(model)
    index = json.loads((Path(folder) / "model_index.json").read_text()) if isinstance(folder, Path) else None
    if index is not None and index.get("_class_name") != "QwenImageEditPlusPipeline":
        raise PromptError(f"{model} is a {index.get('_class_name')}; the serving planner knows QwenImageEditPlusPipeline models")
    parts = components(folder, side, images)
    choices = [(mode, precision) for precision in PRECISIONS for mode in MODES]
    choices.sort(key=lambda mp: (MODES.index(mp[0]) >= 2, list(PRECISIONS).index(mp[1]), MODES.index(mp[0])))

    def first_fit(gpu: float, options: list[tuple[str, str]]) -> dict | None:
        chosen = next(((m, p) for m, p in options if peak(parts, m, p) <= (gpu - headroom) * GiB), None)
        return None if chosen is None else {
            "mode": chosen[0], "weights": chosen[1], "peak_gib": peak(parts, *chosen) / GiB,
            "transfers_gib_per_step": transfers(parts, *chosen, passes) / GiB}  # fmt: skip

    fits = {gpu: first_fit(gpu, choices) for gpu in gpus}
    full_precision = {gpu: first_fit(gpu, [c for c in choices if c[1] == "bf16"]) for gpu in gpus}
    return {"model": model, "source": source, "side": side, "reference_images": images, "headroom_gib": headroom,
            "components": parts, "gpus": fits, "gpus_bf16": full_precision}  # fmt: skip


def report(result: dict) -> list[str]:
    parts: list[Component] = result["components"]
    lines = [f"{result['model']} (configs: {result['source']}), one {result['side']}x{result['side']} image with "
             f"{result['reference_images']} reference image(s), true CFG", "",
             "| component | parameters | bf16 GiB | 8-bit GiB | 4-bit GiB | activations GiB (est.) |", "|---|---|---|---|---|---|"]  # fmt: skip
    for c in [*parts, None]:
        rows = parts if c is None else [c]
        name = "**total**" if c is None else c.name
        weights = [sum(x.weights(p) for x in rows) / GiB for p in PRECISIONS]
        act = max(x.activations for x in rows) / GiB
        lines.append(f"| {name} | {sum(x.params for x in rows) / 1e9:.2f} B | " + " | ".join(f"{w:.1f}" for w in weights)
                     + f" | {act:.2f}{' (peak)' if c is None else ''} |")  # fmt: skip
    lines += ["", "| GPU | serves it with | peak GiB | transfers per step | in bf16 instead |", "|---|---|---|---|---|"]
    for gpu, fit in result["gpus"].items():
        alternative = result["gpus_bf16"][gpu]
        bf16 = "does not fit" if alternative is None else f"{alternative['mode']}, {_moved(alternative)}"
        if fit is None:
            lines.append(f"| {gpu:g} GB | nothing fits | | | |")
        else:
            lines.append(f"| {gpu:g} GB | {fit['mode']}, {fit['weights']} weights | {fit['peak_gib']:.1f} | {_moved(fit)} | "
                         f"{'(the same)' if fit['weights'] == 'bf16' else bf16} |")  # fmt: skip
    return lines


def _moved(fit: dict) -> str:
    gib = fit["transfers_gib_per_step"]
    return "none" if not gib else f"{gib:.1f} GiB"
