"""What the real-data stages share: their settings (JSON-overridable), their accelerator, the data stream, the EMA of
the trained weights, and how a stage's result is saved."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from accelerate import Accelerator
from diffusers.training_utils import EMAModel

from ..training.captioned_images import CaptionedImage, CaptionedImages
from ..training.sharding import gathered


@dataclass
class StageConfig:
    steps: int = 10000  # micro-batches
    batch_size: int = 8  # per process; the global batch is batch_size x processes x gradient_accumulation_steps
    lr: float = 1e-5
    resolution: int = 512
    center_crop: bool = True
    gradient_accumulation_steps: int = 1
    mixed_precision: str | None = None  # "no", "fp16", "bf16"; None: as `accelerate launch` says
    gradient_checkpointing: bool = True
    ema_decay: float = 0.9999  # 0 for none
    checkpoint_every: int = 500
    seed: int = 0
    shard: bool = False  # FSDP2 over the processes, frozen weights too (`training/sharding.py`); else DDP

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "resolution", "gradient_accumulation_steps", "checkpoint_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}")
        for name in ("steps", "checkpoint_every"):  # else micro-batches would be dropped or a checkpoint cut a step
            if getattr(self, name) % self.gradient_accumulation_steps:
                raise ValueError(f"{name} ({getattr(self, name)}) must be a multiple of gradient_accumulation_steps "
                                 f"({self.gradient_accumulation_steps})")  # fmt: skip
        if self.mixed_precision not in (None, "no", "fp16", "bf16"):
            raise ValueError(f'mixed_precision must be "no", "fp16" or "bf16", got {self.mixed_precision!r}')
        if not 0 <= self.ema_decay < 1 or not self.lr > 0:
            raise ValueError("ema_decay must be from 0 (no EMA) to below 1, and lr positive")

    @classmethod
    def load(cls, path: str | Path | None):
        """The defaults, overridden by the keys of a JSON file; an unknown key is an error."""
        if path is None:
            return cls()
        values = json.loads(Path(path).read_text())
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"{path}: unknown keys {', '.join(unknown)}; known: {', '.join(known)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    def accelerator(self) -> Accelerator:
        """The run's accelerator. The learning-rate schedule is in micro-batches, one `scheduler.step()` each, on
        any number of processes (accelerate would otherwise step it once per process, as if the data were split)."""
        return Accelerator(gradient_accumulation_steps=self.gradient_accumulation_steps, mixed_precision=self.mixed_precision,
                           step_scheduler_with_optimizer=False)  # fmt: skip


def endless(data: str | Path, rank: int, world_size: int, batch_size: int, skip: int = 0) -> Iterator[tuple[int, list[CaptionedImage]]]:
    """(epoch, this process's next `batch_size` samples), epoch after epoch, after the first `skip` batches (those
    a resumed run already trained on); a last short batch is dropped."""
    for epoch in itertools.count():
        batch, produced = [], False
        for sample in CaptionedImages(data, rank=rank, world_size=world_size):
            batch.append(sample)
            if len(batch) == batch_size:
                produced = True
                if skip:
                    skip -= 1
                else:
                    yield epoch, batch
                batch = []
        if not produced:
            raise ValueError(f"{data}: not one batch of {batch_size} samples for process {rank} of {world_size}")


class Batches:
    """The stream of a stage's micro-batches, opened at the step it first asks for (after a resume, past the
    batches the run already trained on)."""

    def __init__(self, data: str | Path, rank: int, world_size: int, batch_size: int) -> None:
        self.args, self.stream = (data, rank, world_size, batch_size), None

    def at(self, step: int) -> tuple[int, list[CaptionedImage]]:
        if self.stream is None:
            self.stream = endless(*self.args, skip=step)
        return next(self.stream)


class TrainedWeights:
    """A stage's trained parameters and their EMA (`ema_decay` > 0), which is what the stage saves. Sharded, the
    parameters are this process's shards, and `ShardedState` checkpoints the EMA."""

    def __init__(self, parameters: list[torch.nn.Parameter], config: StageConfig, accelerator: Accelerator,
                 sharded: bool = False) -> None:  # fmt: skip
        self.parameters, self.accelerator = parameters, accelerator
        self.ema = EMAModel(parameters, decay=config.ema_decay) if config.ema_decay else None  # once they are on the device
        if self.ema is not None and not sharded:
            accelerator.register_for_checkpointing(self.ema)

    def after_step(self) -> None:
        if self.ema is not None and self.accelerator.sync_gradients:
            self.ema.to(self.accelerator.device)  # where it is after a resume, whose checkpoint loads to the CPU
            self.ema.step(self.parameters)

    @contextmanager
    def averaged(self) -> Iterator[None]:
        """The parameters hold the EMA's weights (as they will be saved) for the duration."""
        if self.ema is None:
            yield
            return
        self.ema.store(self.parameters)
        self.ema.copy_to(self.parameters)
        try:
            yield
        finally:
            self.ema.restore(self.parameters)

    def save(self, pipe, out: Path, name: str, config: StageConfig, sharded: dict[str, torch.nn.Module] | None = None) -> Path:
        """The pipeline, with the EMA's weights, in `out/pipeline`, and the stage's settings beside it; `sharded`
        names the pipeline's sharded components, gathered into full ones first."""
        self.accelerator.wait_for_everyone()
        if self.ema is not None:
            self.ema.copy_to(self.parameters)
        for component, module in (sharded or {}).items():
            setattr(pipe, component, gathered(module))  # None outside the main process, which saves nothing
        if self.accelerator.is_main_process:
            pipe.save_pretrained(out / "pipeline")
            (out / "pipeline" / f"{name}.json").write_text(json.dumps(asdict(config), indent=1))
        return out / "pipeline"
