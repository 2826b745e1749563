"""Average the last refine rounds into one pipeline: a uniform soup of checkpoints along one lineage.

Each refine round starts from the round before and is taught by it, so consecutive rounds lie close in weight
space and their parameter-wise mean is a working pipeline. A further round strengthens the languages that already
read a frame and weakens the others (runs v17 and v18 in `reports/RUNS.md`); the mean of the last two rounds
keeps most of both. `train all` ends with it when `refine.average_last` is 2 or more:

    OUT/refine-(K-1)/pipeline + OUT/refine-K/pipeline  ->  OUT/average/pipeline
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator

from ...pipeline import MultiFusionPipeline
from .data import save_pipeline

AVERAGED = ("encoder", "unet", "vae")  # the trained components; tokenizer and vision processor are shared


def average_pipelines(sources: list[Path], target: Path) -> Path:
    """Save at `target` the first of `sources` with every floating-point weight of its trained components replaced
    by the mean over all `sources`. They must share one architecture (the same parameter names and shapes); only
    rounds of one run, which share their start, average into a working pipeline."""
    if len(sources) < 2:
        raise ValueError(f"averaging needs two or more pipelines, got {len(sources)}")
    pipes = [MultiFusionPipeline.from_pretrained(source) for source in sources]
    states = {name: [getattr(pipe, name).state_dict() for pipe in pipes] for name in AVERAGED}
    for name, per_pipe in states.items():
        shapes = [{k: v.shape for k, v in state.items()} for state in per_pipe]
        for source, other in zip(sources[1:], shapes[1:]):
            if other != shapes[0]:
                raise ValueError(f"{source}: its {name} differs in architecture from {sources[0]}'s; only refine "
                                 "rounds of one run can be averaged")  # fmt: skip
    for name, per_pipe in states.items():
        mean = {k: torch.stack([s[k].float() for s in per_pipe]).mean(0).to(v.dtype) if v.is_floating_point() else v
                for k, v in per_pipe[0].items()}  # fmt: skip
        getattr(pipes[0], name).load_state_dict(mean)
    return save_pipeline(pipes[0], target)


def run(config: dict[str, Any], out: Path, accelerator: Accelerator, *, sources: list[Path], resume: bool = False) -> Path:
    """Average `sources` (the last `refine.average_last` rounds) into OUT/average/pipeline; it takes seconds, so a
    resumed run simply redoes it."""
    return average_pipelines(sources, out / "average" / "pipeline")
