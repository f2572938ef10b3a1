"""Asking providers for quotes: one shared HTTP client, concurrent fan-out, health tracking.

The fan-out sends the same serialized :class:`~tender.wire.QuoteRequest` to every configured
provider at once over one shared, keep-alive connection pool; each answer is verified as it
arrives, and the round closes when every provider has answered or its window ends, whichever
comes first (a provider still answering then is cut off and counted as a failure). A provider that errors, times out or answers
with a bad signature is skipped for this intent, and its :class:`Breaker` counts the failure:
after ``failures`` in a row it is not asked again until a backoff (doubling up to a cap) has
passed; one success closes it.

Two HTTP backends share the :class:`Transport` interface: aiohttp (the default; it measured
faster on loopback fan-out, see ``benchmarks/solver.py``) and httpx (with pool limits raised:
httpx's default pool of 100 connections serialises a large fan-out behind one lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp
import httpx
from eth_utils import keccak
from pydantic import TypeAdapter, ValidationError

from solver._config import BreakerSection, ProviderEntry
from solver._errors import QuoteError
from solver._metrics import BREAKER_OPEN, FANOUT_SECONDS, QUOTES
from solver._policy import Offer
from tender.errors import IntentError
from tender.intents import recover_digest_address
from tender.logs import log
from tender.wire import Quote, QuoteRefusal, QuoteRequest, quote_digest

__all__ = [
    "AiohttpTransport",
    "Breaker",
    "FanOut",
    "HttpxTransport",
    "Transport",
    "VerifiedQuote",
    "make_transport",
    "verify_quote",
]

logger = logging.getLogger("solver.quotes")

_ANSWER: TypeAdapter[Quote | QuoteRefusal] = TypeAdapter(Quote | QuoteRefusal)
_JSON = {"Content-Type": "application/json"}


class Transport(Protocol):
    """The HTTP the solver needs: POST and GET JSON bytes, one shared connection pool."""

    async def post(self, url: str, body: bytes, *, time_limit: float) -> tuple[int, bytes]: ...

    async def get(self, url: str, *, time_limit: float) -> tuple[int, bytes]: ...

    async def aclose(self) -> None: ...


class AiohttpTransport:
    """aiohttp backend: one :class:`aiohttp.ClientSession` with keep-alive connections."""

    def __init__(self, *, max_connections: int = 256) -> None:
        self._limit = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._limit, limit_per_host=0, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(connector=connector, headers=_JSON)
        return self._session

    async def post(self, url: str, body: bytes, *, time_limit: float) -> tuple[int, bytes]:
        t = aiohttp.ClientTimeout(total=time_limit)
        async with self._client().post(url, data=body, timeout=t) as response:
            return response.status, await response.read()

    async def get(self, url: str, *, time_limit: float) -> tuple[int, bytes]:
        t = aiohttp.ClientTimeout(total=time_limit)
        async with self._client().get(url, timeout=t) as response:
            return response.status, await response.read()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class HttpxTransport:
    """httpx backend: one :class:`httpx.AsyncClient` with pool limits sized for the fan-out."""

    def __init__(self, *, max_connections: int = 256) -> None:
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._client = httpx.AsyncClient(limits=limits, headers=_JSON, timeout=None)

    async def post(self, url: str, body: bytes, *, time_limit: float) -> tuple[int, bytes]:
        response = await self._client.post(url, content=body, timeout=time_limit)
        return response.status_code, response.content

    async def get(self, url: str, *, time_limit: float) -> tuple[int, bytes]:
        response = await self._client.get(url, timeout=time_limit)
        return response.status_code, response.content

    async def aclose(self) -> None:
        await self._client.aclose()


def make_transport(backend: str, *, max_connections: int = 256) -> Transport:
    """``"aiohttp"`` or ``"httpx"``."""
    if backend == "httpx":
        return HttpxTransport(max_connections=max_connections)
    return AiohttpTransport(max_connections=max_connections)


#: The errors one provider call can end in; anything else is a bug and propagates.
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (
    aiohttp.ClientError,
    httpx.HTTPError,
    OSError,
    TimeoutError,
    asyncio.TimeoutError,
)


_QUOTE_ERRORS: tuple[type[Exception], ...] = (*TRANSPORT_ERRORS, QuoteError, ValidationError)


@dataclass
class Breaker:
    """A circuit breaker with exponential backoff for one provider."""

    settings: BreakerSection = field(default_factory=BreakerSection)
    failures: int = 0
    open_until: float = 0.0

    def available(self, now: float) -> bool:
        return now >= self.open_until

    def success(self) -> None:
        self.failures = 0
        self.open_until = 0.0

    def failure(self, now: float) -> None:
        self.failures += 1
        excess = self.failures - self.settings.failures
        if excess >= 0:
            delay = min(self.settings.backoff_s * 2.0 ** min(excess, 32), self.settings.backoff_max_s)
            self.open_until = now + delay


@dataclass(frozen=True, slots=True)
class VerifiedQuote:
    """A quote whose signature recovered to the configured provider address."""

    provider: ProviderEntry
    quote: Quote
    offer: Offer


_EIP191_PREFIX = b"\x19Ethereum Signed Message:\n32"


def _signer(digest: bytes, signature: bytes) -> bytes:
    """The 20-byte address that signed ``digest``, by Tender's one signature rule
    (:func:`tender.intents.recover_digest_address`, the market's); :class:`QuoteError` if malformed."""
    try:
        return recover_digest_address(digest, signature)
    except IntentError as exc:
        raise QuoteError(str(exc)) from exc


def verify_quote(quote: Quote, *, job_id: str, provider: ProviderEntry, now: int) -> VerifiedQuote:
    """Check that ``quote`` is for ``job_id``, from ``provider``, unexpired and signed by it."""
    if quote.jobId.lower() != job_id.lower():
        raise QuoteError(f"{provider.name}: quote for job {quote.jobId}, asked {job_id}")
    if quote.provider.lower() != provider.address.lower():
        raise QuoteError(f"{provider.name}: quote names provider {quote.provider}")
    if quote.expires_at <= now:
        raise QuoteError(f"{provider.name}: quote expired at {quote.expires_at}")
    try:
        signer = _signer(keccak(_EIP191_PREFIX + quote_digest(quote)), bytes.fromhex(quote.signature[2:]))
    except (QuoteError, ValueError) as exc:
        raise QuoteError(f"{provider.name}: bad quote signature: {exc}") from exc
    if signer != bytes.fromhex(provider.address[2:]):
        raise QuoteError(f"{provider.name}: quote signed by 0x{signer.hex()}")
    offer = Offer(provider.address, int(quote.price), quote.latency_s, quote.expires_at)
    return VerifiedQuote(provider=provider, quote=quote, offer=offer)


class FanOut:
    """Concurrent quote requests to every available provider.

    Args:
        providers: whom to ask.
        transport: the shared HTTP client.
        timeout: seconds each provider has to answer.
        breaker: circuit-breaker settings.
    """

    def __init__(
        self,
        providers: Sequence[ProviderEntry],
        transport: Transport,
        *,
        timeout: float = 1.0,
        breaker: BreakerSection | None = None,
    ) -> None:
        self.providers = list(providers)
        self.transport = transport
        self.timeout = timeout
        settings = breaker or BreakerSection()
        self.breakers = {p.name: Breaker(settings) for p in self.providers}
        self._urls = {p.name: p.url.rstrip("/") + "/quote" for p in self.providers}

    def by_address(self, address: str) -> ProviderEntry | None:
        for provider in self.providers:
            if provider.address.lower() == address.lower():
                return provider
        return None

    async def gather(self, request: QuoteRequest, *, window: float | None = None) -> list[VerifiedQuote]:
        """Ask every available provider; return the valid quotes (refusals and failures dropped).

        Args:
            request: what to quote.
            window: seconds the round stays open (default: ``timeout``); it closes earlier
                when every provider has answered.
        """
        quotes, _answered = await self.gather_round(request, window=window)
        return quotes

    async def gather_round(
        self, request: QuoteRequest, *, window: float | None = None
    ) -> tuple[list[VerifiedQuote], int]:
        """:meth:`gather`, and how many providers answered at all (a quote or a refusal): 0
        means none could be reached (down, or their breaker open), which says nothing about
        the job itself."""
        started = time.perf_counter()
        limit = self.timeout if window is None else window
        body = request.model_dump_json().encode()
        now_mono = time.monotonic()
        asked = [p for p in self.providers if self.breakers[p.name].available(now_mono)]
        answers = await asyncio.gather(*(self._ask(p, body, request.jobId, limit) for p in asked))
        FANOUT_SECONDS.observe(time.perf_counter() - started)
        return [q for answered, q in answers if q is not None], sum(answered for answered, _ in answers)

    async def _ask(
        self, provider: ProviderEntry, body: bytes, job_id: str, limit: float
    ) -> tuple[bool, VerifiedQuote | None]:
        """Whether ``provider`` answered (a quote or a refusal), and its verified quote."""
        breaker = self.breakers[provider.name]
        try:
            async with asyncio.timeout(limit):
                status, raw = await self.transport.post(self._urls[provider.name], body, time_limit=limit)
            if status != 200:
                raise QuoteError(f"{provider.name}: HTTP {status}")
            answer = _ANSWER.validate_json(raw)
            if isinstance(answer, QuoteRefusal):
                breaker.success()
                QUOTES.labels(provider.name, "refused").inc()
                return True, None
            verified = verify_quote(answer, job_id=job_id, provider=provider, now=int(time.time()))
        except _QUOTE_ERRORS as exc:
            breaker.failure(time.monotonic())
            QUOTES.labels(provider.name, "failed").inc()
            BREAKER_OPEN.labels(provider.name).set(0 if breaker.available(time.monotonic()) else 1)
            log(logger, "quote.failed", level=logging.DEBUG, provider=provider.name, error=repr(exc))
            return False, None
        breaker.success()
        BREAKER_OPEN.labels(provider.name).set(0)
        QUOTES.labels(provider.name, "quote").inc()
        return True, verified

    async def aclose(self) -> None:
        with contextlib.suppress(*TRANSPORT_ERRORS):
            await self.transport.aclose()
