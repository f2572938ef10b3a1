"""Quote fan-out against real HTTP servers on loopback, with both backends."""

from __future__ import annotations

import asyncio
import time

import pytest

from solver._config import BreakerSection, ProviderEntry
from solver._errors import QuoteError
from solver._quotes import Breaker, FanOut, make_transport, verify_quote
from tender.anvil import DEV_KEYS
from tender.wire import IntentWire, Quote, QuoteRequest
from tests.harness.solver import StubFleet, StubProvider, sign_quote

JOB = "0x" + "ab" * 32


def _request(job: str = JOB) -> QuoteRequest:
    intent = IntentWire(
        requester="0x" + "11" * 20,
        modelId="0x" + "22" * 32,
        inputCommitment="7",
        maxPrice="1000000",
        auctionType=0,
        auctionWindow=10,
        deadline=2**40,
        proofMode=1,
        priceWeightBps=5000,
        nonce="1",
        expiry=2**40,
    )
    return QuoteRequest(jobId=job, market="0x" + "33" * 20, chainId=31337, intent=intent)


@pytest.fixture(scope="module")
def fleet():
    stubs = [
        StubProvider(DEV_KEYS[1], price=300, latency_s=5, name="good-a"),
        StubProvider(DEV_KEYS[2], price=200, latency_s=9, name="good-b"),
        StubProvider(DEV_KEYS[3], fail=True, name="broken"),
        StubProvider(DEV_KEYS[4], delay_s=10.0, name="slow"),
        StubProvider(DEV_KEYS[5], refuse=True, name="refuses"),
    ]
    with StubFleet(stubs) as running:
        yield running


@pytest.mark.parametrize("backend", ["aiohttp", "httpx"])
def test_gather_keeps_valid_quotes_and_skips_failures(fleet: StubFleet, backend: str) -> None:
    async def main() -> tuple[list[str], FanOut, float]:
        # generous for the answering stubs on a loaded machine, far shorter than the slow one's delay
        fan = FanOut(fleet.entries(), make_transport(backend), timeout=2.0)
        started = time.monotonic()
        quotes = await fan.gather(_request())
        elapsed = time.monotonic() - started
        await fan.aclose()
        return sorted(q.provider.name for q in quotes), fan, elapsed

    names, fan, elapsed = asyncio.run(main())
    assert names == ["good-a", "good-b"]
    assert elapsed < 10.0  # the slow provider (10 s) was cut off by the timeout, not waited for
    assert fan.breakers["broken"].failures == 1
    assert fan.breakers["slow"].failures == 1
    assert fan.breakers["refuses"].failures == 0


def test_gather_opens_breaker_after_repeated_failures(fleet: StubFleet) -> None:
    async def main() -> FanOut:
        fan = FanOut(
            fleet.entries(),
            make_transport("aiohttp"),
            timeout=2.0,
            breaker=BreakerSection(failures=2, backoff_s=60, backoff_max_s=120),
        )
        for _ in range(3):
            await fan.gather(_request())
        await fan.aclose()
        return fan

    broken = next(p for p in fleet.providers if p.name == "broken")
    before = broken.quotes
    fan = asyncio.run(main())
    assert broken.quotes - before == 2  # the third round skipped it
    assert not fan.breakers["broken"].available(time.monotonic())


def test_breaker_backoff_doubles_and_closes_on_success() -> None:
    breaker = Breaker(BreakerSection(failures=2, backoff_s=1, backoff_max_s=5))
    breaker.failure(0)
    assert breaker.available(0)
    breaker.failure(0)
    assert not breaker.available(0.5)
    assert breaker.available(1.0)
    breaker.failure(1)
    assert not breaker.available(2.5)
    assert breaker.available(3.0)
    for _ in range(10):
        breaker.failure(3)
    assert breaker.available(8.0)
    breaker.success()
    assert breaker.available(3)


def _quote(key: str, **changes) -> tuple[Quote, ProviderEntry]:
    stub = StubProvider(key)
    quote = Quote(
        jobId=JOB,
        provider=stub.address,
        price="5",
        latency_s=3,
        capacity=1,
        region="0x0000",
        expires_at=int(time.time()) + 30,
        signature="0x",
    )
    signed = sign_quote(quote, key).model_copy(update=changes)
    return signed, ProviderEntry(name="p", url="http://127.0.0.1:1", address=stub.address)


def test_verify_quote_accepts_a_good_signature() -> None:
    quote, entry = _quote(DEV_KEYS[1])
    verified = verify_quote(quote, job_id=JOB, provider=entry, now=int(time.time()))
    assert (verified.offer.price, verified.offer.latency_s) == (5, 3)


@pytest.mark.parametrize(
    "changes",
    [{"price": "4"}, {"jobId": "0x" + "cd" * 32}, {"expires_at": 1}, {"signature": "0x" + "00" * 65}],
)
def test_verify_quote_refuses_tampered_quotes(changes: dict) -> None:
    quote, entry = _quote(DEV_KEYS[1], **changes)
    with pytest.raises(QuoteError):
        verify_quote(quote, job_id=JOB, provider=entry, now=int(time.time()))


def test_verify_quote_refuses_another_signer() -> None:
    quote, entry = _quote(DEV_KEYS[1])
    foreign = sign_quote(quote, DEV_KEYS[2])
    with pytest.raises(QuoteError, match="signed by"):
        verify_quote(foreign, job_id=JOB, provider=entry, now=int(time.time()))


def test_quote_digest_matches_abi_encoding() -> None:
    from eth_abi import encode
    from eth_utils import keccak

    from tender.wire import quote_digest

    quote, _ = _quote(DEV_KEYS[1])
    expected = keccak(
        encode(
            ["bytes32", "address", "uint256", "uint256", "uint256"],
            [
                bytes.fromhex(quote.jobId[2:]),
                quote.provider,
                int(quote.price),
                quote.latency_s,
                quote.expires_at,
            ],
        )
    )
    assert quote_digest(quote) == expected


@pytest.mark.parametrize("backend", ["aiohttp", "httpx"])
def test_a_provider_still_answering_does_not_hold_the_round_past_its_window(
    fleet: StubFleet, backend: str
) -> None:
    """A provider that answers only after the round has returned: if the round waited for every
    provider it would never return (guarded by ``wait_for``); it closes at its window instead."""
    from aiohttp import web

    async def main() -> tuple[list[str], int]:
        released = asyncio.Event()
        asked = 0

        async def held(request: web.Request) -> web.Response:
            nonlocal asked
            asked += 1
            await released.wait()
            return web.json_response({"error": "late", "message": "too late"}, status=500)

        app = web.Application()
        app.router.add_post("/quote", held)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        late = ProviderEntry(name="held", url=f"http://127.0.0.1:{port}", address="0x" + "44" * 20)
        good = [e for e in fleet.entries() if e.name.startswith("good")]
        fan = FanOut([*good, late], make_transport(backend), timeout=120.0)
        try:
            # the window, not the 120 s per-provider timeout, closes the round
            quotes = await asyncio.wait_for(fan.gather(_request(), window=5.0), 60)
        finally:
            released.set()
            await fan.aclose()
            await runner.cleanup()
        assert fan.breakers["held"].failures == 1
        return sorted(q.provider.name for q in quotes), asked

    names, asked = asyncio.run(main())
    assert names == ["good-a", "good-b"]
    assert asked == 1
