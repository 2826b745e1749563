"""The calls waiting in Gradio's queue for the model: the studio's clicks and the API's calls alike.

Gradio's queue holds what it accepted and not yet ran, and drops what is cancelled or whose tab closed; this reads
it, so that a visitor is told about every job ahead of them. Gradio's queue is internal to Gradio: if its shape
ever changes, this reports nothing waiting rather than failing a click.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import gradio as gr


def queued_calls(demo: gr.Blocks, concurrency_id: str, costs: Mapping[str, Callable[..., float]]) -> tuple[int, float]:
    """How many calls of the functions named in `costs` (by their `__name__`) wait for `concurrency_id`, and what
    they cost together (`costs[name](*inputs)`; a call whose inputs do not price, e.g. bad settings, counts as 0: it
    fails at once when its turn comes)."""
    try:
        waiting = list(demo._queue.event_queue_per_concurrency_id[concurrency_id].queue)
    except (AttributeError, KeyError):
        return 0, 0.0
    count, total = 0, 0.0
    for event in waiting:
        cost_of = costs.get(getattr(event.fn, "name", None))
        if cost_of is None:
            continue
        count += 1
        try:
            total += cost_of(*event.data.data)
        except Exception:  # noqa: BLE001 - anything a hostile client sent: priced at 0, never a crash
            pass
    return count, total
