"""How a compiled U-Net copes with new sizes: torch's default (shapes made symbolic from the second size on) against
one static graph per shape (`runtime.compile_by_shape`, what the runtime does), each in a fresh process with an empty
inductor cache, on the shipped model at its default setting.

Prints one JSON line per mode: the first image (compiling), the steady state, the first image at four new sizes,
the first two sizes again (graphs kept), and the steady state at the largest size.

    python benchmarks/compile_modes.py   # about 20 minutes on a 2-core CPU
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import torch

from common import compile_timings, median, one_image, timed
from multifusion.runtime import DEFAULT_MODEL, Runtime, RuntimeOptions, compile_by_shape

SIZES = (80, 96, 112, 128)


def measure(mode: str) -> dict:
    runtime = Runtime.load(DEFAULT_MODEL, RuntimeOptions(device="cpu", cache_size=0))
    if mode == "static":
        compile_by_shape(runtime.pipe.unet)
    else:
        torch._dynamo.config.recompile_limit = 64  # the same room for graphs, so only the shapes policy differs
        runtime.pipe.unet.compile()
    steps = runtime.default_steps
    row = {"mode": mode, **compile_timings(runtime, steps, list(SIZES), repeats=3)}
    row["second_size_again_s"] = one_image(runtime, steps, SIZES[0])
    row[f"steady_{SIZES[-1]}_s"] = median(timed(lambda: one_image(runtime, steps, SIZES[-1]), 3))
    return {k: [round(x, 3) for x in v] if isinstance(v, list) else round(v, 3) if isinstance(v, float) else v for k, v in row.items()}


if __name__ == "__main__":
    if len(sys.argv) > 1:
        print(json.dumps(measure(sys.argv[1])))
    else:
        for mode in ("automatic", "static"):
            with tempfile.TemporaryDirectory() as cache:
                env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
                out = subprocess.run([sys.executable, __file__, mode], env=env, capture_output=True, text=True, check=True)
                print(out.stdout.strip().splitlines()[-1], flush=True)
