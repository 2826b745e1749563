"""A bound on the sessions the server remembers for clients that are not browser tabs.

Gradio keeps a `SessionState` (a copy of the app's whole component config, about 0.15 MB for the studio) for every
session hash it sees, up to 10,000 of them. A browser tab has one session; an API client or a raw HTTP caller may
send a new hash with every request, so the server grew by about 0.16 MB per request and would have held 1.5 GB
before Gradio's own bound evicted anything. A tab is known by its heartbeat (`/heartbeat/{session}`, which every
page opens); of the other sessions, which hold nothing a later request needs, only the newest `KEEP` are kept.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

KEEP = 32  # sessions without a heartbeat kept (the newest), whatever their number of requests
TABS = 10_000  # heartbeat sessions remembered as tabs (Gradio's own session bound)


class SessionBound:
    """ASGI middleware: note every tab's session from its heartbeat; after a request that added a session, forget
    all but the newest `keep` sessions that never opened one."""

    def __init__(self, app: Any, keep: int = KEEP) -> None:
        self.app, self.keep = app, keep
        self.tabs: OrderedDict[str, None] = OrderedDict()
        self.sessions_seen = 0  # how many sessions Gradio held after the last pruning: unchanged means nothing new

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path = scope.get("path", "")
            if "/heartbeat/" in path:
                self.tabs[path.rsplit("/", 1)[-1]] = None
                while len(self.tabs) > TABS:
                    self.tabs.popitem(last=False)
        try:
            await self.app(scope, receive, send)
        finally:
            if scope["type"] == "http":
                self.forget_one_shot_sessions(scope.get("app"))

    def forget_one_shot_sessions(self, app: Any) -> None:
        holder = getattr(getattr(app, "get_blocks", lambda: None)(), "state_holder", None)
        if holder is None:
            return
        with holder.lock:
            if len(holder.session_data) == self.sessions_seen:  # static files, heartbeats: no session was added
                return
            one_shot = [session for session in holder.session_data if session not in self.tabs]  # oldest first
            for session in one_shot[: max(len(one_shot) - self.keep, 0)]:
                del holder.session_data[session]
                holder.time_last_used.pop(session, None)
            self.sessions_seen = len(holder.session_data)
