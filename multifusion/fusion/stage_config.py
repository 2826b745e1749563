"""What the real-data stages share: their settings (JSON-overridable), their accelerator, and the data stream."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path

from accelerate import Accelerator

from ..train.captioned_images import CaptionedImage, CaptionedImages


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


def endless(data: str | Path, rank: int, world_size: int, batch_size: int) -> Iterator[tuple[int, list[CaptionedImage]]]:
    """(epoch, this process's next `batch_size` samples), epoch after epoch; a last short batch is dropped."""
    for epoch in itertools.count():
        batch, produced = [], False
        for sample in CaptionedImages(data, rank=rank, world_size=world_size):
            batch.append(sample)
            if len(batch) == batch_size:
                produced = True
                yield epoch, batch
                batch = []
        if not produced:
            raise ValueError(f"{data}: not one batch of {batch_size} samples for process {rank} of {world_size}")
