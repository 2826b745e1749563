"""Pipeline overhead: MultiFusionPipeline against diffusers' StableDiffusionPipeline on identical components.

Both pipelines share one U-Net, VAE and scheduler and get the same prompt embeddings, steps and seeds, so any
difference is our pipeline's own work. Runs alternate between the two in one process; the figure is the median
of per-pair ratios (ours / diffusers), per image. A third column runs ours with a U-Net key bias (segment
weights active) to show what manipulation costs.

    python benchmarks/overhead.py [--repeats 7] [--steps 4] [--skip-sd15] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import transformers

transformers.logging.set_verbosity_error()  # quiet the optional-torchvision notices diffusers' SD import triggers

from diffusers import StableDiffusionPipeline  # noqa: E402

from common import sd15_sized_pipeline  # noqa: E402
from multifusion import MultimodalPrompt, TextSegment  # noqa: E402
from multifusion.pipeline import MultiFusionPipeline  # noqa: E402
from multifusion.testing import tiny_pipeline  # noqa: E402


def measure(pipe: MultiFusionPipeline, name: str, size: int, steps: int, repeats: int) -> dict:
    sd = StableDiffusionPipeline(
        vae=pipe.vae, text_encoder=None, tokenizer=None, unet=pipe.unet, scheduler=pipe.scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
    sd.set_progress_bar_config(disable=True)
    embeds = pipe.encode([MultimodalPrompt.of("a red circle")]).embeds
    negative = pipe.encode([MultimodalPrompt()]).embeds
    weighted = pipe.encode([MultimodalPrompt.of("a red circle", TextSegment(" and a star", 2.0))])
    common = dict(height=size, width=size, num_inference_steps=steps, guidance_scale=5.0, output_type="np")

    def run_sd() -> None:
        sd(prompt_embeds=embeds, negative_prompt_embeds=negative, generator=torch.Generator().manual_seed(0), **common)

    def run_ours() -> None:
        pipe(prompt_embeds=embeds, negative_prompt_embeds=negative, generator=torch.Generator().manual_seed(0), **common)

    def run_weighted() -> None:
        pipe(prompt_embeds=weighted.embeds, prompt_key_bias=weighted.unet_bias, negative_prompt_embeds=negative,
             generator=torch.Generator().manual_seed(0), **common)  # fmt: skip

    runs = {"diffusers": run_sd, "ours": run_ours, "ours_weighted": run_weighted}
    for run in runs.values():  # warm-up
        run()
    times: dict[str, list[float]] = {key: [] for key in runs}
    for repeat in range(repeats):
        order = list(runs) if repeat % 2 == 0 else list(reversed(runs))
        for key in order:
            start = time.perf_counter()
            runs[key]()
            times[key].append(time.perf_counter() - start)
    ratio = lambda key: statistics.median(t / d for t, d in zip(times[key], times["diffusers"]))
    return {
        "pipeline": name,
        "size": size,
        "steps": steps,
        "repeats": repeats,
        "diffusers_s": statistics.median(times["diffusers"]),
        "ours_s": statistics.median(times["ours"]),
        "ours_weighted_s": statistics.median(times["ours_weighted"]),
        "ratio": ratio("ours"),
        "ratio_weighted": ratio("ours_weighted"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--skip-sd15", action="store_true", help="only the tiny pipeline")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON on the last line")
    args = parser.parse_args()
    torch.set_grad_enabled(False)

    results = [measure(tiny_pipeline(), "tiny", 64, args.steps * 5, args.repeats)]
    if not args.skip_sd15:
        results.append(measure(sd15_sized_pipeline(), "sd15-sized", 128, args.steps, args.repeats))

    device = "cpu" if not torch.cuda.is_available() else torch.cuda.get_device_name()
    print(f"device: {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"{'pipeline':<12}{'size':>6}{'steps':>7}{'diffusers s':>13}{'ours s':>9}{'ours/diff':>11}{'weighted/diff':>15}")
    for r in results:
        print(f"{r['pipeline']:<12}{r['size']:>6}{r['steps']:>7}{r['diffusers_s']:>13.3f}{r['ours_s']:>9.3f}"
              f"{r['ratio']:>11.3f}{r['ratio_weighted']:>15.3f}")  # fmt: skip
    if args.json:
        print(json.dumps({"device": device, "results": results}))


if __name__ == "__main__":
    main()
