"""The solver's HTTP API (aiohttp): ``POST /intents``, ``GET /status``, ``GET /metrics``.

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
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import generate_latest
from pydantic import ValidationError
from web3 import AsyncWeb3, Web3
from web3.exceptions import Web3Exception

from solver._metrics import REGISTRY
from tender.errors import IntentError
from tender.intents import Intent, check_signature, erc1271_accepts, erc1271_calldata, job_id
from tender.logs import log
from tender.wire import ErrorBody, SignedIntentWire

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


def _error(status: int, code: str, message: str, field: str | None = None) -> web.Response:
    body = ErrorBody(error=code, message=message, field=field).model_dump_json()
    return web.Response(status=status, body=body, content_type="application/json")


class IntentApi:
    """The HTTP face of one solver.

    Args:
        chain_id: the chain the solver serves.
        markets: market addresses it follows (checksummed).
        accept: called with every checked intent; returns False when it was known already.
        status: returns the JSON for ``GET /status``.
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
        contract_accepts: ContractCheck | None = None,
    ) -> None:
        self.contract_accepts = contract_accepts
        self.chain_id = chain_id
        self.markets = {m.lower(): m for m in markets}
        self.accept = accept
        self.status = status
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 20)
        app.router.add_post("/intents", self.post_intent)
        app.router.add_get("/status", self.get_status)
        app.router.add_get("/metrics", self.get_metrics)
        return app

    async def post_intent(self, request: web.Request) -> web.Response:
        try:
            wire = SignedIntentWire.model_validate_json(await request.read())
        except ValidationError as exc:
            first = exc.errors()[0]
            return _error(422, "invalid_body", first["msg"], ".".join(str(p) for p in first["loc"]))
        if wire.chainId != self.chain_id:
            return _error(422, "wrong_chain", f"this solver serves chain {self.chain_id}", "chainId")
        market = self.markets.get(wire.market.lower())
        if market is None:
            return _error(422, "unknown_market", f"market {wire.market} is not followed here", "market")
        try:
            intent = Intent.from_json(wire.intent.model_dump())
            computed = "0x" + job_id(intent, chain_id=self.chain_id, market=market).hex()
            if computed != wire.jobId.lower():
                return _error(422, "wrong_job_id", f"the intent's job id is {computed}", "jobId")
            signature = bytes.fromhex(wire.signature[2:])
            try:
                check_signature(intent, signature, chain_id=self.chain_id, market=market)
            except IntentError:
                digest = bytes.fromhex(computed[2:])
                if self.contract_accepts is None or not await self.contract_accepts(
                    intent.requester, digest, signature
                ):
                    raise
        except IntentError as exc:
            return _error(
                422, "bad_signature" if "sign" in str(exc) else "invalid_intent", str(exc), "signature"
            )
        if intent.expiry and intent.expiry <= time.time():
            return _error(422, "expired", f"the intent expired at {intent.expiry}", "intent.expiry")
        new = await self.accept(intent, signature, market, computed)
        log(logger, "intent.received", job_id=computed, new=new)
        return web.json_response({"jobId": computed, "status": "accepted" if new else "known"}, status=202)

    async def get_status(self, request: web.Request) -> web.Response:
        return web.json_response(self.status())

    async def get_metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(REGISTRY), content_type="text/plain")

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
