"""Sharded training for the real-data stages (`shard: true` in a `fusion/` stage config): FSDP2, torch's
`fully_shard`, for models whose weights do not fit one GPU.

Under `accelerate launch` with N processes, each process keeps 1/N of every weight of the sharded modules — the
LM's decoder layers, the U-Net's blocks, and the rest of the encoder and U-Net as one more unit — and gathers a
unit's full weights only while it runs (a root unit stays gathered after a pass with no backward, such as the frozen
encoder's in stage 4; `multifusion plan --shard` counts the roots as held). Frozen weights (the LM, most of the U-Net) are split as well as trained
ones, which is what lets an LM larger than one GPU's memory be fused. Gradients of the trained weights are
reduce-scattered by FSDP itself (no DDP wrapper), so N sharded processes train as one process with the same global
batch, as DDP does.

The trained parameters become DTensors (each process holds its rows); the optimizer and the EMA work on those
shards. Checkpoints (`ShardedState`) are written by every process with `torch.distributed.checkpoint`, each its own
shards; the saved pipeline holds full weights (`gathered`).

Every process must run a sharded module the same number of times (each run gathers its weights from all): the
stages encode and denoise once per step in every process, and draw sample images in every process.
"""

from __future__ import annotations

from pathlib import Path

import torch
from accelerate import Accelerator
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)


def check_shard(accelerator: Accelerator, shard: bool) -> None:
    """Refuse what a sharded run cannot do: fp16, whose gradient scaler it does not have."""
    if shard and accelerator.num_processes > 1 and accelerator.mixed_precision == "fp16":
        raise ValueError('shard: sharded runs have no gradient scaler, which fp16 needs; use mixed precision "bf16"')


def is_sharded(accelerator: Accelerator, shard: bool) -> bool:
    """Whether a stage shards: asked for, and more than one process (one process has nothing to split)."""
    check_shard(accelerator, shard)
    if shard and accelerator.num_processes == 1:
        accelerator.print("shard: one process has nothing to split; training unsharded")
    return shard and accelerator.num_processes > 1


def shard(name: str, module: torch.nn.Module, blocks: list[torch.nn.Module], accelerator: Accelerator) -> None:
    """Split `module` over the processes, each of `blocks` its own unit (gathered only while it runs), the rest of
    `module` one more unit; say how much each process holds."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(accelerator.device.type, (accelerator.num_processes,))
    for block in blocks:
        fully_shard(block, mesh=mesh)
    fully_shard(module, mesh=mesh)
    held = sum(p.to_local().numel() for p in module.parameters())
    total = sum(p.numel() for p in module.parameters())
    accelerator.print(f"{name}: sharded over {accelerator.num_processes} processes (FSDP2): each holds {held:,} of its "
                      f"{total:,} weights")  # fmt: skip


def lm_blocks(encoder) -> list[torch.nn.Module]:
    """The LM's decoder layers: the modules a transformers model names as not to be split (`_no_split_modules`);
    none for a model that names none (its encoder is then sharded as one unit, gathered whole while it runs)."""
    names = set(getattr(encoder.lm, "_no_split_modules", None) or ())
    return [m for m in encoder.lm.modules() if type(m).__name__ in names]


def unet_blocks(unet) -> list[torch.nn.Module]:
    return [*unet.down_blocks, unet.mid_block, *unet.up_blocks]


def gathered(module: torch.nn.Module) -> torch.nn.Module | None:
    """A plain copy of a sharded module with its full weights, in the main process (None in the others); every
    process must call it."""
    full = get_model_state_dict(module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if torch.distributed.get_rank() != 0:
        return None
    copy = type(module).from_config(module.config)
    copy.load_state_dict(full)
    return copy.eval()


class ShardedState:
    """A sharded stage's resumable state: its module's trained weights, the optimizer, the learning-rate schedule
    and the EMA, each process writing and reading its own shards (`torch.distributed.checkpoint`)."""

    def __init__(self, module: torch.nn.Module, ema=None) -> None:
        self.module, self.ema = module, ema

    def _state(self, optimizer: torch.optim.Optimizer, schedule) -> dict:
        return {
            "model": get_model_state_dict(self.module, options=StateDictOptions(ignore_frozen_params=True)),
            "optimizer": get_optimizer_state_dict(self.module, optimizer),
            "schedule": schedule.state_dict(),
            "ema": {"step": self.ema.optimization_step, **{str(i): s for i, s in enumerate(self.ema.shadow_params)}}
            if self.ema is not None else {},
        }  # fmt: skip

    def save(self, directory: Path, optimizer: torch.optim.Optimizer, schedule) -> None:
        import torch.distributed.checkpoint as dcp

        dcp.save(self._state(optimizer, schedule), checkpoint_id=str(directory / "sharded"))

    def load(self, directory: Path, optimizer: torch.optim.Optimizer, schedule) -> None:
        import torch.distributed.checkpoint as dcp

        state = self._state(optimizer, schedule)
        dcp.load(state, checkpoint_id=str(directory / "sharded"))  # in place: each process its shards, the EMA's too
        set_model_state_dict(self.module, state["model"], options=StateDictOptions(strict=False))
        set_optimizer_state_dict(self.module, optimizer, state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        if self.ema is not None:
            self.ema.optimization_step = state["ema"]["step"]  # (its decay warms up with it)
