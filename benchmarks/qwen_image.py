"""The Qwen-Image-Edit-Plus family against upstream diffusers' QwenImageEditPlusPipeline, on the same tiny components.

One generation, end to end (prompt encoding, reference-image VAE encoding, denoising with true CFG against an empty
negative, decoding), at upstream's settings (1024x1024 reference latents): upstream with its own prompt; ours with
the same prompt as a `MultimodalPrompt`, neutral (which is upstream's computation bit for bit) and weighted (an
image at 0.5 and a text fragment at 1.3, in the encoder and the transformer). Our prompt cache is off, so every run
encodes. Runs alternate in one process; each figure is the median of per-run ratios (ours / upstream).

    python benchmarks/qwen_image.py [--repeats 5] [--steps 4] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import transformers

transformers.logging.set_verbosity_error()  # quiet the optional-torchvision notices

from PIL import Image  # noqa: E402

from multifusion import ImageSegment, MultimodalPrompt, TextSegment  # noqa: E402
from multifusion.families.qwen_image.family import QwenImageEditPlusFamily  # noqa: E402
from multifusion.families.qwen_image.tiny import tiny_qwen_image_edit_plus  # noqa: E402
from multifusion.model_card import ModelCard  # noqa: E402
from multifusion.runtime import GenerationSettings, Runtime, RuntimeOptions  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON on the last line")
    args = parser.parse_args()
    torch.set_grad_enabled(False)

    pipe = tiny_qwen_image_edit_plus()
    runtime = Runtime(QwenImageEditPlusFamily(pipe, ModelCard(settings={"native_size": 64})), RuntimeOptions(device="cpu", cache_size=0))
    reference, text = Image.effect_noise((64, 64), 80).convert("RGB"), "a watercolour of a cat"
    neutral = MultimodalPrompt.of(reference, text)
    weighted = MultimodalPrompt.of(ImageSegment(reference, weight=0.5), TextSegment("a watercolour", weight=1.3), " of a cat")
    settings = GenerationSettings(steps=args.steps, guidance=4.0, seed=0, width=64, height=64)

    def upstream() -> None:
        pipe(image=[reference], prompt=text, negative_prompt="", true_cfg_scale=4.0, num_inference_steps=args.steps,
             height=64, width=64, generator=torch.Generator().manual_seed(0))  # fmt: skip

    runs = {"upstream": upstream, "ours": lambda: runtime.generate(neutral, settings),
            "ours_weighted": lambda: runtime.generate(weighted, settings)}  # fmt: skip
    for run in runs.values():  # warm-up
        run()
    times: dict[str, list[float]] = {key: [] for key in runs}
    for repeat in range(args.repeats):
        for key in list(runs) if repeat % 2 == 0 else list(reversed(runs)):
            start = time.perf_counter()
            runs[key]()
            times[key].append(time.perf_counter() - start)
    ratio = lambda key: statistics.median(t / u for t, u in zip(times[key], times["upstream"]))  # noqa: E731
    figures = {
        "device": "cpu", "torch": torch.__version__, "threads": torch.get_num_threads(), "steps": args.steps,
        "repeats": args.repeats, "upstream_s": statistics.median(times["upstream"]), "ours_s": statistics.median(times["ours"]),
        "ours_weighted_s": statistics.median(times["ours_weighted"]), "ratio_neutral": ratio("ours"),
        "ratio_weighted": ratio("ours_weighted"),
    }  # fmt: skip
    print(f"upstream {figures['upstream_s']:.3f} s · ours neutral {figures['ours_s']:.3f} s (ratio {figures['ratio_neutral']:.3f})"
          f" · ours weighted {figures['ours_weighted_s']:.3f} s (ratio {figures['ratio_weighted']:.3f})")  # fmt: skip
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
