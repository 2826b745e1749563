"""Average the last refine rounds into one pipeline: a uniform soup of checkpoints along one lineage.

Each refine round starts from the round before and is taught by it, so consecutive rounds lie close in weight
space and their parameter-wise mean is a working pipeline. A further round strengthens the languages that already
read a frame and weakens the others (`reports/tiny-v17/`, `reports/tiny-v18/`); the mean of the last two rounds
keeps most of both. `train all` ends with it when `refine.average_last` is 2 or more:

    OUT/refine-(K-1)/pipeline + OUT/refine-K/pipeline  ->  OUT/average/pipeline
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator

from ..pipeline import MultiFusionPipeline
from ..shapes.vocabulary import write_vocabulary

AVERAGED = ("encoder", "unet", "vae")  # the trained components; tokenizer and vision processor are shared


def average_pipelines(sources: list[Path], target: Path) -> Path:
    """Save at `target` the first of `sources` with every floating-point weight of its trained components replaced
    by the mean over all `sources`, which must be pipelines of one architecture (rounds of one lineage)."""
    if len(sources) < 2:
        raise ValueError(f"averaging needs two or more pipelines, got {len(sources)}")
    pipes = [MultiFusionPipeline.from_pretrained(source) for source in sources]
    for name in AVERAGED:
        states = [getattr(pipe, name).state_dict() for pipe in pipes]
        for source, state in zip(sources[1:], states[1:]):
            if {k: v.shape for k, v in state.items()} != {k: v.shape for k, v in states[0].items()}:
                raise ValueError(f"{source}: its {name} differs in architecture from {sources[0]}'s; only pipelines "
                                 "of one lineage (refine rounds of one run) can be averaged")  # fmt: skip
        mean = {k: torch.stack([s[k].float() for s in states]).mean(0).to(v.dtype) if v.is_floating_point() else v
                for k, v in states[0].items()}  # fmt: skip
        getattr(pipes[0], name).load_state_dict(mean)
    pipes[0].save_pretrained(target)
    write_vocabulary(target)  # the words it can know, for the studio
    return target


def run(config: dict[str, Any], out: Path, accelerator: Accelerator, resume: bool = False,
        sources: list[Path] | None = None) -> Path:
    """Average `sources` (the last `refine.average_last` rounds) into OUT/average/pipeline; seconds, so a resumed
    run simply redoes it."""
    return average_pipelines(list(sources or []), out / "average" / "pipeline")
