"""The solver's side of the quote path (``QuoteMarket``, see :mod:`tender.rfq`).

``POST /rfq?window_ms=N`` takes a requester's signed intent for the quote market, checks it like
``POST /intents`` does (chain, market, job id, signature, expiry), asks every available provider
at once (``POST /rfq/quote`` over the fan-out's shared pool) and answers with the firm quotes
that arrived when all have answered or the window ended, whichever comes first. A round that
has no quote when its window ends waits on for the first one, up to ``EMPTY_WAIT_MS`` more
(a cold or loaded provider): an empty answer would only make the requester ask again, and the
providers sign afresh. It sends no transaction: the requester awards (first price) and the
provider runs the job.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web
from pydantic import TypeAdapter, ValidationError

from solver._config import ProviderEntry
from solver._quotes import TRANSPORT_ERRORS, FanOut
from tender.bounds import error_response
from tender.errors import IntentError
from tender.intents import Intent, check_signature, job_id
from tender.logs import log
from tender.quotes import recover_quote_signer
from tender.rfq import FirmQuote, FirmQuotes
from tender.wire import QuoteRefusal, SignedIntentWire

__all__ = ["DEFAULT_WINDOW_MS", "EMPTY_WAIT_MS", "MAX_WINDOW_MS", "RfqDesk"]

logger = logging.getLogger("solver.rfq")

DEFAULT_WINDOW_MS = 100
MAX_WINDOW_MS = 5_000
#: how long past its window a round with no quote yet waits for the first one
EMPTY_WAIT_MS = 1_000
_ERRORS: tuple[type[Exception], ...] = (*TRANSPORT_ERRORS, ValidationError, IntentError, ValueError)
_ANSWER: TypeAdapter[FirmQuote | QuoteRefusal] = TypeAdapter(FirmQuote | QuoteRefusal)


class RfqDesk:
    """Quote rounds for the quote market.

    Args:
        fanout: the providers and the shared HTTP pool.
        chain_id: the chain served.
        market: the quote market's address.
    """

    def __init__(self, fanout: FanOut, *, chain_id: int, market: str) -> None:
        self.fanout = fanout
        self.chain_id = chain_id
        self.market = market

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/rfq", self.post_rfq)

    async def post_rfq(self, request: web.Request) -> web.Response:
        entered = time.perf_counter()
        try:
            window_ms = int(request.query.get("window_ms", DEFAULT_WINDOW_MS))
        except ValueError:
            return error_response(422, "invalid_query", "window_ms: an integer of milliseconds", "window_ms")
        if not 0 < window_ms <= MAX_WINDOW_MS:
            return error_response(422, "invalid_query", f"window_ms: in (0, {MAX_WINDOW_MS}]", "window_ms")
        raw = await request.read()
        try:
            wire = SignedIntentWire.model_validate_json(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            return error_response(422, "invalid_body", first["msg"], ".".join(str(p) for p in first["loc"]))
        if wire.chainId != self.chain_id:
            return error_response(422, "wrong_chain", f"this solver serves chain {self.chain_id}", "chainId")
        if wire.market.lower() != self.market.lower():
            return error_response(422, "unknown_market", f"the quote market here is {self.market}", "market")
        try:
            intent = Intent.from_json(wire.intent.model_dump())
            computed = "0x" + job_id(intent, chain_id=self.chain_id, market=self.market).hex()
            if computed != wire.jobId.lower():
                return error_response(422, "wrong_job_id", f"the intent's job id is {computed}", "jobId")
            check_signature(
                intent, bytes.fromhex(wire.signature[2:]), chain_id=self.chain_id, market=self.market
            )
        except IntentError as exc:
            return error_response(422, "bad_signature", str(exc), "signature")
        if intent.expiry and intent.expiry <= time.time():
            return error_response(422, "expired", f"the intent expired at {intent.expiry}", "intent.expiry")
        started = time.perf_counter()
        quotes = await self.gather(raw, intent, computed, window_ms / 1000)
        log(
            logger,
            "rfq.round",
            job_id=computed,
            quotes=len(quotes.quotes),
            asked=quotes.asked,
            ms=round(1000 * (time.perf_counter() - started), 1),
            checks_ms=round(1000 * (started - entered), 1),
        )
        return web.Response(body=quotes.model_dump_json(), content_type="application/json")

    async def gather(self, body: bytes, intent: Intent, job: str, window: float) -> FirmQuotes:
        """Ask every available provider; the valid firm quotes within ``window`` seconds (every
        answer when all came sooner), or, when none came by then, the first valid one within
        ``EMPTY_WAIT_MS`` more."""
        now = time.monotonic()
        fanout = self.fanout
        asked = [p for p in fanout.providers if fanout.breakers[p.name].available(now)]
        limit = window + EMPTY_WAIT_MS / 1000
        tasks: list[asyncio.Future[FirmQuote | None]] = [
            asyncio.ensure_future(self._ask(p, body, job, limit)) for p in asked
        ]
        quotes: list[FirmQuote] = []
        pending: set[asyncio.Future[FirmQuote | None]] = set(tasks)
        try:
            if tasks:
                done, pending = await asyncio.wait(tasks, timeout=window)
                quotes = [q for t in tasks if t in done and (q := t.result()) is not None]
            while not quotes and pending and (left := now + limit - time.monotonic()) > 0:
                done, pending = await asyncio.wait(pending, timeout=left, return_when=asyncio.FIRST_COMPLETED)
                quotes = [q for t in done if (q := t.result()) is not None]
        finally:
            for task in pending:
                task.cancel()
        return FirmQuotes(jobId=job, quotes=quotes, asked=len(asked))

    async def _ask(self, provider: ProviderEntry, body: bytes, job: str, window: float) -> FirmQuote | None:
        base = provider.url.rstrip("/")
        try:
            async with asyncio.timeout(window):
                status, raw = await self.fanout.transport.post(base + "/rfq/quote", body, time_limit=window)
            if status != 200:
                return None
            answer = _ANSWER.validate_json(raw)
            if isinstance(answer, QuoteRefusal):
                return None
            quote = answer.parsed()
            signer = recover_quote_signer(
                quote, bytes.fromhex(answer.signature[2:]), chain_id=self.chain_id, market=self.market
            )
        except _ERRORS as exc:
            log(logger, "rfq.quote_failed", level=logging.DEBUG, provider=provider.name, error=repr(exc))
            return None
        if "0x" + quote.job_id.hex() != job or signer.lower() != provider.address.lower():
            log(logger, "rfq.quote_refused", level=logging.DEBUG, provider=provider.name)
            return None
        return answer.model_copy(update={"url": base})


def desk_for(fanout: FanOut, *, chain_id: int, markets: dict[str, str]) -> RfqDesk | None:
    """The desk for a deployment's ``markets`` (by name), or ``None`` when it has no quote market."""
    market = markets.get("quote")
    return None if market is None else RfqDesk(fanout, chain_id=chain_id, market=market)
