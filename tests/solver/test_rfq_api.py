"""``POST /rfq`` on a real loopback server: the checks a quote round makes before asking any
provider (none is configured here, so a request that passes them gets an empty round)."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from solver._api import IntentApi
from solver._quotes import FanOut, make_transport
from solver._rfq import RfqDesk
from tender.anvil import DEV_KEYS
from tender.intents import AuctionType, Intent, ProofMode, job_id, sign_intent

QUOTE_MARKET = "0x" + "55" * 20
REQUESTER_KEY = DEV_KEYS[1]


def _wire(**changes: Any) -> dict[str, Any]:
    from eth_account import Account

    intent = Intent(
        requester=Account.from_key(REQUESTER_KEY).address,
        model_id=b"\x01" * 32,
        input_commitment=5,
        max_price=10**18,
        deadline=2**40,
        auction_type=AuctionType.QUOTE,
        auction_window=1,
        proof_mode=ProofMode.ZK,
        price_weight_bps=5_000,
        nonce=7,
        expiry=2**40,
    )
    signature = sign_intent(intent, REQUESTER_KEY, chain_id=31337, market=QUOTE_MARKET)
    body = {
        "intent": intent.to_json(),
        "signature": "0x" + signature.hex(),
        "market": QUOTE_MARKET,
        "chainId": 31337,
        "jobId": "0x" + job_id(intent, chain_id=31337, market=QUOTE_MARKET).hex(),
    }
    body.update(changes)
    return body


async def _post(cases: list[tuple[str, dict[str, Any]]]) -> list[tuple[int, dict[str, Any]]]:
    async def accept(intent: Intent, signature: bytes, market: str, job: str) -> bool:
        raise AssertionError("a quote round never schedules an auction intent")

    desk = RfqDesk(FanOut([], make_transport("aiohttp")), chain_id=31337, market=QUOTE_MARKET)
    api = IntentApi(chain_id=31337, markets=[], accept=accept, status=lambda: {}, rfq=desk)
    await api.start("127.0.0.1:0")
    out = []
    try:
        async with aiohttp.ClientSession() as http:
            for query, body in cases:
                async with http.post(
                    f"http://127.0.0.1:{api.port}/rfq{query}",
                    data=json.dumps(body).encode(),
                    headers={"Content-Type": "application/json"},
                ) as reply:
                    out.append((reply.status, await reply.json()))
    finally:
        await api.stop()
        await desk.fanout.aclose()
    return out


async def test_a_quote_round_checks_the_signed_intent_first() -> None:
    answers = await _post(
        [
            ("?window_ms=50", _wire()),
            ("?window_ms=0", _wire()),
            ("?window_ms=soon", _wire()),
            ("", _wire(market="0x" + "66" * 20)),
            ("", _wire(chainId=1)),
            ("", _wire(jobId="0x" + "00" * 32)),
            ("", {**_wire(), "signature": "0x" + "11" * 65}),
        ]
    )
    status, body = answers[0]
    assert status == 200
    assert (body["quotes"], body["asked"]) == ([], 0)
    assert [(s, b["error"], b["field"]) for s, b in answers[1:]] == [
        (422, "invalid_query", "window_ms"),
        (422, "invalid_query", "window_ms"),
        (422, "unknown_market", "market"),
        (422, "wrong_chain", "chainId"),
        (422, "wrong_job_id", "jobId"),
        (422, "bad_signature", "signature"),
    ]


async def test_a_round_closes_when_all_answered_and_waits_on_for_a_first_quote() -> None:
    """The round ends as soon as every provider answered (a slow one is not waited for once the
    window ends with a quote in hand); a round with no quote at the window's end takes the first
    one that comes after it rather than answering empty (each provider is asked once)."""
    import asyncio

    from solver._config import ProviderEntry
    from tender.rfq import FirmQuote

    def entry(i: int) -> ProviderEntry:
        return ProviderEntry(name=f"p{i}", url=f"http://127.0.0.1:{9 + i}", address="0x" + f"{i:02x}" * 20)

    def quote(i: int) -> FirmQuote:
        return FirmQuote(quote={"provider": i}, signature="0x" + "11" * 65, url=f"p{i}")  # type: ignore[arg-type]

    async def run(delays: dict[int, float | None], window: float) -> tuple[list[str], list[int]]:
        """``delays``: seconds before each provider answers (``None``: it refuses at once)."""
        asked: list[int] = []
        fanout = FanOut([entry(i) for i in delays], make_transport("aiohttp"))
        desk = RfqDesk(fanout, chain_id=31337, market=QUOTE_MARKET)

        async def ask(provider: ProviderEntry, body: bytes, job: str, limit: float) -> FirmQuote | None:
            i = int(provider.name[1:])
            asked.append(i)
            delay = delays[i]
            if delay is None:
                return None
            await asyncio.sleep(delay)
            return quote(i)

        desk._ask = ask  # type: ignore[method-assign,assignment]
        try:
            got = await desk.gather(b"{}", None, "0x" + "01" * 32, window)  # type: ignore[arg-type]
        finally:
            await fanout.aclose()
        return [q.url for q in got.quotes], asked

    # everyone answers quickly: all quotes, long before a generous window ends
    assert sorted((await run({1: 0.0, 2: 0.01, 3: None}, 30.0))[0]) == ["p1", "p2"]
    # the window ends with one quote in hand: the slow provider is not waited for
    assert (await run({1: 0.0, 2: 30.0}, 0.2))[0] == ["p1"]
    # nobody by the window's end: the first quote after it, each provider asked once
    urls, asked = await run({1: 0.3, 2: 30.0, 3: None}, 0.05)
    assert urls == ["p1"]
    assert sorted(asked) == [1, 2, 3]
