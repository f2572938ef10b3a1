"""``POST /intents``: checks on a real loopback server, and a signed intent served end to end."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from solver._api import IntentApi
from solver._solver import Solver
from tender.anvil import DEV_KEYS
from tender.chain import JobState
from tender.intents import AuctionType, Intent, ProofMode, job_id, sign_intent
from tender.wire import SignedIntentWire

from .conftest import SOLVER_KEYS, Env, Running, wait_until

MARKET = "0x" + "44" * 20
JSON = {"Content-Type": "application/json"}
REQUESTER_KEY = DEV_KEYS[1]


def _wire(**changes: Any) -> dict[str, Any]:
    from eth_account import Account

    intent = Intent(
        requester=Account.from_key(REQUESTER_KEY).address,
        model_id=b"\x01" * 32,
        input_commitment=5,
        max_price=10**18,
        deadline=2**40,
        auction_type=AuctionType.REVERSE,
        auction_window=10,
        proof_mode=ProofMode.OPTIMISTIC,
        price_weight_bps=5_000,
        nonce=7,
        expiry=2**40,
    )
    signature = sign_intent(intent, REQUESTER_KEY, chain_id=31337, market=MARKET)
    body = {
        "intent": intent.to_json(),
        "signature": "0x" + signature.hex(),
        "market": MARKET,
        "chainId": 31337,
        "jobId": "0x" + job_id(intent, chain_id=31337, market=MARKET).hex(),
    }
    body.update(changes)
    return body


async def _post(bodies: list[Any]) -> tuple[list[tuple[int, dict[str, Any]]], list[str]]:
    accepted: list[str] = []

    async def accept(intent: Intent, signature: bytes, market: str, job: str) -> bool:
        accepted.append(job)
        return True

    api = IntentApi(chain_id=31337, markets=[MARKET], accept=accept, status=lambda: {"ok": True})
    await api.start("127.0.0.1:0")
    answers = []
    try:
        async with aiohttp.ClientSession() as http:
            for body in bodies:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                async with http.post(
                    f"http://127.0.0.1:{api.port}/intents", data=data, headers=JSON
                ) as reply:
                    answers.append((reply.status, await reply.json()))
    finally:
        await api.stop()
    return answers, accepted


def test_post_intents_accepts_a_good_signature() -> None:
    body = _wire()
    answers, accepted = asyncio.run(_post([body]))
    assert answers == [(202, {"jobId": body["jobId"], "status": "accepted"})]
    assert accepted == [body["jobId"]]


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"chainId": 1}, "wrong_chain"),
        ({"market": "0x" + "55" * 20}, "unknown_market"),
        ({"jobId": "0x" + "00" * 32}, "wrong_job_id"),
        ({"signature": "0x" + "11" * 65}, "bad_signature"),
    ],
)
def test_post_intents_refuses_with_a_machine_code(changes: dict[str, Any], code: str) -> None:
    answers, accepted = asyncio.run(_post([_wire(**changes)]))
    ((status, body),) = answers
    assert status == 422
    assert body["error"] == code
    assert accepted == []


def test_post_intents_refuses_a_tampered_intent() -> None:
    body = _wire()
    body["intent"]["maxPrice"] = str(10**19)  # signed for 10**18
    answers, _ = asyncio.run(_post([body]))
    assert answers[0][0] == 422
    assert answers[0][1]["error"] in ("wrong_job_id", "bad_signature")


def test_post_intents_refuses_a_malformed_body() -> None:
    answers, _ = asyncio.run(_post([b"{not json", {"intent": {}}]))
    assert [a[0] for a in answers] == [422, 422]
    assert all(a[1]["error"] == "invalid_body" for a in answers)


def test_signed_intent_is_relayed_and_served(env: Env, tmp_path: Path) -> None:
    solver = Solver(
        env.solver_section(tmp_path / "api.sqlite", listen="127.0.0.1:0"),
        env.chain_section(),
        key=SOLVER_KEYS[0],
        deployment=env.deployment,
    )
    with Running([solver]):
        wait_until(lambda: solver.api is not None and solver.api.port is not None, timeout=30)
        intent = env.intent(AuctionType.REVERSE, window=3)
        market = env.markets[AuctionType.REVERSE].address
        wire = SignedIntentWire.model_validate(
            {
                "intent": intent.to_json(),
                "signature": "0x" + env.sign(intent).hex(),
                "market": market,
                "chainId": 31337,
                "jobId": "0x" + job_id(intent, chain_id=31337, market=market).hex(),
            }
        )

        async def send() -> int:
            async with aiohttp.ClientSession() as http:
                url = f"http://127.0.0.1:{solver.api.port}/intents"  # type: ignore[union-attr]
                async with http.post(url, data=wire.model_dump_json(), headers=JSON) as reply:
                    return reply.status

        assert asyncio.run(send()) == 202
        wait_until(lambda: env.job(AuctionType.REVERSE, wire.jobId).state is JobState.SETTLED, timeout=60)


def _resigned(transform: Any) -> dict[str, Any]:
    """A good wire body whose (valid) signature is rewritten by ``transform``."""
    body = _wire()
    raw = bytes.fromhex(body["signature"][2:])
    body["signature"] = "0x" + transform(raw).hex()
    return body


_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@pytest.mark.parametrize(
    "transform",
    [
        pytest.param(lambda raw: raw[:64] + bytes([raw[64] - 27]), id="v-0-or-1"),
        pytest.param(  # the malleable twin: same signer, (r, n - s, flipped v)
            lambda raw: (
                raw[:32]
                + (_N - int.from_bytes(raw[32:64], "big")).to_bytes(32, "big")
                + bytes([55 - raw[64]])
            ),
            id="high-s",
        ),
        pytest.param(lambda raw: raw[:64], id="64-bytes"),
    ],
)
def test_post_intents_refuses_what_the_market_refuses(transform: Any) -> None:
    # Each of these recovers the requester with a lax check, but OpenZeppelin's ECDSA (the
    # market's SignatureChecker) refuses it: the solver must answer 4xx, never 202.
    answers, accepted = asyncio.run(_post([_resigned(transform)]))
    ((status, body),) = answers
    assert status == 422
    assert body["error"] == "bad_signature"
    assert body["field"] == "signature"
    assert accepted == []
