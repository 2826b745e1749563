"""The encoder's share of one generation on the tiny model, cold and on a cache hit.

Cold: the prompt was never encoded; the encoder's time is measured inside the same generation. Hit: a new seed
with the same prompt, which must re-encode nothing (encoder calls are counted). Goal: <= 5% cold, 0 calls on a hit.

    python benchmarks/encoder.py [--steps 25] [--repeats 5] [--json]
"""

from __future__ import annotations

import argparse
import time

import torch

from common import device_name, median, report, tiny_runtime
from multifusion import ImageSegment, MultimodalPrompt, TextSegment
from multifusion.runtime import GenerationSettings
from multifusion.shapes.render import render_reference
from multifusion.shapes.world import ShapeObject


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--model", default=None, help="pipeline directory (default: weights/multifusion-tiny, else the random test pipeline)")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    runtime, model = tiny_runtime(args.model)

    encoder_time, encoder_calls = [0.0], [0]
    forward = runtime.pipe.encoder.forward

    def counting_forward(*a, **k):
        start = time.perf_counter()
        out = forward(*a, **k)
        encoder_time[0] += time.perf_counter() - start
        encoder_calls[0] += 1
        return out

    runtime.pipe.encoder.forward = counting_forward
    reference = render_reference(ShapeObject("star", "blue", "small"), seed=1)
    runtime.generate("warm-up", GenerationSettings(steps=2))

    shares, totals, hits = [], [], []
    for repeat in range(args.repeats):
        prompt = MultimodalPrompt((TextSegment(f"a red circle and {repeat} "), ImageSegment(reference, 1.5)))
        runtime.cache._items.clear()
        encoder_time[0] = 0.0
        start = time.perf_counter()
        runtime.generate(prompt, GenerationSettings(steps=args.steps, seed=repeat))
        total = time.perf_counter() - start
        shares.append(encoder_time[0] / total)
        totals.append(total)
        encoder_calls[0] = 0
        start = time.perf_counter()
        runtime.generate(prompt, GenerationSettings(steps=args.steps, seed=repeat + 100))
        hits.append((encoder_calls[0], time.perf_counter() - start))

    figures = {
        "model": model, "device": device_name(), "steps": args.steps, "repeats": args.repeats,
        "generation_cold_s": median(totals), "encoder_share_cold": median(shares),
        "encoder_calls_on_hit": max(c for c, _ in hits), "generation_hit_s": median([t for _, t in hits]),
    }  # fmt: skip
    report([
        ("model", model), ("device", figures["device"]),
        (f"one image, {args.steps} steps, cold (s)", f"{figures['generation_cold_s']:.3f}"),
        ("encoder share, cold", f"{100 * figures['encoder_share_cold']:.2f}%  (goal <= 5%)"),
        ("one image, cache hit (s)", f"{figures['generation_hit_s']:.3f}"),
        ("encoder calls on a hit", f"{figures['encoder_calls_on_hit']}  (goal 0)"),
    ], figures, args.json)  # fmt: skip


if __name__ == "__main__":
    main()
