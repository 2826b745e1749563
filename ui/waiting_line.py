"""What a visitor who clicks is told is ahead of them, from the real cost of that work (Gradio's own estimate
averages past jobs, whatever their size, and was off by about 4x when big and small requests mixed).

Ahead of a click are the job the model runs now and the jobs waiting in Gradio's queue for the model. The running
job holds a `Ticket` here from its start to its end, whatever the end (done, refused, cancelled, failed, its tab
closed: `Studio.job` leaves in a `finally`); the waiting ones are read from Gradio's queue itself
(`queued_calls.py`), which holds only what it accepted and drops what is cancelled. Nothing joins on a click, so a
refused request or a double click cannot leave a phantom behind.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass
class Ticket:
    session: str
    cost: float  # native-image steps (`Runtime.cost`)
    done: float = 0.0  # the share of the job already done

    @property
    def remaining(self) -> float:
        return self.cost * (1.0 - self.done)


class WaitingLine:
    """The jobs running now (one at a time on one model; API and studio alike)."""

    def __init__(self) -> None:
        self._tickets: list[Ticket] = []
        self._lock = threading.Lock()

    def start(self, session: str, cost: float) -> Ticket:
        """A job of `session` that costs `cost` starts running."""
        with self._lock:
            ticket = Ticket(session, cost)
            self._tickets.append(ticket)
            return ticket

    def leave(self, session: str | None = None, ticket: Ticket | None = None) -> None:
        """Remove `ticket`, or every ticket of `session` (its jobs were cancelled or its tab closed)."""
        with self._lock:
            self._tickets = [t for t in self._tickets if t is not ticket and (session is None or t.session != session)]

    def running(self) -> tuple[int, float]:
        """The running jobs and the cost they have left."""
        with self._lock:
            return len(self._tickets), sum(t.remaining for t in self._tickets)

    def __len__(self) -> int:
        return len(self._tickets)


def wait_message(jobs_ahead: int, cost_ahead: float, seconds_per_cost: float | None) -> str:
    """What a visitor who just clicked is told; "" when nothing is ahead of them."""
    if jobs_ahead == 0:
        return ""
    jobs = "1 job" if jobs_ahead == 1 else f"{jobs_ahead} jobs"
    if seconds_per_cost is None:  # nothing measured yet on this server
        return f"**Waiting:** {jobs} ahead of yours."
    seconds = cost_ahead * seconds_per_cost
    took = f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"
    return f"**Waiting:** {jobs} ahead of yours, about {took} of work by what they cost."
