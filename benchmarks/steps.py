"""Accuracy against sampler and number of steps: the cheapest setting that draws as well as the 25-step default.

Runs the `single` and `mcc` benchmarks of `multifusion eval` (same seeds and n as the full eval) at the reference
setting (dpm++2m, 25 steps) and at every sampler x steps of the grid. A setting qualifies when its mean `single`
accuracy and its mean `mcc` accuracy are each at most `--tolerance` below the reference's; the cheapest qualifying
setting (fewest steps, then the best accuracies) is the recommendation, and `--write-default` makes it the model's
declared default (`schedulers.save_defaults`).

    python benchmarks/steps.py [--model DIR] [--schedulers dpm++2m,unipc] [--steps 6,8,10,12] [--json] [--write-default]
"""

from __future__ import annotations

import argparse
import sys

import torch

from common import accuracies, report
from multifusion.runtime import DEFAULT_MODEL, Runtime, RuntimeOptions
from multifusion.schedulers import SCHEDULERS, save_defaults

REFERENCE = ("dpm++2m", 25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--schedulers", default="dpm++2m,dpm++3m,unipc,euler")
    parser.add_argument("--steps", default="6,8,10,12")
    parser.add_argument("--tolerance", type=float, default=0.02, help="accuracy a setting may lose (default: 0.02)")
    parser.add_argument("--quick", action="store_true", help="the eval's small samples, for a fast look")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--write-default", action="store_true", help="save the recommendation as the model's default")
    args = parser.parse_args()
    schedulers = [s.strip() for s in args.schedulers.split(",") if s.strip()]
    unknown = [s for s in schedulers if s not in SCHEDULERS]
    if unknown:
        sys.exit(f"unknown scheduler(s) {', '.join(unknown)}; choose from {', '.join(SCHEDULERS)}")
    grid = [(s, int(n)) for n in args.steps.split(",") for s in schedulers]

    torch.set_grad_enabled(False)
    runtime = Runtime.load(args.model, RuntimeOptions(device="cpu"))
    results = {}
    for scheduler, steps in [REFERENCE, *grid]:
        results[(scheduler, steps)] = accuracies(runtime, scheduler, steps, ("single", "mcc"), args.quick)
        r = results[(scheduler, steps)]
        print(f"{scheduler:>15} {steps:3d} steps  single {100 * r['single']:5.1f}%  mcc {100 * r['mcc']:5.1f}%", flush=True)

    reference = results[REFERENCE]
    qualifies = lambda r: r["single"] >= reference["single"] - args.tolerance and r["mcc"] >= reference["mcc"] - args.tolerance  # noqa: E731
    passing = [key for key in grid if qualifies(results[key])]
    best = min(passing, key=lambda k: (k[1], -results[k]["single"] - results[k]["mcc"])) if passing else REFERENCE
    rows = [(f"{s} {n} steps", f"single {100 * r['single']:.1f}%  mcc {100 * r['mcc']:.1f}%" + ("  qualifies" if (s, n) in passing else ""))
            for (s, n), r in results.items()]  # fmt: skip
    rows.append(("recommended default", f"{best[0]}, {best[1]} steps"))
    figures = {
        "model": args.model, "reference": {"scheduler": REFERENCE[0], "steps": REFERENCE[1], **reference},
        "tolerance": args.tolerance, "quick": args.quick,
        "grid": [{"scheduler": s, "steps": n, **r, "qualifies": (s, n) in passing} for (s, n), r in results.items() if (s, n) in grid],
        "recommended": {"scheduler": best[0], "steps": best[1]},
    }  # fmt: skip
    if args.write_default:
        save_defaults(args.model, *best)
        rows.append(("written to", f"{args.model}/model_index.json and scheduler/"))
    report(rows, figures, args.json)


if __name__ == "__main__":
    main()
