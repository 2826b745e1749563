"""Hugging Face ZeroGPU: each generation runs under `spaces.GPU`, asking for the GPU time its own request costs.

A ZeroGPU Space gets a GPU slice per call, for the duration the call asks for: too short and a long job is cut off
mid-way, too long and the visitor waits in a longer line (and spends more of their quota). The duration here is
the request's cost (`Runtime.cost`: images x steps x size) times the seconds one native-size step takes, as the
runtime has measured it on this Space, or, before the first job, as the model family estimates it
(`FamilyInfo.gpu_seconds_per_step`), plus the fixed part (encoding, decoding, moving to the GPU).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from multifusion.runtime import GenerationSettings

from .handlers import Studio

FIXED_SECONDS = 8.0  # encoding, decoding, the first transfer
MARGIN = 1.25  # a job asks for a quarter more than its estimate
MIN_SECONDS, MAX_SECONDS = 15, 600

Wrap = Callable[[Callable, Callable[..., int]], Callable]  # (function, prompts it makes from its arguments) -> wrapped


def gpu_seconds(studio: Studio, settings: GenerationSettings, prompts: int = 1) -> int:
    """Whole seconds of GPU to ask for a request of `prompts` prompts with `settings`."""
    runtime = studio.runtime
    per_step = runtime.seconds_per_cost or runtime.info.gpu_seconds_per_step
    estimate = FIXED_SECONDS + MARGIN * runtime.cost(settings, prompts) * per_step
    return int(min(MAX_SECONDS, max(MIN_SECONDS, math.ceil(estimate))))


def zero_gpu(spaces: Any, studio: Studio) -> Wrap:
    """A wrapper for the app's GPU functions: `spaces.GPU` with a duration computed from each call's request.
    Every wrapped function takes the studio first and a `GenerationSettings` among its arguments."""

    def wrap(fn: Callable, prompts: Callable[..., int]) -> Callable:
        def duration(*args: Any, **kwargs: Any) -> int:
            settings = next(a for a in (*args, *kwargs.values()) if isinstance(a, GenerationSettings))
            return gpu_seconds(studio, settings, prompts(*args, **kwargs))

        return spaces.GPU(duration=duration)(fn)  # ZeroGPU calls `duration` with the call's own arguments

    return wrap


def no_gpu_slices(fn: Callable, prompts: Callable[..., int]) -> Callable:
    """Off ZeroGPU: the function as it is."""
    return fn
