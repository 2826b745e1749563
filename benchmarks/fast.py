"""Fast paths on the shipped model: today's settings (fp32, eager, dpm++2m, 25 steps, guided throughout) against the
model's default (its sampler, steps and guided share of them).

One 1-image generation through `Runtime.generate` (no prompt cache), baseline and default alternating in one process,
median of `--repeats`. Quality is the `single` benchmark's accuracy (the full eval's scenes and seeds, n = 160) at
both settings. Per-option rows on the default setting: bf16, a compiled U-Net (first call, steady state, the first
call at four new sizes, each compiling its own graphs, and the first size again, which compiles nothing), and fewer
or more steps; on CUDA also fp16 and compiled fp16.

    python benchmarks/fast.py [--model DIR] [--repeats 5] [--no-compile] [--no-quality] [--json]
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from common import accuracies, compile_timings, device_name, median, one_image, report, timed
from multifusion.runtime import DEFAULT_MODEL, Runtime, RuntimeOptions

BASELINE = ("dpm++2m", 25)


def load(model: str, device: str, dtype: str = "float32", scheduler: str | None = None, compile_unet: bool = False) -> Runtime:
    options = RuntimeOptions(device=device, dtype=dtype, scheduler=scheduler, compile_unet=compile_unet, cache_size=0)
    return Runtime.load(model, options)


def compiled_rows(model: str, device: str, dtype: str, scheduler: str, steps: int, repeats: int) -> dict[str, Any]:
    """First call (compiles), steady state, the first call at four new sizes (each compiles its own graphs: the
    fifth size is past torch's default limit of graphs), and the first size again (its graphs kept)."""
    runtime = load(model, device, dtype, scheduler, compile_unet=True)
    native, multiple = runtime.native_side, runtime.pipe.size_multiple
    return compile_timings(runtime, steps, [native + k * multiple for k in (1, 2, 3, 4)], repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--no-quality", action="store_true", help="timings only")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    dtype = "float16" if args.device.startswith("cuda") else "float32"  # the runtime's own choice per device

    baseline = load(args.model, args.device, "float32", BASELINE[0])
    baseline.pipe.register_to_config(default_guidance_end=1.0)  # today's settings: guided throughout
    default = load(args.model, args.device, "float32")
    steps, scheduler, guided = default.default_steps, default.scheduler_name, default.default_guidance_end
    for runtime, n in ((baseline, BASELINE[1]), (default, steps)):
        one_image(runtime, n)  # warm-up
    times = {"baseline": [], "default": []}
    for _ in range(args.repeats):  # alternate, so load on the machine hits both alike
        times["baseline"].append(one_image(baseline, BASELINE[1]))
        times["default"].append(one_image(default, steps))
    baseline_s, default_s = median(times["baseline"]), median(times["default"])

    figures: dict = {"device": device_name(), "model": args.model, "baseline": {"scheduler": BASELINE[0], "steps": BASELINE[1]},
                     "default": {"scheduler": scheduler, "steps": steps, "guidance_end": guided}, "baseline_s": round(baseline_s, 4),
                     "default_s": round(default_s, 4), "speedup": round(baseline_s / default_s, 3)}  # fmt: skip
    rows = [(f"baseline: fp32 eager {BASELINE[0]} {BASELINE[1]} steps", f"{baseline_s:.3f} s"),
            (f"default: fp32 eager {scheduler} {steps} steps, guided {100 * guided:.0f}%", f"{default_s:.3f} s  (speedup {baseline_s / default_s:.2f}x)")]  # fmt: skip
    if not args.no_quality:
        quality_baseline = accuracies(baseline, *BASELINE, ("single",))
        figures["quality_baseline"] = quality_baseline["single"]
        figures["quality_default"] = accuracies(default, scheduler, steps, ("single",))["single"]
        figures["quality_n"] = n = quality_baseline["n_single"]
        rows.append((f"single accuracy (n={n}, same seeds)",
                     f"baseline {100 * figures['quality_baseline']:.1f}%  default {100 * figures['quality_default']:.1f}%"))  # fmt: skip

    options: dict = {}
    for n in sorted({max(steps // 2, 1), steps, 2 * steps} - {steps}):
        options[f"steps_{n}"] = {"s": median(timed(lambda: one_image(default, n), args.repeats))}
    half = ["bfloat16"] + (["float16"] if args.device.startswith("cuda") else [])
    for precision in half:
        runtime = load(args.model, args.device, precision)
        one_image(runtime, steps)
        options[precision] = {"s": median(timed(lambda: one_image(runtime, steps), args.repeats))}
    if not args.no_compile:
        for precision in sorted({"float32", dtype}):
            try:
                options[f"compiled_{precision}"] = compiled_rows(args.model, args.device, precision, scheduler, steps, args.repeats)
            except Exception as error:  # no C++ compiler, an unsupported backend: say so, measure the rest
                options[f"compiled_{precision}"] = {"error": f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"}
    for name, row in options.items():
        if "s" in row:
            rows.append((f"{name} ({scheduler})", f"{row['s']:.3f} s  ({default_s / row['s']:.2f}x the default)"))
        elif "error" in row:
            rows.append((name, f"failed: {row['error']}"))
        else:
            rows.append((name, f"first {row['first_s']:.1f} s, steady {row['steady_s']:.3f} s ({default_s / row['steady_s']:.2f}x eager), "
                               f"new sizes {', '.join(f'{t:.1f}' for t in row['new_sizes_first_s'])} s, "
                               f"first size again {row['first_size_again_s']:.3f} s"))  # fmt: skip
    rounded = lambda v: round(v, 4) if isinstance(v, float) else [rounded(x) for x in v] if isinstance(v, list) else v  # noqa: E731
    figures["options"] = {k: {m: rounded(v) for m, v in row.items()} for k, row in options.items()}
    report(rows, figures, args.json)


if __name__ == "__main__":
    main()
