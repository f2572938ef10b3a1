"""The node's HTTP API (FastAPI; the OpenAPI schema is at ``/openapi.json``).

Every refusal is a 4xx JSON :class:`tender.wire.ErrorBody` naming the problem and the field;
FastAPI's default 422 body is replaced by the same shape.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine, Mapping
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from provider._errors import BadRequest, UnsupportedMediaType
from tender.bounds import (
    Asgi,
    BoundedAsgi,
    Receive,
    Scope,
    Send,
    error_json,
    is_json,
    replay,
    send_json,
    status_code_name,
)
from tender.errors import TenderError
from tender.logs import log
from tender.rfq import FirmQuote
from tender.wire import ErrorBody, JobStatus, Quote, QuoteRefusal, QuoteRequest, SignedIntentWire

if TYPE_CHECKING:
    from provider._node import ProviderNode

logger = logging.getLogger("provider.http")

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "malformed request, JSON nested too deep or a number too long"},
    403: {"model": ErrorBody, "description": "job not awarded to this provider"},
    404: {"model": ErrorBody, "description": "unknown job or model"},
    413: {"model": ErrorBody, "description": "payload too large"},
    415: {"model": ErrorBody, "description": "the body is not application/json"},
    422: {"model": ErrorBody, "description": "input does not match the model or the commitment"},
}
_JSON_BODY_ERRORS = {k: v for k, v in _ERRORS.items() if k not in (403,)}
_JOB_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    200: {"model": JobStatus, "description": "the same input was accepted before: the job as it stands"},
    409: {"model": ErrorBody, "description": "the job was accepted before with another input"},
}


def _error(
    status: int, code: str, message: str, field: str | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    body = ErrorBody(error=code, message=message, field=field)
    return JSONResponse(status_code=status, content=body.model_dump(), headers=headers)


async def _json_only(request: Request) -> None:
    """Refuse a body that is not declared as JSON (415) before FastAPI reads it as something else."""
    content_type = request.headers.get("content-type")
    if not is_json(content_type):
        raise UnsupportedMediaType(
            f"the body must be application/json, not {content_type or 'untyped'}", field="content-type"
        )


def create_app(node: ProviderNode) -> FastAPI:
    """The FastAPI application serving ``node``.

    Every route sits behind :class:`tender.bounds.BoundedAsgi`: bodies over
    ``provider.max_payload_bytes`` (declared or chunked) are refused with 413 while they stream,
    JSON deeper than ``provider.max_json_depth`` or with numbers longer than
    ``provider.max_number_chars`` with 400, and every 5xx is counted in ``tender_http_5xx_total``.
    """
    app = FastAPI(
        title="Tender provider",
        version="1",
        description="Quotes, awarded-job inputs, job status, health and metrics of a Tender provider node.",
    )

    def refused(code: str) -> None:
        node.metrics.rejected.labels(code).inc()

    # innermost first: BoundedAsgi reads and checks the body before the quote fast path sees it
    app.add_middleware(QuoteFastPath, node=node)
    app.add_middleware(
        BoundedAsgi, limits=node.config.http_limits(), errors=node.metrics.http_5xx, on_refused=refused
    )

    @app.exception_handler(BadRequest)
    async def bad_request(_: Request, exc: BadRequest) -> JSONResponse:
        refused(exc.code)
        log(logger, "http.refused", code=exc.code, field=exc.field, message=exc.message)
        return _error(exc.status, exc.code, exc.message, exc.field)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request", "type": ""}
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        where = ".".join(loc) or "body"
        code = "invalid_json" if first.get("type") == "json_invalid" else "invalid_body"
        refused(code)
        return _error(400 if code == "invalid_json" else 422, code, f"{where}: {first.get('msg')}", where)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # keeps the headers Starlette sets, such as ``Allow`` on a 405
        return _error(
            exc.status_code, status_code_name(exc.status_code), str(exc.detail), headers=exc.headers
        )

    @app.exception_handler(TenderError)
    async def tender_error(_: Request, exc: TenderError) -> JSONResponse:
        # The chain, the backend or the prover failed us: the request may be retried.
        log(logger, "http.failed", level=logging.ERROR, error=repr(exc))
        return _error(503, "unavailable", str(exc))

    @app.get(
        "/health",
        summary="Readiness, chain connectivity, stuck transactions and the proof queue",
        description='200 while healthy; 503 (the same JSON, `status` "unhealthy" and its `reasons`) '
        "while the chain is unreachable, a transaction is stuck or the proof queue is behind, and "
        '(`status` "warming") until the start-up warm-up is done: the quote path\'s first input '
        "commitment and witness per model, the proving workers and one timed proof per model.",
        responses={
            503: {
                "description": "unhealthy, or still warming up",
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        },
    )
    async def health() -> Response:
        body = node.health()
        return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)

    @app.post(
        "/quote",
        response_model=Quote | QuoteRefusal,
        responses=_JSON_BODY_ERRORS,
        dependencies=[Depends(_json_only)],
        summary="Quote for an intent's job",
    )
    async def quote(request: QuoteRequest) -> Quote | QuoteRefusal:
        return await node.quote(request)

    @app.post(
        "/jobs",
        response_model=JobStatus,
        status_code=202,
        responses=_JOB_ERRORS,
        dependencies=[Depends(_json_only)],
        summary="Upload the input of a job awarded to this provider",
        description="202: accepted now; 200: the same input again (idempotent); 409: another input.",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobInput"}}},
            }
        },
    )
    async def submit(request: Request) -> JSONResponse:
        # the body was read within max_payload_bytes by BoundedAsgi
        status, created = await node.accept(await request.body())
        return JSONResponse(status_code=202 if created else 200, content=status.model_dump())

    @app.get(
        "/jobs/{job_id}", response_model=JobStatus, responses=_ERRORS, summary="A job's state and results"
    )
    async def job(job_id: str) -> JobStatus:
        return node.status(job_id)

    @app.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=Response,
        responses={
            200: {
                "description": "Prometheus text format",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
    )
    async def metrics() -> Response:
        return Response(generate_latest(node.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    from provider._rfq import add_rfq_routes

    add_rfq_routes(app, node, _json_only, _ERRORS)
    _add_schema(app)
    return app


class QuoteFastPath:
    """ASGI middleware answering a well-formed ``POST /quote`` or ``POST /rfq/quote`` without
    FastAPI's routing, dependency and response-model layers (they cost more CPU than the quote
    itself, and a quote round waits for the slowest provider).

    It sits inside :class:`~tender.bounds.BoundedAsgi`, so the body it sees is already bounded
    and depth-checked. Only a JSON body that validates as the route's request
    (:class:`~tender.wire.QuoteRequest`, :class:`~tender.wire.SignedIntentWire`) is answered
    here, with the same method the route calls (:meth:`ProviderNode.quote`,
    :meth:`provider._rfq.RfqDesk.quote`) and the same bodies (a quote, a
    :class:`~tender.wire.QuoteRefusal`, or a 503 :class:`~tender.wire.ErrorBody` when the node
    fails us); anything else (a wrong media type, bad JSON, a schema error) goes on to the
    FastAPI route with its body replayed, which refuses it as the OpenAPI schema says.

    Args:
        app: the FastAPI stack below.
        node: the node that quotes.
    """

    def __init__(self, app: Asgi, *, node: ProviderNode) -> None:
        self.app = app
        self.node = node

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"] if scope["type"] == "http" and scope["method"] == "POST" else None
        if path not in ("/quote", "/rfq/quote"):
            await self.app(scope, receive, send)
            return
        content_type = next((v for k, v in scope["headers"] if k == b"content-type"), None)
        if content_type is None or not is_json(content_type.decode("latin-1")):
            await self.app(scope, receive, send)
            return
        message = await receive()  # BoundedAsgi hands the whole body in one message
        body = message.get("body", b"") if message["type"] == "http.request" else b""
        try:
            quoting: Coroutine[Any, Any, Quote | FirmQuote | QuoteRefusal] = (
                self.node.quote(QuoteRequest.model_validate_json(body))
                if path == "/quote"
                else self.node.rfq.quote(SignedIntentWire.model_validate_json(body))
            )
        except ValidationError:
            await self.app(scope, replay(message, receive), send)
            return
        try:
            answer = await quoting
        except TenderError as exc:  # as the route's handler answers it: the request may be retried
            log(logger, "http.failed", level=logging.ERROR, error=repr(exc))
            await send_json(send, 503, error_json("unavailable", str(exc)))
            return
        await send_json(send, 200, answer.model_dump_json().encode())


def _add_schema(app: FastAPI) -> None:
    """Put JobInput in the OpenAPI components (``/jobs`` reads its body by hand to bound its size)."""
    from tender.wire import JobInput

    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.setdefault(
            "JobInput", JobInput.model_json_schema(ref_template="#/components/schemas/{model}")
        )
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
