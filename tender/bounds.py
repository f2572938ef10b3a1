"""Bounds on what an HTTP request may carry, enforced before any parser sees the body.

Every role's HTTP server (the provider's FastAPI app, the solver's and the verifier's aiohttp
apps, the test OIP server) runs the same guard in front of its routes:

* the body is read chunk by chunk and refused with **413** as soon as it passes
  ``max_body_bytes``, whether or not the client declared a ``Content-Length`` (a chunked upload
  is never buffered past the limit);
* a JSON body nested deeper than ``max_json_depth`` or holding a number literal longer than
  ``max_number_chars`` characters is refused with **400** before it is parsed (``json.loads`` of
  100,000 nested lists overflows the stack; ``10**400`` is a valid JSON integer that no field
  of ours can hold);
* a ``POST`` route that takes JSON refuses any other ``Content-Type`` with **415**;
* an exception no handler turned into a 4xx becomes a **500** :class:`tender.wire.ErrorBody`
  naming only the exception's type (the traceback goes to the log, never to the client), and
  every 5xx answer (but a ``/health`` probe's) is counted in ``tender_http_5xx_total`` on the role's
  ``/metrics``.

Each refusal is an :class:`tender.wire.ErrorBody`::

    check_json(b"[" * 100 + b"]" * 100, HttpLimits())
    # BodyRefused: body: JSON nested 100 deep, over the 32 limit   (400, json_too_deep)
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from http import HTTPStatus
from typing import Any

import numpy as np
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage
from aiohttp.typedefs import Middleware
from prometheus_client import CollectorRegistry, Counter
from pydantic import Field

from tender.config import Section
from tender.errors import BodyRefused
from tender.logs import log
from tender.wire import ErrorBody

__all__ = [
    "HTTP_5XX",
    "BoundedAsgi",
    "HttpLimits",
    "aiohttp_guard",
    "check_json",
    "error_json",
    "error_response",
    "http_5xx_counter",
    "is_json",
    "replay",
    "send_json",
    "status_code_name",
]

logger = logging.getLogger("tender.http")

#: The name of the 5xx counter, the same in every role's ``/metrics``.
HTTP_5XX = "tender_http_5xx"
#: Routes whose 5xx is an answer, not a failure: ``/health`` is 503 while a role is warming up
#: or unhealthy (what load balancers and the devnet poll), so it is not counted as an error.
PROBE_PATHS = frozenset({"/health"})

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NUMBER = re.compile(rb"[-+0-9.eE]+")
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class HttpLimits(Section):
    """What one HTTP request may carry (every role has the same defaults)."""

    max_body_bytes: int = Field(default=1 << 20, ge=256, description="bytes of one request body")
    max_json_depth: int = Field(default=32, ge=4, le=1_000, description="nested arrays and objects")
    max_number_chars: int = Field(
        default=64, ge=24, le=4_000, description="characters of one JSON number literal"
    )


def http_5xx_counter(registry: CollectorRegistry) -> Counter:
    """The role's counter of 5xx answers, registered on ``registry``."""
    return Counter(HTTP_5XX, "HTTP answers with a 5xx status", registry=registry)


def error_json(code: str, message: str, field: str | None = None) -> bytes:
    """An :class:`~tender.wire.ErrorBody` as JSON bytes."""
    return ErrorBody(error=code, message=message, field=field).model_dump_json().encode()


def error_response(status: int, code: str, message: str, field: str | None = None) -> web.Response:
    """An aiohttp JSON answer carrying an :class:`~tender.wire.ErrorBody` (every 4xx a role sends)."""
    return web.Response(status=status, body=error_json(code, message, field), content_type="application/json")


def status_code_name(status: int) -> str:
    """The machine code of a plain HTTP refusal: ``405`` -> ``"method_not_allowed"``."""
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "http_error"


def is_json(content_type: str | None) -> bool:
    """Whether a ``Content-Type`` header names JSON (``application/json`` or ``*/*+json``)."""
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def check_json(body: bytes, limits: HttpLimits) -> None:
    """Refuse a body nested deeper or holding longer numbers than ``limits`` allow.

    Linear in the body's size and recursion-free: strings are blanked out first (a bracket or a
    digit inside a string counts for nothing), then the brackets are summed up and the number
    literals measured. Whether the body is valid JSON is left to the parser.

    Raises:
        BodyRefused: 400 ``json_too_deep`` or ``number_too_long``.
    """
    if not body:
        return
    bare = _STRING.sub(b'""', body)
    brackets = bare.translate(None, _NOT_BRACKET)
    # nesting never exceeds the number of opening brackets: a small body needs no scan
    if brackets and brackets.count(b"[") + brackets.count(b"{") > limits.max_json_depth:
        codes = np.frombuffer(brackets, dtype=np.uint8)
        opens = (codes == ord("[")) | (codes == ord("{"))
        steps = opens.view(np.int8) * np.int8(2) - np.int8(1)  # +1 opens, -1 closes: 1 byte a bracket
        depth = int(np.cumsum(steps, dtype=np.int32).max())
        if depth > limits.max_json_depth:
            raise BodyRefused(
                400, "json_too_deep", f"JSON nested {depth} deep, over the {limits.max_json_depth} limit"
            )
    longest = max((len(m) for m in _NUMBER.findall(bare)), default=0)
    if longest > limits.max_number_chars:
        raise BodyRefused(
            400,
            "number_too_long",
            f"a JSON number of {longest} characters, over the {limits.max_number_chars} limit",
        )


# -- ASGI (the provider's FastAPI app, the OIP test server) ---------------------------------

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]


class BoundedAsgi:
    """ASGI middleware: bounded bodies, bounded JSON, JSON 500s and the 5xx counter.

    The body of a ``POST``/``PUT``/``PATCH`` is read here up to ``limits.max_body_bytes`` (413
    past it, declared or not), checked with :func:`check_json` when it is JSON or untyped, and
    handed to the app in one piece. An exception escaping the app becomes a 500
    :class:`~tender.wire.ErrorBody` (when no answer was started yet); every 5xx is counted.

    Args:
        app: the ASGI application to guard.
        limits: the bounds.
        errors: the counter of 5xx answers (see :func:`http_5xx_counter`).
        on_refused: called with the error code of every refusal made here (for the role's metrics).
    """

    def __init__(
        self,
        app: Asgi,
        *,
        limits: HttpLimits,
        errors: Counter,
        on_refused: Callable[[str], None] | None = None,
    ) -> None:
        self.app = app
        self.limits = limits
        self.errors = errors
        self.on_refused = on_refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        probe = scope["path"] in PROBE_PATHS

        async def counted(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if int(message["status"]) >= 500 and not probe:
                    self.errors.inc()
            await send(message)

        try:
            if scope["method"] in _BODY_METHODS:
                body = await self._read(scope, receive)
                receive = replay({"type": "http.request", "body": body, "more_body": False}, receive)
            await self.app(scope, receive, counted)
        except BodyRefused as exc:
            if self.on_refused is not None:
                self.on_refused(exc.code)
            await send_json(counted, exc.status, error_json(exc.code, exc.message, exc.field))
        except Exception as exc:  # answered as a JSON 500 and counted; the traceback goes to the log
            _log_failure(scope["method"], scope["path"], exc)
            if started:
                raise
            await send_json(counted, 500, error_json("internal", f"internal error: {type(exc).__name__}"))

    async def _read(self, scope: Scope, receive: Receive) -> bytes:
        limit = self.limits.max_body_bytes
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise BodyRefused(413, "payload_too_large", f"body is {declared} bytes, over the {limit} limit")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise BodyRefused(413, "payload_too_large", f"body is over the {limit} byte limit")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        content_type = headers.get("content-type")
        if content_type is None or is_json(content_type):
            check_json(body, self.limits)
        return body


def _log_failure(method: str, path: str, exc: BaseException) -> None:
    logger.error(
        "http.failed",
        exc_info=exc,
        extra={"fields": {"method": method, "path": path[:200], "error": type(exc).__name__}},
    )


def replay(first: Message, receive: Receive) -> Receive:
    """An ASGI ``receive`` that hands out ``first`` (a message already read) and then reads on."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return first
        return await receive()

    return again


async def send_json(send: Send, status: int, body: bytes) -> None:
    """Answer an ASGI request with the JSON ``body``."""
    # the server discards what is left of an unread body (uvicorn does not buffer it)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


# -- aiohttp (the solver's intent API, the verifier's relay) --------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def aiohttp_guard(limits: HttpLimits, errors: Counter) -> Middleware:
    """An aiohttp middleware doing what :class:`BoundedAsgi` does, plus 415 on a matched
    ``POST`` route whose body is not UTF-8 JSON and 400 on a body whose ``Content-Encoding`` does
    not decode. Build the app with ``client_max_size=limits.max_body_bytes`` so
    ``request.read()`` stops at the limit."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await _guarded(request, handler, limits)
        except web.HTTPException as exc:
            response = _from_http_exception(exc)
        except Exception as exc:  # answered as a JSON 500 and counted; the traceback goes to the log
            _log_failure(request.method, request.path, exc)
            response = _aiohttp_error(500, "internal", f"internal error: {type(exc).__name__}")
        if response.status >= 500 and request.path not in PROBE_PATHS:
            errors.inc()
        return response

    return guard


async def _guarded(request: web.Request, handler: Handler, limits: HttpLimits) -> web.StreamResponse:
    if request.method in _BODY_METHODS and request.match_info.http_exception is not None:
        # a 404/405: read what was sent (bounded by client_max_size) so the client gets the answer,
        # not a reset connection
        with contextlib.suppress(web.HTTPRequestEntityTooLarge, web.RequestPayloadError, BadHttpMessage):
            await request.read()
    elif request.method in _BODY_METHODS:
        declared = request.content_length
        if declared is not None and declared > limits.max_body_bytes:
            return _aiohttp_error(
                413,
                "payload_too_large",
                f"body is {declared} bytes, over the {limits.max_body_bytes} limit",
                "body",
            )
        content_type = request.headers.get("Content-Type")
        if not is_json(content_type):
            return _aiohttp_error(
                415,
                "unsupported_media_type",
                f"the body must be application/json, not {content_type or 'untyped'}",
                "content-type",
            )
        try:
            body = await request.read()  # stops at client_max_size, chunked or not
        except web.HTTPRequestEntityTooLarge:
            return _aiohttp_error(
                413, "payload_too_large", f"body is over the {limits.max_body_bytes} byte limit", "body"
            )
        except (web.RequestPayloadError, BadHttpMessage) as exc:  # undecodable Content-Encoding, chunking
            encoding = request.headers.get("Content-Encoding", "none")
            log(logger, "http.bad_body", path=request.path, encoding=encoding, error=str(exc))
            return _aiohttp_error(
                400, "bad_body_encoding", f"the body does not decode as {encoding:.40}", "body"
            )
        if request.charset not in (None, "utf-8", "utf8"):
            return _aiohttp_error(
                415, "unsupported_media_type", f"JSON is UTF-8, not {request.charset:.40}", "content-type"
            )
        try:
            check_json(body, limits)
        except BodyRefused as exc:
            return _aiohttp_error(exc.status, exc.code, exc.message, exc.field)
    return await handler(request)


def _aiohttp_error(status: int, code: str, message: str, field: str | None = None) -> web.Response:
    return web.Response(status=status, body=error_json(code, message, field), content_type="application/json")


def _from_http_exception(exc: web.HTTPException) -> web.Response:
    """aiohttp's own 404/405/413... as an ErrorBody, keeping headers such as ``Allow``."""
    response = _aiohttp_error(exc.status, status_code_name(exc.status), exc.reason or str(exc))
    for name in ("Allow",):
        if name in exc.headers:
            response.headers[name] = exc.headers[name]
    return response
