"""The solver's token quotes: ``POST /tokens/quote`` answered with the best of its token desks.

A requester buying tokens (:func:`tender.client.request_tokens`) may ask a solver instead of every
desk: the solver forwards the request to each token desk it knows (``[[solver.token_desks]]``) at
once, keeps the quotes that are for this request (requester, request hash, budget, within the
cap) and signed by the desk's own provider key for this chain's ``TokenMarket``, and answers with
the cheapest (then the fastest promise), unchanged, plus the desk's ``stream_url``: the requester
opens that quote and reads the tokens from the desk itself. The solver signs nothing and sends no
transaction; what it adds is the fan-out and the choice::

    POST /tokens/quote  (the desk's body: requester, prompt, max_tokens, sampling, max_price_per1k)
      200 {"quote": {...}, "signature": "0x…", "stream_url": "http://desk", "quotes": n, "asked": m}
      409 {"error": "no_quote", ...}   no desk quoted within the cap
      422 {"error": "invalid_body", "field": ...}
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from aiohttp import web
from pydantic import ValidationError

from solver._config import ProviderEntry
from solver._quotes import TRANSPORT_ERRORS, Transport
from tender.bounds import error_response
from tender.chain import TokenQuote, request_hash
from tender.errors import IntentError
from tender.intents import recover_digest_signer
from tender.logs import log
from tender.wire import TokenQuoteRequest

__all__ = ["TokenRfq"]

logger = logging.getLogger("solver.tokens")

_ERRORS: tuple[type[Exception], ...] = (*TRANSPORT_ERRORS, KeyError, ValueError, TypeError, IntentError)


@dataclass(frozen=True)
class _Offer:
    quote: TokenQuote
    signature: str
    desk: ProviderEntry


class TokenRfq:
    """Token quote rounds over the solver's token desks.

    Args:
        desks: the token desks (name, base URL, provider address).
        transport: the solver's shared HTTP client.
        chain_id: the chain served.
        market: the ``TokenMarket`` address (the quotes' EIP-712 domain).
        timeout: seconds each desk has to answer.
    """

    def __init__(
        self,
        desks: Sequence[ProviderEntry],
        transport: Transport,
        *,
        chain_id: int,
        market: str,
        timeout: float = 2.0,
    ) -> None:
        self.desks = list(desks)
        self.transport = transport
        self.chain_id = chain_id
        self.market = market
        self.timeout = timeout

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/tokens/quote", self.post_quote)

    async def post_quote(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = TokenQuoteRequest.model_validate_json(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            return error_response(422, "invalid_body", first["msg"], ".".join(str(p) for p in first["loc"]))
        started = time.perf_counter()
        wanted = request_hash(body.prompt, temperature=body.temperature, top_k=body.top_k, seed=body.seed)
        asks = (self._ask(d, raw, body, wanted) for d in self.desks)
        offers = [o for o in await asyncio.gather(*asks) if o]
        log(
            logger,
            "tokens.round",
            quotes=len(offers),
            asked=len(self.desks),
            ms=round(1000 * (time.perf_counter() - started), 1),
        )
        if not offers:
            return error_response(
                409,
                "no_quote",
                f"no token desk quoted within {body.max_price_per1k} per 1k",
                "max_price_per1k",
            )
        best = min(offers, key=lambda o: (o.quote.price_per1k, o.quote.latency))
        answer = {
            "quote": best.quote.to_json(),
            "signature": best.signature,
            "stream_url": best.desk.url.rstrip("/"),
            "quotes": len(offers),
            "asked": len(self.desks),
        }
        return web.Response(body=json.dumps(answer), content_type="application/json")

    async def _ask(
        self, desk: ProviderEntry, raw: bytes, body: TokenQuoteRequest, wanted: bytes
    ) -> _Offer | None:
        """The desk's quote if it is a valid one for ``body``, whose request hashes to ``wanted``
        (else None: refused, malformed, late,
        for another request, above the cap, or not signed by the desk's provider)."""
        try:
            async with asyncio.timeout(self.timeout):
                status, answer = await self.transport.post(
                    desk.url.rstrip("/") + "/tokens/quote", raw, time_limit=self.timeout
                )
            if status != 200:
                return None
            data = json.loads(answer)
            quote = TokenQuote.from_json(data["quote"])
            signature = str(data["signature"])
            signer = recover_digest_signer(
                quote.digest(chain_id=self.chain_id, market=self.market),
                bytes.fromhex(signature.removeprefix("0x")),
            )
        except _ERRORS as exc:
            log(logger, "tokens.quote_failed", level=logging.DEBUG, desk=desk.name, error=repr(exc))
            return None
        ok = (
            quote.requester.lower() == body.requester.lower()
            and quote.request_hash == wanted
            and quote.max_tokens == body.max_tokens
            and 0 < quote.price_per1k <= body.max_price_per1k
            and quote.provider.lower() == desk.address.lower() == signer.lower()
        )
        if not ok:
            log(logger, "tokens.quote_refused", level=logging.DEBUG, desk=desk.name)
            return None
        return _Offer(quote, signature, desk)
