"""Shared by the benchmarks: the model they measure and how they print figures."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from multifusion.evaluate import EvalConfig, Evaluator
from multifusion.pipeline import MultiFusionPipeline
from multifusion.runtime import DEFAULT_MODEL, GenerationSettings, Runtime, RuntimeOptions
from multifusion.schedulers import make_scheduler


def tiny_runtime(model: str | None = None) -> tuple[Runtime, str]:
    """`model` if given, else the shipped tiny model when present, else the tiny random test pipeline."""
    if model:
        return Runtime.load(model, RuntimeOptions(device="cpu")), model
    if DEFAULT_MODEL.is_dir():
        return Runtime.load(DEFAULT_MODEL, RuntimeOptions(device="cpu")), "weights/multifusion-tiny"
    from multifusion.testing import tiny_pipeline

    return Runtime(tiny_pipeline(), RuntimeOptions(device="cpu")), "tiny random test pipeline (no shipped weights)"


def accuracies(runtime: Runtime, scheduler: str, steps: int, benchmarks: tuple[str, ...], quick: bool = False,
               guidance_end: float | None = None, seeds: tuple[int, ...] = (0,)) -> dict[str, Any]:  # fmt: skip
    """The mean accuracy of each of `benchmarks` ("single", "mcc": the eval's scenes and seeds) with the sampler
    `scheduler` at `steps` (and guidance for the first `guidance_end` of them; None: the model's default), over the
    eval at each of `seeds` (each seed draws other scenes and noise), and its n (summed over languages or variants
    and seeds) as `n_<name>`."""
    runtime.pipe.scheduler = make_scheduler(scheduler, runtime.pipe.scheduler.config)
    out: dict[str, Any] = {}
    for name in benchmarks:
        shares, n = [], 0
        for seed in seeds:
            evaluator = Evaluator(runtime.pipe, EvalConfig(quick=quick, steps=steps, guidance_end=guidance_end, seed=seed),
                                  log=lambda _: None)  # fmt: skip
            result = getattr(evaluator, name)()
            shares += [r["accuracy"] for r in result.values()]
            n += sum(r["n"] for r in result.values())
        out[name], out[f"n_{name}"] = statistics.mean(shares), n
    return out


def one_image(runtime: Runtime, steps: int, side: int | None = None, prompt: str = "a red circle") -> float:
    """Seconds for one generation of `prompt` at `steps` (and a `side`-px square, else the native size)."""
    start = time.perf_counter()
    runtime.generate(prompt, GenerationSettings(steps=steps, width=side, height=side))
    if runtime.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def compile_timings(runtime: Runtime, steps: int, sides: list[int], repeats: int) -> dict[str, Any]:
    """A compiled runtime's first image (it compiles), its steady state over `repeats`, the first image at each of
    `sides` (square, each a new shape), and the first size again (its graphs kept), in seconds."""
    first = one_image(runtime, steps)
    steady = median(timed(lambda: one_image(runtime, steps), repeats))
    new_sizes = [one_image(runtime, steps, side) for side in sides]
    return {"first_s": first, "steady_s": steady, "new_sizes_first_s": new_sizes, "first_size_again_s": one_image(runtime, steps)}


def timed(fn: Callable[[], Any], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


def device_name() -> str:
    return torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)"


def report(rows: list[tuple[str, str]], figures: dict[str, Any], as_json: bool) -> None:
    """Print `rows` as a two-column table; with `as_json`, the figures as JSON on the last line."""
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    if as_json:
        print(json.dumps(figures))


def sd15_sized_pipeline() -> MultiFusionPipeline:
    """SD-1.5's U-Net and VAE architecture with random weights; a 1-layer LM of width 768 as the encoder."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from multifusion.testing import tiny_encoder, tiny_pipeline
    from multifusion.tokenizer import build_tokenizer

    tiny = tiny_pipeline()
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=64, block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, cross_attention_dim=768,
        attention_head_dim=8,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    )  # fmt: skip
    vae = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    )  # fmt: skip
    tokenizer = build_tokenizer()
    encoder = tiny_encoder(len(tokenizer))
    config = dict(encoder.config)
    config["lm_config"] = {**config["lm_config"], "hidden_size": 768, "num_hidden_layers": 1, "num_attention_heads": 12,
                           "num_key_value_heads": 12, "head_dim": 64}  # fmt: skip
    encoder = type(encoder)(**{k: v for k, v in config.items() if not k.startswith("_")})
    pipe = MultiFusionPipeline(vae, unet, tiny.scheduler, encoder, tokenizer, tiny.vision_processor)
    pipe.set_progress_bar_config(disable=True)
    return pipe
