"""Reorgs (``anvil_reorg``) and a real solver process killed mid-auction."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from eth_account import Account
from web3 import Web3

from solver._solver import Solver
from solver._store import Pursuit, Store, TxState
from tender.chain import JobState, resync_nonces
from tender.intents import AuctionType
from tests.harness.solver import start_solver_process

from .conftest import SOLVER_KEYS, UNIT, Env, Running, wait_until


def _bids_by(env: Env, job_id: str, solver: str) -> int:
    """How many BidPlaced events the canonical chain holds for ``job_id`` from ``solver``."""
    market = env.markets[AuctionType.REVERSE]
    event = market.contract.events.BidPlaced()
    logs = env.w3.eth.get_logs(
        {
            "fromBlock": env.deployment.block,
            "toBlock": "latest",
            "address": market.address,
            "topics": [event.topic, "0x" + job_id[2:]],
        }
    )
    decoded = [event.process_log(entry) for entry in logs]
    return sum(1 for d in decoded if d["args"]["solver"].lower() == solver.lower())


def test_reorg_forgets_a_dropped_intent_and_follows_the_new_chain(env: Env, tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    solver = Solver(
        env.solver_section(db), env.chain_section(), key=SOLVER_KEYS[0], deployment=env.deployment
    )
    me = Account.from_key(SOLVER_KEYS[0]).address
    with Running([solver]):
        before = env.w3.eth.block_number
        dropped = env.post(env.intent(AuctionType.REVERSE, window=30))
        store = Store(db)
        wait_until(lambda: (r := store.job(dropped)) is not None and r.pursuit == Pursuit.BID, timeout=30)
        wait_until(lambda: any(t.state == TxState.MINED for t in store.job_txs(dropped, "bid")), timeout=30)
        depth = env.w3.eth.block_number - before
        env.chain.rpc("anvil_reorg", [depth, []])
        resync_nonces(env.w3)  # the requester's own post vanished too
        assert env.job(AuctionType.REVERSE, dropped).state is JobState.NONE
        wait_until(lambda: (r := store.job(dropped)) is not None and r.pursuit == Pursuit.DROPPED, timeout=30)
        kept = env.post(env.intent(AuctionType.REVERSE, window=3))
        wait_until(lambda: env.job(AuctionType.REVERSE, kept).state is JobState.SETTLED, timeout=60)
        # The dropped bid is not re-sent on the new chain (its intent does not exist there).
        time.sleep(1.0)
    assert _bids_by(env, dropped, me) == 0
    assert _bids_by(env, kept, me) == 1
    assert env.job(AuctionType.REVERSE, dropped).state is JobState.NONE
    final = Store(db)
    assert final.job(kept).pursuit == Pursuit.SETTLED  # type: ignore[union-attr]
    assert not [j for j in final.open_jobs()]
    bid_txs = final.job_txs(dropped, "bid")
    assert len(bid_txs) == 1  # signed once, never re-signed


def test_reorg_of_an_award_is_followed_by_a_new_award(env: Env, tmp_path: Path) -> None:
    db = tmp_path / "a.sqlite"
    solver = Solver(
        env.solver_section(db), env.chain_section(), key=SOLVER_KEYS[0], deployment=env.deployment
    )
    hold = [True]
    for stub in env.stubs:  # providers accept the job but deliver only when the test says so
        original = stub.on_job

        async def gated(job, original=original):  # type: ignore[no-untyped-def]
            while hold[0]:
                import asyncio

                await asyncio.sleep(0.1)
            await original(job)  # type: ignore[misc]

        stub.on_job = gated
    with Running([solver]), _release(hold):
        job = env.post(env.intent(AuctionType.REVERSE, window=3))
        wait_until(lambda: env.job(AuctionType.REVERSE, job).state is JobState.AWARDED, timeout=30)
        store = Store(db)
        wait_until(lambda: (r := store.job(job)) is not None and r.awarded_block is not None, timeout=30)
        awarded_block = store.job(job).awarded_block  # type: ignore[union-attr]
        depth = env.w3.eth.block_number - awarded_block + 1  # type: ignore[operator]
        env.chain.rpc("anvil_reorg", [depth, []])
        resync_nonces(env.w3)
        assert env.job(AuctionType.REVERSE, job).state is JobState.OPEN
        # The solver sees the award vanish and awards again on the new chain.
        try:
            wait_until(lambda: env.job(AuctionType.REVERSE, job).state is JobState.AWARDED, timeout=15)
        except AssertionError:
            for t in Store(db).txs():
                rc = None
                try:
                    rc = env.w3.eth.get_transaction_receipt(t.hash)
                except Exception as e:
                    rc = repr(e)[:80]
                print(
                    t.purpose,
                    t.nonce,
                    t.state,
                    t.block,
                    t.hash[:10],
                    rc if isinstance(rc, str) else (rc["status"], rc["blockNumber"]),
                )
            print(
                env.job(AuctionType.REVERSE, job),
                env.w3.eth.get_transaction_count(Account.from_key(SOLVER_KEYS[0]).address),
                env.w3.eth.block_number,
            )
            print(env.chain.rpc("txpool_content"))
            for t in Store(db).txs():
                if t.purpose == "award":
                    tx = env.w3.eth.get_transaction(t.hash)
                    try:
                        env.w3.eth.call(
                            {"from": tx["from"], "to": tx["to"], "data": tx["input"], "gas": tx["gas"]},
                            tx["blockNumber"] - 1,
                        )
                        print(
                            "call ok; gas", tx["gas"], env.w3.eth.get_transaction_receipt(t.hash)["gasUsed"]
                        )
                    except Exception as e:
                        print("REPLAY", e)
            raise
        print("re-awarded")
        hold[0] = False
        wait_until(lambda: env.job(AuctionType.REVERSE, job).state is JobState.SETTLED, timeout=60)
        wait_until(lambda: Store(db).job(job).pursuit == Pursuit.SETTLED, timeout=30)  # type: ignore[union-attr]
    me = Account.from_key(SOLVER_KEYS[0]).address
    assert _bids_by(env, job, me) == 1


def test_an_award_reorged_out_before_the_feed_read_it_is_sent_again(env: Env, tmp_path: Path) -> None:
    """Issue 16's lost reorg trials: the solver awards its auction, then ``anvil_reorg`` drops
    the award's block before the solver's feed read it (the feed stays 5 blocks behind the head,
    so no rollback tells the solver). The job is Open again on chain: the solver follows the
    chain, not its receipt, and sends the same award again; the job settles and the provider
    is neither expired nor slashed."""
    db = tmp_path / "unseen.sqlite"
    solver = Solver(
        env.solver_section(db, confirmations=5),
        env.chain_section(),
        key=SOLVER_KEYS[0],
        deployment=env.deployment,
    )
    released = _gate_deliveries(env)
    market = env.markets[AuctionType.REVERSE]
    with Running([solver]):
        # the window leaves time for a feed 5 blocks (seconds) behind to see the intent and bid
        job = env.post(env.intent(AuctionType.REVERSE, window=12))
        wait_until(lambda: env.job(AuctionType.REVERSE, job).state is JobState.AWARDED, timeout=60)
        store = Store(db)
        (award,) = store.job_txs(job, "award")
        awarded_in = int(env.w3.eth.get_transaction_receipt(award.hash)["blockNumber"])
        env.chain.rpc("anvil_reorg", [env.w3.eth.block_number - awarded_in + 1, []])
        resync_nonces(env.w3)
        assert (store.cursor or 0) < awarded_in  # the feed had not read the award's block
        assert env.job(AuctionType.REVERSE, job).state is JobState.OPEN
        try:
            wait_until(lambda: env.job(AuctionType.REVERSE, job).state is JobState.AWARDED, timeout=30)
        finally:
            released.set()
        wait_until(lambda: env.job(AuctionType.REVERSE, job).state is JobState.SETTLED, timeout=60)
        wait_until(lambda: Store(db).job(job).pursuit == Pursuit.SETTLED, timeout=30)  # type: ignore[union-attr]
    me = Account.from_key(SOLVER_KEYS[0]).address
    assert _bids_by(env, job, me) == 1
    job_id = bytes.fromhex(job[2:])
    assert len(list(market.events(names=["Awarded"], job_id=job_id))) == 1
    assert list(market.events(names=["Expired", "Slashed"], job_id=job_id)) == []


def test_a_dutch_fill_reorged_out_is_sent_again_while_the_window_is_open(env: Env, tmp_path: Path) -> None:
    """The Dutch twin: the solver fills at once (the start price covers its floor), the provider
    holds its delivery, and ``anvil_reorg`` drops the fill's block. The job is Open again with its
    window still open: the solver sends the same fill again (one fill signed in all), and the job
    settles with nobody expired or slashed."""
    db = tmp_path / "dutch.sqlite"
    solver = Solver(
        env.solver_section(db), env.chain_section(), key=SOLVER_KEYS[0], deployment=env.deployment
    )
    released = _gate_deliveries(env)
    market = env.markets[AuctionType.DUTCH]
    with Running([solver]):
        job = env.post(env.intent(AuctionType.DUTCH, window=60, start_price=9 * UNIT))
        wait_until(lambda: env.job(AuctionType.DUTCH, job).state is JobState.AWARDED, timeout=60)
        store = Store(db)
        (fill,) = store.job_txs(job, "fill")
        filled_in = int(env.w3.eth.get_transaction_receipt(fill.hash)["blockNumber"])
        env.chain.rpc("anvil_reorg", [env.w3.eth.block_number - filled_in + 1, []])
        resync_nonces(env.w3)
        assert env.job(AuctionType.DUTCH, job).state is JobState.OPEN
        try:
            wait_until(lambda: env.job(AuctionType.DUTCH, job).state is JobState.AWARDED, timeout=30)
        finally:
            released.set()
        wait_until(lambda: env.job(AuctionType.DUTCH, job).state is JobState.SETTLED, timeout=60)
        wait_until(lambda: Store(db).job(job).pursuit == Pursuit.SETTLED, timeout=30)  # type: ignore[union-attr]
    job_id = bytes.fromhex(job[2:])
    assert len(list(market.events(names=["Awarded"], job_id=job_id))) == 1
    assert list(market.events(names=["Expired", "Slashed"], job_id=job_id)) == []
    assert [t.hash for t in Store(db).job_txs(job, "fill")] == [fill.hash]  # sent again, never re-signed


def _gate_deliveries(env: Env) -> threading.Event:
    """The stub providers accept a job but deliver it only once the returned event is set."""
    released = threading.Event()
    for stub in env.stubs:
        original = stub.on_job

        async def gated(job, original=original):  # type: ignore[no-untyped-def]
            await asyncio.to_thread(released.wait)
            await original(job)  # type: ignore[misc]

        stub.on_job = gated
    return released


@contextlib.contextmanager
def _release(hold: list[bool]) -> Iterator[None]:
    try:
        yield
    finally:
        hold[0] = False


def _config(env: Env, tmp_path: Path, db: Path) -> Path:
    deployment = env.deployment.save(tmp_path / "deployment.json")
    providers = "\n".join(
        f'[[solver.providers]]\nname = "{e.name}"\nurl = "{e.url}"\naddress = "{e.address}"\n'
        for e in env.fleet.entries()
    )
    text = f"""
[chain]
rpc_url = "{env.chain.rpc_url}"
deployment = "{deployment}"
key_env = "SOLVER_TEST_KEY"

[solver]
listen = "127.0.0.1:0"
store = "{db}"
margin_bps = 100
poll_interval_s = 0.1
job_poll_s = 0.2
quote_timeout_s = 2.0
start_block = {env.deployment.block}

{providers}
"""
    path = tmp_path / "solver.toml"
    path.write_text(text)
    return path


def test_restart_mid_auction_neither_double_bids_nor_loses_a_won_job(env: Env, tmp_path: Path) -> None:
    db = tmp_path / "p.sqlite"
    config = _config(env, tmp_path, db)
    log = tmp_path / "solver.log"
    me = Account.from_key(SOLVER_KEYS[0]).address
    process = start_solver_process(config, log)
    try:
        jobs = [env.post(env.intent(AuctionType.REVERSE, window=12)) for _ in range(4)]
        wait_until(lambda: db.exists(), timeout=30)
        store = Store(db)

        def all_bid() -> bool:
            return all(any(t.state == TxState.MINED for t in store.job_txs(j, "bid")) for j in jobs)

        wait_until(all_bid, timeout=40)
        cursor = store.cursor
        assert all(env.job(AuctionType.REVERSE, j).state is JobState.OPEN for j in jobs)  # mid-auction
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        process = start_solver_process(config, log)
        wait_until(
            lambda: all(env.job(AuctionType.REVERSE, j).state is JobState.SETTLED for j in jobs), timeout=90
        )
        wait_until(lambda: all(Store(db).job(j).pursuit == Pursuit.SETTLED for j in jobs), timeout=30)  # type: ignore[union-attr]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=20)
    assert process.returncode == 0, log.read_text()[-3000:]
    for job in jobs:
        assert _bids_by(env, job, me) == 1
        assert len(Store(db).job_txs(job, "bid")) == 1
    assert (Store(db).cursor or 0) >= (cursor or 0)
    assert Web3.is_address(me)
