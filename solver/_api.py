"""The solver's HTTP API (aiohttp): ``POST /intents``, ``GET /status``, ``GET /health``,
``GET /metrics`` and its OpenAPI document at ``GET /openapi.json``.

``GET /health`` answers 200 while the solver can do its work and 503 when it cannot (the chain
unreachable, a transaction stuck, the feed far behind), with the reasons in the body.

``POST /intents`` takes a :class:`~tender.wire.SignedIntentWire`, checks it (chain id, a market
this solver follows, the job id recomputed, not expired, the requester's EIP-712 signature
recovered with libsecp256k1) and answers ``202`` with the job id; errors are
:class:`~tender.wire.ErrorBody` JSON with a machine code.

What happens next is the solver's choice, documented here: **the solver relays a signed intent
itself** (``submitSigned``), but only once its quotes say it can serve it, and only if the
intent is not on chain yet. The requester does not need a relayer of its own; an intent that
no solver can serve never costs anyone gas. Set ``solver.submit_signed = false`` to leave
relaying to the requester: the solver then just remembers the intent and bids once the
feed shows it posted.

Every route sits behind :func:`tender.bounds.aiohttp_guard`: a body over
``solver.max_body_bytes`` (declared or chunked) is refused with 413 while it streams, JSON
nested deeper than ``solver.max_json_depth`` or with a number longer than
``solver.max_number_chars`` with 400, a body that is not JSON with 415; an unexpected error is
a JSON 500 (counted in ``tender_http_5xx_total``), never a traceback.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import generate_latest
from pydantic import ValidationError
from pydantic.json_schema import models_json_schema
from web3 import AsyncWeb3, Web3
from web3.exceptions import Web3Exception

from solver._metrics import HTTP_5XX, REGISTRY
from solver._rfq import RfqDesk
from solver._token_rfq import TokenRfq
from tender.bounds import HttpLimits, aiohttp_guard, error_response
from tender.errors import IntentError
from tender.intents import Intent, check_signature, erc1271_accepts, erc1271_calldata, job_id
from tender.logs import log
from tender.wire import ErrorBody, IntentReceipt, SignedIntentWire

__all__ = ["IntentApi", "erc1271_accepts_on_chain"]

logger = logging.getLogger("solver.api")

#: ``accept(intent, signature, market, job_id_hex)``: store and schedule a checked intent.
Accept = Callable[[Intent, bytes, str, str], Awaitable[bool]]
#: ``contract_accepts(requester, digest, signature)``: whether ``requester`` is a contract whose
#: ERC-1271 ``isValidSignature`` takes the signature (the market's check for contract requesters).
ContractCheck = Callable[[str, bytes, bytes], Awaitable[bool]]


async def erc1271_accepts_on_chain(
    w3: AsyncWeb3[Any], requester: str, digest: bytes, signature: bytes
) -> bool:
    """The market's check for a contract requester: whether ``requester`` has code and its
    ERC-1271 ``isValidSignature(digest, signature)`` answers the magic value (the solver's
    :data:`ContractCheck`)."""
    address = Web3.to_checksum_address(requester)
    if not await w3.eth.get_code(address):
        return False
    try:
        result = await w3.eth.call({"to": address, "data": erc1271_calldata(digest, signature)})
    except (Web3Exception, ValueError):  # a reverting wallet refuses, as in the market
        return False
    return erc1271_accepts(bytes(result))


class IntentApi:
    """The HTTP face of one solver.

    Args:
        chain_id: the chain the solver serves.
        markets: market addresses it follows (checksummed).
        accept: called with every checked intent; returns False when it was known already.
        status: returns the JSON for ``GET /status``.
        health: returns ``(healthy, body)`` for ``GET /health`` (200 or 503); ``None``: always
            healthy.
        limits: what one request may carry.
        contract_accepts: the ERC-1271 check for a requester that is a contract (``None``: EOA
            requesters only). A signature is accepted exactly when the market would accept it:
            by :func:`tender.intents.check_signature`'s rule, else by the requester contract.
    """

    def __init__(
        self,
        *,
        chain_id: int,
        markets: list[str],
        accept: Accept,
        status: Callable[[], dict[str, object]],
        limits: HttpLimits | None = None,
        contract_accepts: ContractCheck | None = None,
        health: Callable[[], tuple[bool, dict[str, object]]] | None = None,
        rfq: RfqDesk | None = None,
        token_rfq: TokenRfq | None = None,
    ) -> None:
        self.health = health
        #: token quotes (``POST /tokens/quote``), when the solver has token desks and a TokenMarket
        self.token_rfq = token_rfq
        #: the quote path (``POST /rfq``), when the deployment has a quote market
        self.rfq = rfq
        self.contract_accepts = contract_accepts
        self.chain_id = chain_id
        self.markets = {m.lower(): m for m in markets}
        self.accept = accept
        self.status = status
        self.limits = limits or HttpLimits()
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    def app(self) -> web.Application:
        app = web.Application(
            client_max_size=self.limits.max_body_bytes, middlewares=[aiohttp_guard(self.limits, HTTP_5XX)]
        )
        app.router.add_post("/intents", self.post_intent)
        app.router.add_get("/status", self.get_status)
        app.router.add_get("/health", self.get_health)
        app.router.add_get("/metrics", self.get_metrics)
        app.router.add_get("/openapi.json", self.get_openapi)
        if self.rfq is not None:
            self.rfq.add_routes(app)
        if self.token_rfq is not None:
            self.token_rfq.add_routes(app)
        return app

    async def post_intent(self, request: web.Request) -> web.Response:
        try:
            wire = SignedIntentWire.model_validate_json(await request.read())
        except ValidationError as exc:
            first = exc.errors()[0]
            return error_response(422, "invalid_body", first["msg"], ".".join(str(p) for p in first["loc"]))
        if wire.chainId != self.chain_id:
            return error_response(422, "wrong_chain", f"this solver serves chain {self.chain_id}", "chainId")
        market = self.markets.get(wire.market.lower())
        if market is None:
            return error_response(
                422, "unknown_market", f"market {wire.market} is not followed here", "market"
            )
        try:
            intent = Intent.from_json(wire.intent.model_dump())
        except IntentError as exc:
            return error_response(422, "invalid_intent", str(exc), "intent")
        computed = "0x" + job_id(intent, chain_id=self.chain_id, market=market).hex()
        if computed != wire.jobId.lower():
            return error_response(422, "wrong_job_id", f"the intent's job id is {computed}", "jobId")
        signature = bytes.fromhex(wire.signature[2:])  # Hex: an even number of digits
        try:
            try:
                check_signature(intent, signature, chain_id=self.chain_id, market=market)
            except IntentError:
                digest = bytes.fromhex(computed[2:])
                if self.contract_accepts is None or not await self.contract_accepts(
                    intent.requester, digest, signature
                ):
                    raise
        except IntentError as exc:
            return error_response(422, "bad_signature", str(exc), "signature")
        if intent.expiry and intent.expiry <= time.time():
            return error_response(422, "expired", f"the intent expired at {intent.expiry}", "intent.expiry")
        new = await self.accept(intent, signature, market, computed)
        log(logger, "intent.received", job_id=computed, new=new)
        receipt = IntentReceipt(jobId=computed, status="accepted" if new else "known")
        return web.json_response(receipt.model_dump(), status=202)

    async def get_status(self, request: web.Request) -> web.Response:
        return web.json_response(self.status())

    async def get_health(self, request: web.Request) -> web.Response:
        healthy, body = self.health() if self.health is not None else (True, {"ok": True, "reasons": []})
        return web.json_response(body, status=200 if healthy else 503)

    async def get_metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(REGISTRY), content_type="text/plain")

    async def get_openapi(self, request: web.Request) -> web.Response:
        return web.json_response(openapi_document())

    async def start(self, listen: str) -> None:
        host, _, port = listen.rpartition(":")
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host or "127.0.0.1", int(port))
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1]) if sockets else int(port)
        log(logger, "api.listening", host=host, port=self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of :class:`IntentApi` (schemas from the wire types)."""
    _, defs = models_json_schema(
        [(SignedIntentWire, "validation"), (IntentReceipt, "serialization"), (ErrorBody, "serialization")],
        ref_template="#/components/schemas/{model}",
    )

    def ref(name: str) -> dict[str, Any]:
        return {"$ref": f"#/components/schemas/{name}"}

    def refused(description: str) -> dict[str, Any]:
        return {"description": description, "content": {"application/json": {"schema": ref("ErrorBody")}}}

    def json_object(description: str) -> dict[str, Any]:
        return {"description": description, "content": {"application/json": {"schema": {"type": "object"}}}}

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Tender solver",
            "version": "1",
            "description": "Signed intents in; the solver's state and metrics out.",
        },
        "paths": {
            "/intents": {
                "post": {
                    "summary": "Hand the solver a requester-signed intent",
                    "operationId": "post_intent",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": ref("SignedIntentWire")}},
                    },
                    "responses": {
                        "202": {
                            "description": "checked and accepted (or known already)",
                            "content": {"application/json": {"schema": ref("IntentReceipt")}},
                        },
                        "400": refused("JSON nested too deep or with a number too long"),
                        "413": refused("payload too large"),
                        "415": refused("the body is not application/json"),
                        "422": refused(
                            "malformed, for another chain or market, a wrong job id or signature, expired"
                        ),
                    },
                }
            },
            "/status": {
                "get": {
                    "summary": "What the solver is doing",
                    "operationId": "get_status",
                    "responses": {"200": json_object("the solver's state")},
                }
            },
            "/health": {
                "get": {
                    "summary": "Whether the solver can work: chain, transactions, feed",
                    "operationId": "get_health",
                    "responses": {
                        "200": json_object("healthy: ok true, no reasons"),
                        "503": json_object(
                            "unhealthy: ok false, the reasons (chain unreachable, stuck transactions, feed lag)"
                        ),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "operationId": "get_metrics",
                    "responses": {
                        "200": {
                            "description": "Prometheus text format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "operationId": "get_openapi",
                    "responses": {"200": json_object("the OpenAPI document")},
                }
            },
        },
        "components": {"schemas": defs["$defs"]},
    }
