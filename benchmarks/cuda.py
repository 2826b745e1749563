"""The CUDA path: an SD-1.5-sized U-Net and VAE (random weights from config) at 512x512, 30 steps, fp16.

Ours against diffusers' `StableDiffusionPipeline` on the same modules and embeddings, in eager mode and with the
U-Net compiled (`torch.compile`), alternating runs in one process. Without CUDA it says so and exits cleanly.

    python benchmarks/cuda.py [--repeats 5] [--steps 30] [--size 512] [--no-compile] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("skipped: no CUDA device (this benchmark measures the fp16 GPU path)")
        if args.json:
            print(json.dumps({"skipped": "no CUDA device"}))
        return

    from common import median, report, sd15_sized_pipeline, timed
    from diffusers import StableDiffusionPipeline

    from multifusion import MultimodalPrompt, TextSegment

    torch.set_grad_enabled(False)
    pipe = sd15_sized_pipeline().to("cuda", torch.float16)
    sd = StableDiffusionPipeline(vae=pipe.vae, text_encoder=None, tokenizer=None, unet=pipe.unet, scheduler=pipe.scheduler,
                                 safety_checker=None, feature_extractor=None, requires_safety_checker=False)  # fmt: skip
    sd.set_progress_bar_config(disable=True)
    embeds = pipe.encode([MultimodalPrompt.of("a red circle")]).embeds.half()
    negative = pipe.encode([MultimodalPrompt()]).embeds.half()
    weighted = pipe.encode([MultimodalPrompt.of("a red circle", TextSegment(" and a star", 2.0))])
    common = dict(height=args.size, width=args.size, num_inference_steps=args.steps, guidance_scale=7.5, output_type="latent")

    def sync(fn):
        def run():
            fn()
            torch.cuda.synchronize()
        return run

    runs = {
        "diffusers": sync(lambda: sd(prompt_embeds=embeds, negative_prompt_embeds=negative, **common)),
        "ours": sync(lambda: pipe(prompt_embeds=embeds, negative_prompt_embeds=negative, **common)),
        "ours_weighted": sync(lambda: pipe(prompt_embeds=weighted.embeds.half(), prompt_key_bias=weighted.unet_bias,
                                           negative_prompt_embeds=negative, **common)),  # fmt: skip
    }
    figures: dict = {"device": torch.cuda.get_device_name(), "size": args.size, "steps": args.steps}
    modes = ["eager"] + ([] if args.no_compile else ["compiled"])
    for mode in modes:
        if mode == "compiled":
            pipe.unet.compile()
        for run in runs.values():
            run(), run()  # warm-up (and compilation)
        times = {k: [] for k in runs}
        for _ in range(args.repeats):
            for key, run in runs.items():
                times[key] += timed(run, 1)
        for key in runs:
            figures[f"{mode}_{key}_s"] = median(times[key])
        figures[f"{mode}_ratio"] = median([a / b for a, b in zip(times["ours"], times["diffusers"])])
        figures[f"{mode}_ratio_weighted"] = median([a / b for a, b in zip(times["ours_weighted"], times["diffusers"])])
    figures["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    rows = [("device", figures["device"])]
    for mode in modes:
        rows.append((f"{mode}: diffusers / ours / ours weighted (s)",
                     f"{figures[f'{mode}_diffusers_s']:.3f} / {figures[f'{mode}_ours_s']:.3f} / {figures[f'{mode}_ours_weighted_s']:.3f}"
                     f"  ratio {figures[f'{mode}_ratio']:.3f}, weighted {figures[f'{mode}_ratio_weighted']:.3f}"))  # fmt: skip
    report(rows, figures, args.json)


if __name__ == "__main__":
    sys.exit(main())
