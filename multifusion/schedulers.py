"""Named samplers a user may pick, each built from the model's own scheduler config.

A model's noise schedule (betas, prediction type, zero terminal SNR, timestep spacing) is part of what it was
trained with, so a sampler keeps it and changes only how it steps: `make_scheduler("unipc", pipe.scheduler.config)`.
Every scheduler here but the Karras-spaced one supports the zero-terminal-SNR schedules the shapes models use; that
one is refused for them.

A model directory declares its default sampler (the scheduler saved in `scheduler/`) and its default number of
steps (`default_steps` in `model_index.json`); `save_defaults` writes both, the studio and CLI read them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    UniPCMultistepScheduler,
)

from .errors import PromptError

_DPM = {"algorithm_type": "dpmsolver++", "use_karras_sigmas": False, "lower_order_final": True}
SCHEDULERS: dict[str, tuple[type, dict[str, Any]]] = {
    "dpm++2m": (DPMSolverMultistepScheduler, {**_DPM, "solver_order": 2}),
    "dpm++2m-karras": (DPMSolverMultistepScheduler, {**_DPM, "solver_order": 2, "use_karras_sigmas": True}),
    "dpm++3m": (DPMSolverMultistepScheduler, {**_DPM, "solver_order": 3}),
    "unipc": (UniPCMultistepScheduler, {"solver_order": 2, "use_karras_sigmas": False}),
    "euler": (EulerDiscreteScheduler, {"use_karras_sigmas": False}),
    "euler-a": (EulerAncestralDiscreteScheduler, {}),
    "ddim": (DDIMScheduler, {}),
}

# what AUTOMATIC1111 and the tools that read its PNG `parameters` call each sampler
LABELS = {"dpm++2m": "DPM++ 2M", "dpm++2m-karras": "DPM++ 2M Karras", "dpm++3m": "DPM++ 3M", "unipc": "UniPC",
          "euler": "Euler", "euler-a": "Euler a", "ddim": "DDIM", "FlowMatchEulerDiscreteScheduler": "Euler"}  # fmt: skip


def make_scheduler(name: str, config: Any) -> Any:
    """The sampler `name` (a key of `SCHEDULERS`) on the noise schedule of `config` (a scheduler's config)."""
    if name not in SCHEDULERS:
        raise PromptError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}")
    cls, overrides = SCHEDULERS[name]
    if overrides.get("use_karras_sigmas") and config.get("rescale_betas_zero_snr"):
        # Karras spacing runs from the largest sigma, which zero terminal SNR makes near-infinite: measured on
        # multifusion-tiny, 48 % single accuracy at 10 steps against 100 % (benchmarks/steps.py)
        raise PromptError(f"{name} does not suit this model's zero-terminal-SNR noise schedule; use dpm++2m or euler")
    return cls.from_config(config, **overrides)


def scheduler_name(scheduler: Any) -> str:
    """The `SCHEDULERS` name of `scheduler`, or its class name when it is none of them."""
    for name, (cls, overrides) in SCHEDULERS.items():
        if type(scheduler) is cls and all(scheduler.config.get(k) == v for k, v in overrides.items()):
            return name
    return type(scheduler).__name__


def save_defaults(model: str | Path, scheduler: str, steps: int, guidance_end: float = 1.0) -> None:
    """Make `scheduler`, `steps` and `guidance_end` (the share of the steps that are guided) the default of the
    pipeline saved in `model` (its weights are untouched)."""
    model = Path(model)
    index_path, config_path = model / "model_index.json", model / "scheduler" / "scheduler_config.json"
    chosen = make_scheduler(scheduler, json.loads(config_path.read_text()))
    chosen.save_config(config_path.parent)
    index = json.loads(index_path.read_text())
    index["scheduler"] = ["diffusers", type(chosen).__name__]
    index["default_steps"] = steps
    index["default_guidance_end"] = guidance_end
    index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
