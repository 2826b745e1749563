"""Accuracy against sampler, number of steps and guided share of them: the cheapest setting that draws as well as
the 25-step, fully guided default.

Runs the `single` and `mcc` benchmarks of `multifusion eval` (same seeds and n as the full eval) at the reference
setting (dpm++2m, 25 steps, guidance throughout) and at every sampler x steps x guidance end of the grid. A setting
qualifies when its mean `single` accuracy and its mean `mcc` accuracy are each at most `--tolerance` below the
reference's; the cheapest qualifying setting (the least measured time for one image on this machine, median of
`--repeats`, and of settings within 5 % of that time the most accurate: on a 2-core CPU at 64 px a U-Net call costs about the same with guidance's batch of two as without, so
U-Net passes, also reported, do not rank settings there) is the recommendation, and `--write-default` makes it the
model's declared default (`schedulers.save_defaults`).

    python benchmarks/steps.py [--model DIR] [--schedulers dpm++2m,unipc] [--steps 6,8,10,12] [--guidance-ends 1,0.5]
                               [--seeds 0,1,2] [--json] [--write-default]
"""

from __future__ import annotations

import argparse
import sys

import torch

from common import accuracies, median, one_image, report, timed
from multifusion.runtime import DEFAULT_MODEL, Runtime, RuntimeOptions
from multifusion.schedulers import SCHEDULERS, save_defaults

REFERENCE = ("dpm++2m", 25, 1.0)


def unet_passes(setting: tuple[str, int, float]) -> float:
    """U-Net passes per image: two per guided step (batched into one call), one per unguided step."""
    _, steps, guidance_end = setting
    return steps * (1 + guidance_end)


def label(setting: tuple[str, int, float]) -> str:
    scheduler, steps, guidance_end = setting
    return f"{scheduler} {steps} steps, guided {100 * guidance_end:.0f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--schedulers", default="dpm++2m,dpm++3m,unipc,euler")
    parser.add_argument("--steps", default="6,8,10,12")
    parser.add_argument("--guidance-ends", default="1.0", help="shares of the steps that are guided, e.g. 1,0.6,0.4")
    parser.add_argument("--tolerance", type=float, default=0.02, help="accuracy a setting may lose (default: 0.02)")
    parser.add_argument("--quick", action="store_true", help="the eval's small samples, for a fast look")
    parser.add_argument("--seeds", default="0", help="eval seeds to average over, e.g. 0,1,2 (more n, less noise)")
    parser.add_argument("--repeats", type=int, default=5, help="timed 1-image generations per setting (median)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--write-default", action="store_true", help="save the recommendation as the model's default")
    args = parser.parse_args()
    schedulers = [s.strip() for s in args.schedulers.split(",") if s.strip()]
    unknown = [s for s in schedulers if s not in SCHEDULERS]
    if unknown:
        sys.exit(f"unknown scheduler(s) {', '.join(unknown)}; choose from {', '.join(SCHEDULERS)}")
    ends = [float(g) for g in args.guidance_ends.split(",") if g.strip()]
    if not all(0 <= g <= 1 for g in ends):
        sys.exit("--guidance-ends are shares of the steps, from 0 to 1")
    grid = [(s, int(n), g) for n in args.steps.split(",") for s in schedulers for g in ends]
    seeds = tuple(int(s) for s in args.seeds.split(",") if s.strip())

    torch.set_grad_enabled(False)
    runtime = Runtime.load(args.model, RuntimeOptions(device="cpu", cache_size=0))  # timings include the encoder
    results = {}
    for setting in [REFERENCE, *grid]:
        r = results[setting] = accuracies(runtime, *setting[:2], ("single", "mcc"), args.quick, guidance_end=setting[2],
                                          seeds=seeds)  # fmt: skip
        runtime.pipe.register_to_config(default_guidance_end=setting[2])  # what one image at this setting costs
        one_image(runtime, setting[1])  # warm-up
        r["seconds"] = round(median(timed(lambda: one_image(runtime, setting[1]), args.repeats)), 4)
        print(f"{label(setting):>36}  single {100 * r['single']:5.1f}%  mcc {100 * r['mcc']:5.1f}%  {r['seconds']:.3f} s", flush=True)

    reference = results[REFERENCE]
    qualifies = lambda r: r["single"] >= reference["single"] - args.tolerance and r["mcc"] >= reference["mcc"] - args.tolerance  # noqa: E731
    passing = [key for key in grid if qualifies(results[key])]
    best = REFERENCE
    if passing:  # the fastest; of settings within 5 % of its time (timing noise: equally fast), the most accurate
        fastest = min(results[k]["seconds"] for k in passing)
        best = max((k for k in passing if results[k]["seconds"] <= 1.05 * fastest), key=lambda k: results[k]["single"] + results[k]["mcc"])
    rows = [(label(k), f"single {100 * r['single']:.1f}%  mcc {100 * r['mcc']:.1f}%  {r['seconds']:.3f} s" + ("  qualifies" if k in passing else ""))
            for k, r in results.items()]  # fmt: skip
    rows.append(("recommended default", label(best)))
    keyed = lambda k: {"scheduler": k[0], "steps": k[1], "guidance_end": k[2], "unet_passes": unet_passes(k)}  # noqa: E731
    figures = {
        "model": args.model, "reference": {**keyed(REFERENCE), **reference}, "tolerance": args.tolerance, "quick": args.quick,
        "seeds": list(seeds),
        "grid": [{**keyed(k), **r, "qualifies": k in passing} for k, r in results.items() if k in grid],
        "recommended": keyed(best),
    }  # fmt: skip
    if args.write_default:
        save_defaults(args.model, *best)
        rows.append(("written to", f"{args.model}/model_index.json and scheduler/"))
    report(rows, figures, args.json)


if __name__ == "__main__":
    main()
