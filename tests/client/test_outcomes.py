"""Client.follow ends every request in a result or the typed error of how it ended."""

from __future__ import annotations

from typing import Any

import pytest

from tender.anvil import DEV_KEYS
from tender.chain import (
    Awarded,
    Challenged,
    Delivered,
    Event,
    Expired,
    IntentPosted,
    JobState,
    Refunded,
    Settled,
    Slashed,
)
from tender.client import (
    ProofInvalid,
    ProviderSlashed,
    RequestExpired,
    RequestRefunded,
    RequestTimeout,
)
from tender.client._client import Client
from tender.client._tracker import JobTracker
from tender.intents import Intent, ProofMode
from tests.client.events import event

JOB = "0x" + "ef" * 32
P1 = "0x" + "11" * 20


def _intent(**changes: Any) -> Intent:
    base = Intent(
        requester="0x" + "22" * 20,
        model_id=bytes(32),
        input_commitment=1,
        max_price=100,
        deadline=2_000_000_000,
    )
    return base.replace(**changes)


def _client() -> Client:
    # No node is contacted: _outcome only reads the tracker for the failure outcomes.
    return Client("http://127.0.0.1:9", DEV_KEYS[7], self_help=False, confirmations=0)


def _tracker(events: list[tuple[type[Event], dict[str, Any]]]) -> JobTracker:
    tracker = JobTracker(JOB)
    for n, (kind, args) in enumerate(events):
        tracker.feed(event(kind, JOB, tx=f"0x{n:064x}", **args))
    return tracker


async def test_expired_job_raises_request_expired_with_compensation() -> None:
    tracker = _tracker(
        [
            (Awarded, {"provider": P1, "price": 5}),
            (Expired, {"provider": P1, "slashed": 33}),
            (Refunded, {"amount": 101}),
        ]
    )
    with pytest.raises(RequestExpired) as caught:
        await _client()._outcome(tracker, _intent(), None, auction="reverse", verify=True)
    assert caught.value.compensation == 33
    assert caught.value.refund == 101
    assert caught.value.provider == P1


async def test_slashed_job_raises_provider_slashed() -> None:
    tracker = _tracker(
        [
            (Awarded, {"provider": P1, "price": 5}),
            (Delivered, {"output": (4,), "state": JobState.DELIVERED}),
            (Challenged, {}),
            (Slashed, {"to_requester": 9}),
            (Refunded, {"amount": 100}),
        ]
    )
    with pytest.raises(ProviderSlashed) as caught:
        await _client()._outcome(
            tracker, _intent(proof_mode=ProofMode.OPTIMISTIC), None, auction="reverse", verify=True
        )
    assert caught.value.compensation == 9
    assert caught.value.output == [4]


async def test_unawarded_job_raises_request_refunded() -> None:
    tracker = _tracker([(IntentPosted, {}), (Refunded, {"amount": 100})])
    with pytest.raises(RequestRefunded) as caught:
        await _client()._outcome(tracker, _intent(), None, auction="dutch", verify=True)
    assert caught.value.refund == 100


async def test_follow_times_out_with_the_last_state() -> None:
    client = _client()
    tracker = JobTracker(JOB)
    tracker.feed(event(IntentPosted, JOB))

    class Quiet:
        error = None
        fatal = False

        def follow(self, t: JobTracker) -> Any:
            import asyncio

            return asyncio.Event()

        def forget(self, job: str) -> None:
            pass

    client._hub = Quiet()  # type: ignore[assignment]

    async def chain_time() -> int:
        return 1_000

    client.chain_time = chain_time  # type: ignore[method-assign]
    client._block_time = chain_time  # type: ignore[method-assign]  # (the stall check reads it)
    with pytest.raises(RequestTimeout) as caught:
        await client.follow(tracker, _intent(), None, timeout=0.3)
    assert caught.value.last_state == "open"
    assert caught.value.chain_moved_s == 0
    assert not caught.value.stalled  # followed for 0.3 s: too short to say the chain stands still


async def test_a_proof_that_does_not_verify_raises_proof_invalid() -> None:
    client = _client()
    tracker = _tracker(
        [
            (Awarded, {"provider": P1, "price": 5}),
            (Delivered, {"output": (1,), "state": JobState.SETTLED}),
            (Settled, {"price": 5, "refund": 95}),
        ]
    )
    tracker.proof = b"\x01" * 64
    client._gas = lambda tx_hashes: {}  # type: ignore[method-assign]

    class Handle:
        name = "m"
        can_verify = True

        def verify(self, proof: bytes, *, output: list[int], commitment: int) -> bool:
            return False

        def dequantize(self, output: list[int]) -> list[float]:
            return [0.0]

    with pytest.raises(ProofInvalid):
        await client._outcome(tracker, _intent(), Handle(), auction="reverse", verify=True)  # type: ignore[arg-type]


async def test_a_verified_settlement_returns_the_result() -> None:
    client = _client()
    tracker = _tracker(
        [
            (IntentPosted, {}),
            (Awarded, {"provider": P1, "price": 5}),
            (Delivered, {"output": (1, 2), "state": JobState.SETTLED}),
            (Settled, {"price": 5, "refund": 95}),
        ]
    )
    tracker.proof = b"\x01" * 64
    client._gas = lambda tx_hashes: {"settled": 1000}  # type: ignore[method-assign]

    class Handle:
        name = "mlp"
        can_verify = True

        def verify(self, proof: bytes, *, output: list[int], commitment: int) -> bool:
            return output == [1, 2] and commitment == 1

        def dequantize(self, output: list[int]) -> list[float]:
            return [v / 2 for v in output]

    result = await client._outcome(tracker, _intent(), Handle(), auction="reverse", verify=True)  # type: ignore[arg-type]
    assert result.verified
    assert result.values == [0.5, 1.0]
    assert result.price_paid == 5
    assert result.refund == 95
    assert result.provider == P1
    assert result.to_json()["price_paid"] == "5"
