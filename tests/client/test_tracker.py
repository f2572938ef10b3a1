"""The job tracker follows one job: tender.chain's JobView folded from the market's typed
events, plus the client's timeline (when each step was seen, by which transaction)."""

from __future__ import annotations

from typing import Any

import pytest

from tender.chain import (
    Awarded,
    BidPlaced,
    CallbackFailed,
    Challenged,
    Delivered,
    Event,
    Expired,
    FailedOver,
    IntentPosted,
    JobState,
    Proved,
    Refunded,
    Settled,
    Slashed,
    StakeLocked,
)
from tender.client._tracker import JobTracker
from tests.client.events import event

JOB = "0x" + "cd" * 32
OTHER = "0x" + "ce" * 32
P1, P2 = "0x" + "11" * 20, "0x" + "22" * 20


def feed(tracker: JobTracker, events: list[tuple[type[Event], dict[str, Any]]]) -> JobState:
    for t, (kind, args) in enumerate(events):
        tracker.feed(event(kind, JOB, tx=f"0x{t:02x}", **args), at=100.0 + t)
    return tracker.state


def test_zk_reverse_auction_settles_with_price_and_bids() -> None:
    tracker = JobTracker(JOB, sent_at=99.5)
    state = feed(
        tracker,
        [
            (IntentPosted, {"auction_end": 1000}),
            (BidPlaced, {"provider": P1, "price": 50}),
            (BidPlaced, {"provider": P2, "price": 40}),
            (Awarded, {"provider": P2, "price": 50, "provider_deadline": 1060}),
            (Delivered, {"provider": P2, "output": (1, 2, 3), "state": JobState.SETTLED}),
            (Settled, {"provider": P2, "price": 50, "fee": 1, "refund": 49, "latency": 3}),
        ],
    )
    assert state is JobState.SETTLED
    assert tracker.view.state is JobState.SETTLED  # the state is tender.chain's, not the client's
    assert tracker.bids == 2
    assert tracker.provider == P2
    assert tracker.price == 50
    assert tracker.refund == 49
    assert tracker.output == [1, 2, 3]
    assert tracker.verified_onchain
    assert tracker.auction_end == 1000
    assert tracker.provider_deadline == 1060
    assert tracker.auction_ms == pytest.approx(3500.0)
    assert tracker.total_ms == pytest.approx(5500.0)
    assert tracker.tx_hashes["awarded"] == "0x03"
    assert tracker.tx_hashes["posted"] == "0x00"


def test_before_the_intent_is_on_the_market_the_job_is_none() -> None:
    tracker = JobTracker(JOB)
    assert tracker.state is JobState.NONE
    assert not tracker.state.final
    assert (tracker.provider, tracker.price, tracker.output) == (None, None, None)


@pytest.mark.parametrize("refund_first", [True, False])
def test_expiry_wins_over_the_escrow_refund_in_either_log_order(refund_first: bool) -> None:
    tracker = JobTracker(JOB)
    feed(tracker, [(IntentPosted, {}), (Awarded, {"provider": P1, "price": 5})])
    ending: list[tuple[type[Event], dict[str, Any]]] = [
        (Refunded, {"amount": 101}),
        (Expired, {"provider": P1, "slashed": 30}),
    ]
    state = feed(tracker, ending if refund_first else ending[::-1])
    assert state is JobState.EXPIRED
    assert tracker.compensation == 30
    assert tracker.refund == 101
    assert tracker.slashed


def test_unanswered_challenge_ends_slashed() -> None:
    tracker = JobTracker(JOB)
    state = feed(
        tracker,
        [
            (IntentPosted, {}),
            (Awarded, {"provider": P1, "price": 5}),
            (Delivered, {"provider": P1, "output": (9,), "state": JobState.DELIVERED}),
            (Challenged, {"challenger": P2, "bond": 10}),
            (Refunded, {"amount": 100}),
            (Slashed, {"provider": P1, "to_requester": 20, "to_challenger": 5, "bond_returned": 10}),
        ],
    )
    assert state is JobState.SLASHED
    assert tracker.challenged
    assert tracker.slashed
    assert tracker.compensation == 20
    assert not tracker.verified_onchain


def test_answered_challenge_settles() -> None:
    tracker = JobTracker(JOB)
    state = feed(
        tracker,
        [
            (Awarded, {"provider": P1, "price": 5}),
            (Delivered, {"output": (9,), "state": JobState.DELIVERED}),
            (Challenged, {}),
            (Proved, {"prover": P1, "bond_paid": 10}),
            (Settled, {"provider": P1, "price": 5, "refund": 0}),
        ],
    )
    assert state is JobState.SETTLED
    assert tracker.challenged
    assert tracker.verified_onchain
    assert not tracker.slashed
    assert "proved" in tracker.at


def test_never_awarded_is_refunded() -> None:
    tracker = JobTracker(JOB)
    assert feed(tracker, [(IntentPosted, {}), (Refunded, {"amount": 77})]) is JobState.REFUNDED
    assert tracker.refund == 77


def test_failover_moves_the_job_to_the_runner_up() -> None:
    tracker = JobTracker(JOB)
    feed(
        tracker, [(Awarded, {"provider": P1, "price": 5}), (FailedOver, {"from_": P1, "to": P2, "price": 6})]
    )
    assert tracker.provider == P2
    assert tracker.price == 6
    assert tracker.state is JobState.AWARDED
    assert tracker.tx_hashes["awarded"] == "0x00"  # the first award's transaction


def test_unrelated_events_and_other_jobs_are_ignored() -> None:
    tracker = JobTracker(JOB)
    assert feed(tracker, [(StakeLocked, {})]) is JobState.NONE
    assert tracker.feed(event(IntentPosted, OTHER, tx="0x01")) is JobState.NONE
    assert tracker.view.events == ()


def test_an_event_seen_twice_counts_once() -> None:
    tracker = JobTracker(JOB)
    bid = event(BidPlaced, JOB, tx="0x07", provider=P1, price=5)
    tracker.feed(bid)
    tracker.feed(bid)
    assert tracker.bids == 1


def test_a_reorg_forgets_the_dropped_blocks_events() -> None:
    tracker = JobTracker(JOB)
    tracker.feed(event(IntentPosted, JOB, tx="0x01", block=5))
    tracker.feed(event(Awarded, JOB, tx="0x02", block=7, provider=P1, price=5))
    tracker.rollback(6)
    assert tracker.state is JobState.OPEN
    assert tracker.provider is None
    # the award mined again on the new chain is taken in again
    assert tracker.feed(event(Awarded, JOB, tx="0x02", block=8, provider=P2, price=4)) is JobState.AWARDED
    assert tracker.provider == P2


def test_a_failed_consumer_callback_is_kept_after_settlement() -> None:
    tracker = JobTracker(JOB)
    state = feed(
        tracker,
        [
            (Awarded, {"provider": P1, "price": 5}),
            (Delivered, {"provider": P1, "output": (1,), "state": JobState.SETTLED}),
            (Settled, {"provider": P1, "price": 5, "refund": 1}),
            (CallbackFailed, {"requester": P2, "reason": b"\x08\xc3\x79\xa0"}),
        ],
    )
    assert state is JobState.SETTLED
    assert tracker.callback_failed == b"\x08\xc3\x79\xa0"
    assert "callback_failed" not in tracker.tx_hashes  # not a step of the job's timeline
    assert JobTracker(JOB).callback_failed is None
