"""One training loop for every stage of both recipes: accelerate, AdamW with warm-up, gradient clipping, progress
bar, a JSONL loss log, and checkpoints that `--resume` continues from (its clock too: `elapsed_s` in the log and in
STATE/step.json counts the phase's training time over all its runs)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

if TYPE_CHECKING:
    from .sharding import ShardedState


def train(
    name: str,
    params: Iterable[torch.nn.Parameter],
    modules: list[torch.nn.Module],
    loss_fn: Callable[[int], torch.Tensor],
    steps: int,
    lr: float,
    out: Path,
    accelerator: Accelerator,
    resume: bool = False,
    checkpoint_every: int = 300,
    after_step: Callable[[int], None] | None = None,
    sharded: ShardedState | None = None,
) -> None:
    """Minimise `loss_fn(step)` over `params` for `steps` steps; `modules` are the models to checkpoint.

    With the accelerator's `gradient_accumulation_steps` > 1 a step is one micro-batch and the optimizer steps
    every that many; `after_step(step)` runs after each (e.g. an EMA update). A `sharded` stage's modules are split
    over the processes (`sharding.py`): its optimizer and schedule stay its own, and it checkpoints them."""
    params = [p for p in params if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
    )
    if sharded is None:
        optimizer, schedule = accelerator.prepare(optimizer, schedule)
    state_dir, log_path = out / f"{name}-state", out / "log.jsonl"
    start, earlier = 0, 0.0
    if resume and (state_dir / "step.json").exists():
        if sharded is None:
            accelerator.load_state(str(state_dir))
        else:
            sharded.load(state_dir, optimizer, schedule)
        checkpoint = json.loads((state_dir / "step.json").read_text())
        start, earlier = checkpoint["step"], checkpoint.get("elapsed_s", 0.0)
    out.mkdir(parents=True, exist_ok=True)
    for module in modules:
        module.train()

    began, bar = time.time() - earlier, tqdm(range(start, steps), desc=name, initial=start, total=steps, disable=not accelerator.is_main_process)
    with log_path.open("a") as log:
        for step in bar:
            with accelerator.accumulate(*modules):
                loss = loss_fn(step)
                accelerator.backward(loss)
                if accelerator.sync_gradients:  # (a prepared optimizer skips the other micro-batches by itself)
                    accelerator.clip_grad_norm_(params, 1.0)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                schedule.step()
            if after_step is not None:
                after_step(step)
            if step % 10 == 0 or step == steps - 1:
                bar.set_postfix(loss=f"{loss.item():.4f}")
                log.write(json.dumps({"stage": name, "step": step, "loss": loss.item(), "lr": schedule.get_last_lr()[0],
                                      "elapsed_s": round(time.time() - began, 1)}) + "\n")  # fmt: skip
            if (step + 1) % checkpoint_every == 0 or step == steps - 1:
                if sharded is None:
                    accelerator.save_state(str(state_dir))
                else:
                    sharded.save(state_dir, optimizer, schedule)
                checkpoint = {"step": step + 1, "elapsed_s": round(time.time() - began, 1)}
                (state_dir / "step.json").write_text(json.dumps(checkpoint))
                log.flush()  # a run stopped after this checkpoint keeps the log lines that lead to it
    for module in modules:
        module.eval()


def checkpointed_seconds(stage_dir: Path) -> float:
    """Training time a stopped stage's earlier runs saved in its phases' checkpoints (`STATE/step.json`, written
    by `train`): a resumed stage is timed as if it had run once (set-up counted once, the steps after the last
    checkpoint once)."""
    return sum(json.loads(p.read_text()).get("elapsed_s", 0.0) for p in stage_dir.glob("*-state/step.json"))
