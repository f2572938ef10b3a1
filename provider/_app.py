"""The node's HTTP API (FastAPI; the OpenAPI schema is at ``/openapi.json``).

Every refusal is a 4xx JSON :class:`tender.wire.ErrorBody` naming the problem and the field;
FastAPI's default 422 body is replaced by the same shape.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from provider._errors import BadRequest, PayloadTooLarge
from tender.errors import TenderError
from tender.logs import log
from tender.wire import ErrorBody, JobStatus, Quote, QuoteRefusal, QuoteRequest

if TYPE_CHECKING:
    from provider._node import ProviderNode

logger = logging.getLogger("provider.http")

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "malformed request"},
    403: {"model": ErrorBody, "description": "job not awarded to this provider"},
    404: {"model": ErrorBody, "description": "unknown job or model"},
    413: {"model": ErrorBody, "description": "payload too large"},
    422: {"model": ErrorBody, "description": "input does not match the model or the commitment"},
}


def _error(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    body = ErrorBody(error=code, message=message, field=field)
    return JSONResponse(status_code=status, content=body.model_dump())


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body is {declared} bytes, over the {limit} limit", field="body")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body is over the {limit} byte limit", field="body")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(node: ProviderNode) -> FastAPI:
    """The FastAPI application serving ``node``."""
    app = FastAPI(
        title="Tender provider",
        version="1",
        description="Quotes, awarded-job inputs, job status, health and metrics of a Tender provider node.",
    )
    limit = node.config.max_payload_bytes

    @app.exception_handler(BadRequest)
    async def bad_request(_: Request, exc: BadRequest) -> JSONResponse:
        node.metrics.rejected.labels(exc.code).inc()
        log(logger, "http.refused", code=exc.code, field=exc.field, message=exc.message)
        return _error(exc.status, exc.code, exc.message, exc.field)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request", "type": ""}
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        where = ".".join(loc) or "body"
        code = "invalid_json" if first.get("type") == "json_invalid" else "invalid_body"
        node.metrics.rejected.labels(code).inc()
        return _error(400 if code == "invalid_json" else 422, code, f"{where}: {first.get('msg')}", where)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, "http_error", str(exc.detail))

    @app.exception_handler(TenderError)
    async def tender_error(_: Request, exc: TenderError) -> JSONResponse:
        # The chain, the backend or the prover failed us: the request may be retried.
        log(logger, "http.failed", level=logging.ERROR, error=repr(exc))
        return _error(503, "unavailable", str(exc))

    @app.exception_handler(Exception)
    async def internal(_: Request, exc: Exception) -> JSONResponse:
        logger.error("unhandled error", exc_info=exc)
        return _error(500, "internal", f"internal error: {type(exc).__name__}")

    @app.middleware("http")
    async def size_limit(request: Request, call_next: Any) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            node.metrics.rejected.labels("payload_too_large").inc()
            return _error(
                413, "payload_too_large", f"body is {declared} bytes, over the {limit} limit", "body"
            )
        response: Response = await call_next(request)
        return response

    @app.get("/health", summary="Liveness and what the node serves")
    async def health() -> dict[str, Any]:
        return node.health()

    @app.post(
        "/quote", response_model=Quote | QuoteRefusal, responses=_ERRORS, summary="Quote for an intent's job"
    )
    async def quote(request: QuoteRequest) -> Quote | QuoteRefusal:
        return await node.quote(request)

    @app.post(
        "/jobs",
        response_model=JobStatus,
        status_code=202,
        responses=_ERRORS,
        summary="Upload the input of a job awarded to this provider",
        openapi_extra={"requestBody": {"required": True, "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/JobInput"}}}}},
    )  # fmt: skip
    async def submit(request: Request) -> JSONResponse:
        body = await _read_limited(request, limit)
        status, created = await node.accept(body)
        return JSONResponse(status_code=202 if created else 200, content=status.model_dump())

    @app.get(
        "/jobs/{job_id}", response_model=JobStatus, responses=_ERRORS, summary="A job's state and results"
    )
    async def job(job_id: str) -> JobStatus:
        return node.status(job_id)

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics() -> Response:
        return Response(generate_latest(node.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    _add_schema(app)
    return app


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
