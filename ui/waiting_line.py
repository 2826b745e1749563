"""The studio's ledger of the jobs that wait for the model, with what each costs, so that a visitor who joins is
told how much work is ahead of them from the real cost of those jobs (Gradio's own estimate averages past jobs,
whatever their size, and was off by about 4x when big and small requests mixed).

Jobs join in click order, which is the order of the one queue they wait in; a job leaves when it ends, is
cancelled, or its tab closes. A ticket that never starts (a job Gradio turned away) expires after `max_wait` s.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


@dataclass
class Ticket:
    session: str
    cost: float  # native-image steps (`Runtime.cost`)
    joined: float = field(default_factory=time.monotonic)
    started: bool = False
    done: float = 0.0  # the share of a started job already done

    @property
    def remaining(self) -> float:
        return self.cost * (1.0 - self.done)


class WaitingLine:
    def __init__(self, max_wait: float = 900.0) -> None:
        self.max_wait = max_wait
        self._tickets: list[Ticket] = []
        self._lock = threading.Lock()

    def join(self, session: str, cost: float) -> tuple[int, float]:
        """Add a job of `session`; returns the number of jobs ahead of it and their remaining cost."""
        with self._lock:
            now = time.monotonic()
            self._tickets = [t for t in self._tickets if t.started or now - t.joined < self.max_wait]
            ahead = list(self._tickets)
            self._tickets.append(Ticket(session, cost))
        return len(ahead), sum(t.remaining for t in ahead)

    def start(self, session: str, cost: float) -> Ticket:
        """The ticket of `session`'s job that now runs: its oldest waiting one, or a new one (a job that did not
        join, e.g. from the API)."""
        with self._lock:
            ticket = next((t for t in self._tickets if t.session == session and not t.started), None)
            if ticket is None:
                ticket = Ticket(session, cost)
                self._tickets.insert(0, ticket)
            ticket.started, ticket.cost = True, cost
            return ticket

    def leave(self, session: str | None = None, ticket: Ticket | None = None) -> None:
        """Remove `ticket`, or every ticket of `session` (its jobs were cancelled or its tab closed)."""
        with self._lock:
            self._tickets = [t for t in self._tickets if t is not ticket and (session is None or t.session != session)]

    def __len__(self) -> int:
        return len(self._tickets)


def wait_message(jobs_ahead: int, cost_ahead: float, seconds_per_cost: float | None) -> str:
    """What a visitor who just joined is told; "" when nothing is ahead of them."""
    if jobs_ahead == 0:
        return ""
    jobs = "1 job" if jobs_ahead == 1 else f"{jobs_ahead} jobs"
    if seconds_per_cost is None:  # nothing measured yet on this server
        return f"**Waiting:** {jobs} ahead of yours."
    seconds = cost_ahead * seconds_per_cost
    took = f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"
    return f"**Waiting:** {jobs} ahead of yours, about {took} of work by what they cost."
