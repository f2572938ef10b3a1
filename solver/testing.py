"""Stand-in providers for the solver's tests and benchmarks (never used in production).

A :class:`StubProvider` answers ``POST /quote`` with a quote signed by its key, at a fixed
price and latency, and records ``POST /jobs``. :class:`StubFleet` runs many of them on
loopback in a thread of their own (its own event loop), so a client under test does not share
a loop with the servers::

    with StubFleet([StubProvider(key, price=100, latency_s=5)]) as fleet:
        entries = fleet.entries()     # ProviderEntry list for SolverSection.providers
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from eth_account import Account
from eth_utils import keccak

from solver._config import ProviderEntry
from tender.anvil import free_port
from tender.intents import sign_digest
from tender.wire import JobInput, Quote, QuoteRefusal, QuoteRequest, quote_digest

__all__ = ["StubFleet", "StubProvider", "sign_quote"]

_EIP191_PREFIX = b"\x19Ethereum Signed Message:\n32"


def sign_quote(quote: Quote, key: str) -> Quote:
    """``quote`` with its EIP-191 signature by ``key`` filled in."""
    signature = sign_digest(keccak(_EIP191_PREFIX + quote_digest(quote)), key)
    return quote.model_copy(update={"signature": "0x" + signature.hex()})


@dataclass
class StubProvider:
    """A fake provider: fixed price and latency, optional delay, failure or refusal.

    ``on_job`` is awaited with each accepted job input (a test can deliver on-chain there).
    """

    key: str
    price: int = 100
    latency_s: int = 10
    delay_s: float = 0.0
    fail: bool = False
    refuse: bool = False
    ttl_s: int = 60
    name: str = ""
    port: int = 0
    on_job: Callable[[JobInput], Awaitable[None]] | None = None
    jobs: dict[str, JobInput] = field(default_factory=dict)
    quotes: int = 0

    def __post_init__(self) -> None:
        self.address: str = Account.from_key(self.key).address
        self.name = self.name or f"stub-{self.address[2:8].lower()}"

    def entry(self) -> ProviderEntry:
        return ProviderEntry(name=self.name, url=f"http://127.0.0.1:{self.port}", address=self.address)

    async def _quote(self, request: web.Request) -> web.Response:
        self.quotes += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail:
            return web.json_response({"error": "internal", "message": "stub failure"}, status=500)
        ask = QuoteRequest.model_validate_json(await request.read())
        if self.refuse:
            refusal = QuoteRefusal(jobId=ask.jobId, provider=self.address, reason="stub refuses")
            return web.Response(body=refusal.model_dump_json(), content_type="application/json")
        quote = Quote(
            jobId=ask.jobId,
            provider=self.address,
            price=str(self.price),
            latency_s=self.latency_s,
            capacity=8,
            region="0x0000",
            expires_at=int(time.time()) + self.ttl_s,
            signature="0x",
        )
        return web.Response(
            body=sign_quote(quote, self.key).model_dump_json(), content_type="application/json"
        )

    async def _job(self, request: web.Request) -> web.Response:
        job = JobInput.model_validate_json(await request.read())
        self.jobs[job.jobId.lower()] = job
        if self.on_job is not None:
            await self.on_job(job)
        return web.json_response({"jobId": job.jobId, "state": "accepted"}, status=202)

    async def _status(self, request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"].lower()
        if job_id not in self.jobs:
            return web.json_response({"error": "unknown_job", "message": job_id}, status=404)
        return web.json_response({"jobId": job_id, "state": "accepted"})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/quote", self._quote)
        app.router.add_post("/jobs", self._job)
        app.router.add_get("/jobs/{job_id}", self._status)
        return app


class StubFleet:
    """Run :class:`StubProvider` servers on loopback in a background thread."""

    def __init__(self, providers: Sequence[StubProvider]) -> None:
        self.providers = list(providers)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="stub-fleet", daemon=True)
        self._runners: list[web.AppRunner] = []

    def entries(self) -> list[ProviderEntry]:
        return [p.entry() for p in self.providers]

    async def _start(self) -> None:
        for provider in self.providers:
            provider.port = provider.port or free_port()
            runner = web.AppRunner(provider.app(), access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", provider.port, backlog=1024).start()
            self._runners.append(runner)

    async def _stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()

    def call(self, coro: Awaitable[Any]) -> Any:
        """Run ``coro`` on the fleet's loop and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)  # type: ignore[arg-type]

    def __enter__(self) -> StubFleet:
        self._thread.start()
        self.call(self._start())
        return self

    def __exit__(self, *exc: object) -> None:
        self.call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()
