"""The server's HTTP boundary: a bound on request bodies, and refusals that say what was wrong without echoing it.

Without these, a 200 MB body was parsed in full before anything looked at it, FastAPI's 422 answer echoed the
whole input back (a 20 MB input, a 20 MB answer), a body that is not JSON (a 5,000-digit number, arrays nested 1,000
deep) got a 400 naming nothing, a bad `fn_index` a bare 500, and Gradio's own refusals of an event (a file path
that was never uploaded, a missing input) reached the client as `{"error": null}`. The HTTP handlers go to Gradio's
app through `launch(app_kwargs=...)`; the event refusals replace the text Gradio hides (`show_error=False` keeps
hiding it: an exception's own text may name the server's folders).
"""

from __future__ import annotations

import json
import re
from typing import Any

import gradio.queueing
import gradio.utils
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from gradio.exceptions import InvalidPathError
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request

from .session_bound import SessionBound

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


def clipped(text: str) -> str:
    """The first line of `text`, absolute paths blanked, at most 2 * SHOWN characters: safe to show any client."""
    line = re.sub(r"(?<![\w.])(/|[A-Za-z]:\\)[^\s'\",)]*", "<path>", (text.strip().splitlines() or [""])[0])
    return line if len(line) <= 2 * SHOWN else line[: 2 * SHOWN - 1] + "…"


async def body_refusal(request: Request, error: HTTPException) -> JSONResponse:
    """FastAPI's "error parsing the body" answered with why (its cause); other HTTP errors as FastAPI answers them."""
    cause = error.__cause__
    if error.status_code != 400 or cause is None:
        return await http_exception_handler(request, error)
    why = "it is nested too deeply" if isinstance(cause, RecursionError) else clipped(str(cause)) or type(cause).__name__
    return JSONResponse({"error": f"the body is not JSON this server reads: {why}"}, status_code=400)


async def server_refusal(request: Request, error: Exception) -> JSONResponse:
    """An exception no handler caught (e.g. a `fn_index` that names no event): its kind and a clipped reason."""
    return JSONResponse({"error": f"{request.url.path[:SHOWN]}: {type(error).__name__} {clipped(str(error))}"}, status_code=500)


def app_kwargs() -> dict[str, Any]:
    """What `Blocks.launch(app_kwargs=...)` passes to Gradio's FastAPI app (with the session bound of
    `session_bound.py`)."""
    handlers = {RequestValidationError: validation_refusal, HTTPException: body_refusal, Exception: server_refusal}
    return {"middleware": [Middleware(BodyLimit), Middleware(SessionBound)], "exception_handlers": handlers}


_MISSING = re.compile(r"didn't receive enough input values \(needed: (\d+), got: (\d+)\)")


def event_refusal(error: BaseException) -> str:
    """What a client is told when Gradio refuses an event before the studio's code runs."""
    if isinstance(error, InvalidPathError):
        return "a file reference was refused: an event takes only files uploaded to this server"
    if missing := _MISSING.search(str(error)):
        return f"the event takes {missing[1]} input values; the request gave {missing[2]}"
    return f"the request was refused: {type(error).__name__} {clipped(str(error))}".rstrip()


def name_event_refusals() -> None:
    """Make Gradio's hidden refusals of an event (`{"error": null}`) say what was wrong (`event_refusal`); our own
    `gr.Error`s are unchanged. Gradio has no hook for this, so its payload function is wrapped, once."""
    original = gradio.utils.error_payload
    if getattr(original, "names_refusals", False):
        return

    def payload(error: BaseException | None, show_error: bool) -> dict:
        content = original(error, show_error)
        if content.get("error") is None and error is not None:
            content["error"] = event_refusal(error)
        return content

    payload.names_refusals = True  # type: ignore[attr-defined]
    gradio.utils.error_payload = gradio.queueing.error_payload = payload
