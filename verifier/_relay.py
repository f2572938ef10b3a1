"""The proof relay: a small HTTP endpoint where a provider hands the agent a proof to submit.

A provider that is challenged but holds no gas (or is behind a firewall) may post its proof
here; the agent checks it off-chain first and sends ``prove(jobId, proof)`` from its own
account, paying the gas::

    POST /v1/prove   {"jobId": "0x…", "market": "0x…", "proof": "0x…"}
      200 {"jobId": …, "status": "mined", "txHash": "0x…"}
      400/404/409/422 {"error": "...", "message": "..."}
    GET  /v1/health  {"ok": true, "reasons": [], "chainId": …, "address": "0x…", …}
                     503 {"ok": false, "reasons": ["chain unreachable: …"], …}
    GET  /v1/rewards {"challenge": "…", …}
    GET  /metrics    Prometheus text (``tender_http_5xx_total``)

Every route sits behind :func:`tender.bounds.aiohttp_guard`: bodies over twice the proof limit
(hex) are refused with 413 while they stream, JSON nested too deep or with too long numbers with
400, a body that is not JSON with 415, and an unexpected error is a JSON 500, counted.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from pydantic import Field, ValidationError

from tender.bounds import HttpLimits, aiohttp_guard, error_response, http_5xx_counter
from tender.logs import log
from tender.wire import Address, Bytes32, Hex, Wire
from verifier._errors import RelayError

logger = logging.getLogger("verifier.relay")

#: The relay's own metrics (served at ``GET /metrics``).
REGISTRY = CollectorRegistry()
HTTP_5XX = http_5xx_counter(REGISTRY)


class ProveRequest(Wire):
    """A provider asks the agent to submit its proof for a challenged job."""

    jobId: Bytes32
    market: Address
    proof: Hex = Field(description="the proof bytes as the market's prove() takes them")


class ProveReply(Wire):
    jobId: Bytes32
    status: str
    txHash: Hex | None = None


class RelayRefused(RelayError):
    """A relay request refused with an HTTP status and a machine code."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        self.status = status
        self.code = code
        self.field = field
        super().__init__(message)


#: ``relay(job_id, market, proof) -> (status, tx_hash)``, run by the agent.
RelayHandler = Callable[[bytes, str, bytes], Awaitable[tuple[str, str | None]]]


W = TypeVar("W", bound=Wire)


async def read_body(request: web.Request, model: type[W]) -> W | web.Response:
    """The request's JSON body as ``model``, or the 400 answer naming the first bad field."""
    try:
        return model.model_validate(await request.json())
    except ValidationError as exc:
        first = exc.errors()[0]
        return error_response(400, "invalid", first["msg"], ".".join(str(p) for p in first["loc"]))
    except ValueError as exc:
        return error_response(400, "invalid", f"body is not JSON: {exc}")


def make_app(
    *,
    relay: RelayHandler,
    health: Callable[[], dict[str, Any]],
    rewards: Callable[[], dict[str, int]],
    max_proof_bytes: int,
) -> web.Application:
    """The relay's aiohttp application (the agent owns the handlers)."""

    async def prove(request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > 2 * max_proof_bytes + 4096:
            return error_response(413, "too_large", f"proofs are limited to {max_proof_bytes} bytes")
        body = await read_body(request, ProveRequest)
        if isinstance(body, web.Response):
            return body
        proof = bytes.fromhex(body.proof[2:])
        if len(proof) > max_proof_bytes:
            return error_response(413, "too_large", f"proofs are limited to {max_proof_bytes} bytes", "proof")
        job_id = bytes.fromhex(body.jobId[2:])
        try:
            status, tx_hash = await relay(job_id, body.market, proof)
        except RelayRefused as exc:
            log(logger, "relay.refused", job_id=body.jobId, code=exc.code, reason=str(exc))
            return error_response(exc.status, exc.code, str(exc), exc.field)
        log(logger, "relay.sent", job_id=body.jobId, status=status, tx=tx_hash)
        return web.json_response(ProveReply(jobId=body.jobId, status=status, txHash=tx_hash).model_dump())

    async def health_handler(_: web.Request) -> web.Response:
        body = health()  # 503 while the agent cannot do its duties (the reasons are in the body)
        return web.json_response(body, status=503 if body.get("ok") is False else 200)

    async def rewards_handler(_: web.Request) -> web.Response:
        return web.json_response({k: str(v) for k, v in rewards().items()})

    async def metrics_handler(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(REGISTRY), content_type="text/plain")

    limits = HttpLimits(max_body_bytes=2 * max_proof_bytes + 4096)  # the proof travels as hex
    app = web.Application(
        client_max_size=limits.max_body_bytes, middlewares=[aiohttp_guard(limits, HTTP_5XX)]
    )
    app.router.add_post("/v1/prove", prove)
    app.router.add_get("/v1/health", health_handler)
    app.router.add_get("/v1/rewards", rewards_handler)
    app.router.add_get("/metrics", metrics_handler)
    return app


async def start_site(app: web.Application, listen: str) -> web.AppRunner:
    """Serve ``app`` on ``host:port``; returns the runner to clean up."""
    host, _, port = listen.rpartition(":")
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host or "127.0.0.1", int(port))
    await site.start()
    return runner
