"""The server's HTTP boundary: a bound on request bodies, and refusals that say what was wrong without echoing it.

Without these, a 200 MB body was parsed in full before anything looked at it, and FastAPI's 422 answer echoed the
whole input back (a 20 MB input, a 20 MB answer). Both go to Gradio's app through `launch(app_kwargs=...)`.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.middleware import Middleware
from starlette.requests import Request

MAX_BODY_BYTES = 100 * 2**20  # above any valid request: 8 images of a few MB as data URLs, or one 32 MiB upload
SHOWN = 40  # characters of a bad field's name a refusal quotes


class BodyLimit:
    """ASGI middleware: refuse an HTTP request whose body is over `limit` bytes, by its Content-Length before
    reading it, or as it streams in when it has none (chunked)."""

    def __init__(self, app: Any, limit: int = MAX_BODY_BYTES) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        message = f"the request body is over {self.limit // 2**20} MiB"
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await self._refuse(send, message)
        seen = 0
        started = False

        async def counted_receive() -> dict:
            nonlocal seen
            event = await receive()
            if event["type"] == "http.request":
                seen += len(event.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge()
            return event

        async def tracked_send(event: dict) -> None:
            nonlocal started
            started = started or event["type"] == "http.response.start"
            await send(event)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except _TooLarge:
            if not started:
                await self._refuse(send, message)

    @staticmethod
    async def _refuse(send: Any, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


async def validation_refusal(request: Request, error: RequestValidationError) -> JSONResponse:
    """A request that does not match an endpoint's schema: which field and why, never the input itself."""
    first = (error.errors() or [{}])[0]
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")[:SHOWN] or "the request"
    reason = str(first.get("msg", "not valid"))[:SHOWN * 2]
    return JSONResponse({"error": f"{where}: {reason}"}, status_code=422)


def app_kwargs() -> dict[str, Any]:
    """What `Blocks.launch(app_kwargs=...)` passes to Gradio's FastAPI app."""
    return {"middleware": [Middleware(BodyLimit)], "exception_handlers": {RequestValidationError: validation_refusal}}
