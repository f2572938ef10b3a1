"""The solver on awards that do not go the usual way, on Anvil with the real markets: an award
the market refuses for good (tried once, then the job is left), and a job the solver had lost
that comes back to its provider later (failover to its runner-up bid) and is delivered."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from solver._solver import Solver
from solver._store import Pursuit, Store, TxState
from tender.chain import JobState, Market, TxSender
from tender.intents import AuctionType, Bid

from .conftest import SOLVER_KEYS, UNIT, Env, Running, wait_until


def _bid_mined(store: Store, job: str) -> bool:
    return any(t.state == TxState.MINED for t in store.job_txs(job, "bid"))


def _advance(env: Env, seconds: int) -> None:
    env.chain.rpc("evm_increaseTime", [seconds])
    env.chain.rpc("evm_mine")


def test_award_refused_past_the_deadline_is_tried_once_and_the_job_left(
    env: Env, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 16's retry storm: once an unawarded job's deadline has passed, ``award`` reverts
    with ``DeadlinePassed`` at gas estimation. The solver tries once, then leaves the job (its
    escrow stays refundable by anyone; the requester refunds it)."""
    caplog.set_level(logging.INFO, logger="solver")
    db = tmp_path / "s.sqlite"
    solver = Solver(
        env.solver_section(db), env.chain_section(), key=SOLVER_KEYS[0], deployment=env.deployment
    )
    store = Store(db)
    with Running([solver]):
        # the cheapest stand-in promises 20 s: its bid fits in the 30 s after the auction
        intent = env.intent(AuctionType.REVERSE, window=30)
        intent = intent.replace(deadline=env.now() + 60)
        job = env.post(intent)
        wait_until(lambda: store.job(job) is not None and _bid_mined(store, job), timeout=30)
        _advance(env, 90)  # past the auction's end and the job's deadline: nobody awarded it
        wait_until(lambda: (r := store.job(job)) is not None and r.pursuit == Pursuit.LOST, timeout=30)
        row = store.job(job)
        failed = [r for r in caplog.records if r.getMessage() == "job.award_failed"]
    assert row is not None
    assert "DeadlinePassed" in (row.note or "")
    assert len(failed) == 1
    assert failed[0].fields["permanent"] is True  # type: ignore[attr-defined]
    assert store.job_txs(job, "award") == []  # refused at estimation: nothing was sent
    assert env.job(AuctionType.REVERSE, job).state is JobState.OPEN  # left as it is...
    env.markets[AuctionType.REVERSE].refund(bytes.fromhex(job[2:]))  # ...for its requester to refund
    assert env.job(AuctionType.REVERSE, job).state is JobState.REFUNDED


def test_lost_job_failed_over_to_our_runner_up_bid_is_handed_over_and_settled(
    env: Env, tmp_path: Path
) -> None:
    """Outbid by another solver's provider, the solver marks the job lost; when that winner
    misses its deadline and ``expire`` fails the job over to our runner-up bid, the solver takes
    the job back, hands the input to its provider, and the job settles."""
    ours, theirs = env.stubs[0], env.stubs[1]
    db = tmp_path / "f.sqlite"
    section = env.solver_section(db, providers=[ours.entry()])
    solver = Solver(section, env.chain_section(), key=SOLVER_KEYS[0], deployment=env.deployment)
    rival = Market(env.w3, env.deployment.market("reverse"), sender=TxSender(env.w3, SOLVER_KEYS[1]))
    store = Store(db)
    with Running([solver]):
        job = env.post(env.intent(AuctionType.REVERSE, window=20, allow_failover=True))
        job_id = bytes.fromhex(job[2:])
        wait_until(lambda: store.job(job) is not None and _bid_mined(store, job), timeout=30)
        # another solver bids a cheaper, faster offer for another provider, and never hands it over
        rival.bid(job_id, Bid(provider=theirs.address, price=UNIT // 2, latency=5))
        wait_until(lambda: env.job(AuctionType.REVERSE, job).state is JobState.AWARDED, timeout=60)
        assert env.job(AuctionType.REVERSE, job).provider.lower() == theirs.address.lower()
        wait_until(lambda: (r := store.job(job)) is not None and r.pursuit == Pursuit.LOST, timeout=30)
        _advance(env, 10)  # the winner's 5 s are over
        env.markets[AuctionType.REVERSE].expire(job_id)  # anyone may: fails over to our bid
        assert env.job(AuctionType.REVERSE, job).provider.lower() == ours.address.lower()
        wait_until(lambda: env.job(AuctionType.REVERSE, job).state is JobState.SETTLED, timeout=60)
        wait_until(lambda: (r := store.job(job)) is not None and r.pursuit == Pursuit.SETTLED, timeout=30)
    assert job.lower() in ours.jobs
    assert job.lower() not in theirs.jobs


def test_award_is_sent_so_that_the_first_block_past_the_auction_mines_it(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a chain with a block every few seconds, waiting for a block past ``auctionEnd`` before
    sending the award costs a whole block: the solver sends it once the chain's next (pending)
    block closes the auction, estimated against that block, and that block mines it."""
    db = tmp_path / "n.sqlite"
    solver = Solver(
        env.solver_section(db), env.chain_section(), key=SOLVER_KEYS[0], deployment=env.deployment
    )
    store = Store(db)
    with Running([solver]):
        job = env.post(env.intent(AuctionType.REVERSE, window=120))
        wait_until(lambda: store.job(job) is not None and _bid_mined(store, job), timeout=60)
        end = env.job(AuctionType.REVERSE, job).auction_end
        # From here the chain mines only when the test says so (no automining, no ticker).
        rpc = env.chain.rpc
        monkeypatch.setattr(env.chain, "rpc", lambda m, p=None: None if m == "evm_mine" else rpc(m, p))
        rpc("evm_setAutomine", [False])
        try:
            rpc("evm_setNextBlockTimestamp", [end])
            # every mined block is still inside the auction; only the pending one closes it
            wait_until(lambda: store.job_txs(job, "award") != [], timeout=30)
            assert env.now() < end
            rpc("evm_mine")
        finally:
            rpc("evm_setAutomine", [True])
            monkeypatch.undo()
        wait_until(lambda: env.job(AuctionType.REVERSE, job).state is JobState.AWARDED, timeout=30)
        award = store.job_txs(job, "award")
    assert len(award) == 1
    receipt = env.w3.eth.get_transaction_receipt(award[0].hash)
    assert receipt["status"] == 1
    assert env.w3.eth.get_block(receipt["blockNumber"])["timestamp"] == end
