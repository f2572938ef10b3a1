"""Batching, input checks, the job store, pricing and quote signatures."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import coincurve
import numpy as np
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from numpy.typing import NDArray

from provider import (
    InputRejected,
    JobStore,
    MicroBatcher,
    ModelSpec,
    Pricer,
    PricingSection,
    StoredJob,
    WorkStep,
    sign_quote_digest,
)
from provider._clock import ChainClock
from provider._inputs import check_input
from provider._pricing import RECENT, start_after
from provider._proving import ProofResult
from tender.anvil import DEV_KEYS
from tender.errors import ChainError
from tender.intents import recover_digest_signer
from tender.wire import Quote, quote_digest

# -- micro-batching ----------------------------------------------------------------------


async def test_batcher_groups_concurrent_requests() -> None:
    sizes: list[int] = []

    async def run(batch: NDArray[Any]) -> NDArray[Any]:
        await asyncio.sleep(0.01)
        return batch * 2

    batcher = MicroBatcher(run, max_batch=8, max_wait_ms=50, on_batch=lambda n, _: sizes.append(n))
    rows = [np.full((1, 3), i, dtype=np.float32) for i in range(20)]
    outs = await asyncio.gather(*(batcher.submit(r) for r in rows))
    await batcher.close()
    for i, out in enumerate(outs):
        np.testing.assert_array_equal(out, np.full((1, 3), 2 * i))
    assert sum(sizes) == 20
    assert max(sizes) == 8
    assert len(sizes) < 20


async def test_batcher_max_batch_one_runs_singly() -> None:
    sizes: list[int] = []

    async def run(batch: NDArray[Any]) -> NDArray[Any]:
        return batch

    batcher = MicroBatcher(run, max_batch=1, on_batch=lambda n, _: sizes.append(n))
    await asyncio.gather(*(batcher.submit(np.zeros((1, 2))) for _ in range(5)))
    assert sizes == [1] * 5


async def test_batcher_failure_reaches_every_caller_and_recovers() -> None:
    calls = 0

    async def run(batch: NDArray[Any]) -> NDArray[Any]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        return batch

    batcher = MicroBatcher(run, max_batch=4, max_wait_ms=20)
    results = await asyncio.gather(
        *(batcher.submit(np.zeros((1, 2))) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)
    out = await batcher.submit(np.ones((1, 2)))
    np.testing.assert_array_equal(out, np.ones((1, 2)))
    await batcher.close()


# -- input checks -------------------------------------------------------------------------


def test_check_input_accepts_card_flat_and_trimmed_shapes(cnn_spec: ModelSpec) -> None:
    flat = [0.5] * 64
    for value in (
        flat,
        [[flat[i * 8 : i * 8 + 8] for i in range(8)]],
        [[[flat[i * 8 : i * 8 + 8] for i in range(8)]]],
    ):
        assert check_input(cnn_spec.input, value).shape == (1, 1, 8, 8)


@pytest.mark.parametrize(
    ("value", "code", "field"),
    [
        ([0.0] * 63, "wrong_shape", "input"),
        ([[0.0] * 32, [0.0] * 32], "wrong_shape", "input"),
        ([[0.0] * 64, [0.0] * 3], "wrong_shape", "input[1]"),
        ([0.0] * 10 + ["x"] + [0.0] * 53, "wrong_dtype", "input[10]"),
        ([0.0] * 5 + [True] + [0.0] * 58, "wrong_dtype", "input[5]"),
        ([0.0] * 5 + [None] + [0.0] * 58, "wrong_dtype", "input[5]"),
        ([0.0] * 3 + [1e300] + [0.0] * 60, "wrong_dtype", "input[3]"),
        ([0.0] * 3 + [float("nan")] + [0.0] * 60, "wrong_dtype", "input[3]"),
        ([], "wrong_shape", "input"),
        ("abc", "wrong_dtype", "input"),
    ],
)
def test_check_input_refuses_naming_the_field(
    mlp_spec: ModelSpec, value: object, code: str, field: str
) -> None:
    with pytest.raises(InputRejected) as info:
        check_input(mlp_spec.input, value)
    assert info.value.code == code
    assert info.value.field == field


def test_check_input_integer_model_refuses_fractions() -> None:
    from provider import TensorSpec

    spec = TensorSpec("ids", np.dtype("int64"), (None, 4))
    assert check_input(spec, [1, 2, 3, 4]).dtype == np.int64
    with pytest.raises(InputRejected, match=r"input\[2\] must be an integer") as info:
        check_input(spec, [1, 2, 3.5, 4])
    assert info.value.code == "wrong_dtype"


# -- job store ----------------------------------------------------------------------------


def _record(job_id: str = "0x" + "11" * 32) -> StoredJob:
    return StoredJob(
        job_id=job_id,
        market="0x" + "22" * 20,
        model="mlp",
        input=[0.0] * 64,
        input_commitment="5",
        deadline=2_000_000_000,
        proof_mode=0,
        price="7",
    )


def test_store_insert_is_once_and_survives_reopen(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    assert store.insert(_record())
    assert not store.insert(_record())
    store.update(_record().job_id, step=WorkStep.PROVED, output_felts=["1", "2"], tx={"deliver": "0xab"})
    store.close()
    reopened = JobStore(tmp_path / "jobs.db")
    got = reopened.get(_record().job_id)
    assert got is not None
    assert got.step is WorkStep.PROVED
    assert got.output_felts == ["1", "2"]
    assert got.tx == {"deliver": "0xab"}
    assert got.seq == 1
    assert reopened.count() == 1
    mode = reopened._db.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_store_unfinished_skips_final_states(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    for i, step in enumerate(WorkStep):
        store.insert(_record(f"0x{i:064x}"))
        store.update(f"0x{i:064x}", step=step)
    assert {r.step for r in store.unfinished()} == {s for s in WorkStep if not s.final}
    assert [r.seq for r in store.unfinished()] == sorted(r.seq for r in store.unfinished())


def test_store_written_with_a_state_column_is_migrated(tmp_path: Path) -> None:
    """A store from before the ``state`` -> ``step`` rename opens with its rows and values."""
    path = tmp_path / "jobs.db"
    store = JobStore(path)
    store.insert(_record())
    store.update(_record().job_id, step=WorkStep.DELIVERED, tx={"deliver": "0xab"})
    store.close()
    old = sqlite3.connect(path)  # put the store back in the old shape
    old.executescript(
        "ALTER TABLE jobs RENAME COLUMN step TO state; DROP INDEX jobs_step;"
        "CREATE INDEX jobs_state ON jobs(state);"
    )
    old.close()
    reopened = JobStore(path)
    got = reopened.get(_record().job_id)
    assert got is not None
    assert got.step is WorkStep.DELIVERED
    assert got.tx == {"deliver": "0xab"}
    assert [r.job_id for r in reopened.unfinished()] == [_record().job_id]
    assert reopened.count(step=WorkStep.DELIVERED) == 1
    indexes = {row[1] for row in reopened._db.execute("PRAGMA index_list(jobs)")}
    assert "jobs_step" in indexes
    assert "jobs_state" not in indexes


# -- pricing ------------------------------------------------------------------------------


def test_pricer_price_covers_cost_and_respects_max_price() -> None:
    pricer = Pricer(PricingSection(gpu_hour_cost=3600 * 10**6, proof_cost=10**6, margin=0.5), workers=2)
    pricer.observe("mlp", inference_s=0.0, proof_s=2.0)
    cost = pricer.cost("mlp")
    assert cost == 2 * 10**6 + 10**6
    offer = pricer.offer("mlp", max_price=10**9, queued=0, now=0, deadline=1000)
    assert offer.refusal is None
    assert offer.price == int(cost * 1.5)
    capped = pricer.offer("mlp", max_price=cost + 1, queued=0, now=0, deadline=1000)
    assert capped.price == cost + 1
    below = pricer.offer("mlp", max_price=cost - 1, queued=0, now=0, deadline=1000)
    assert below.refusal is not None
    assert below.refusal.startswith("below cost")


def test_pricer_queue_raises_price_and_latency_and_tight_deadline_refuses() -> None:
    pricer = Pricer(PricingSection(), workers=1)
    pricer.observe("mlp", inference_s=0.01, proof_s=3.0)
    idle = pricer.offer("mlp", max_price=10**30, queued=0, now=0, deadline=10**6)
    busy = pricer.offer("mlp", max_price=10**30, queued=4, now=0, deadline=10**6)
    assert busy.price > idle.price
    assert busy.latency_s > idle.latency_s
    tight = pricer.offer("mlp", max_price=10**30, queued=0, now=0, deadline=idle.latency_s - 1)
    assert tight.refusal is not None
    assert tight.refusal.startswith("deadline too tight")


def test_promised_latency_covers_the_proof_queue_restart_and_inclusion() -> None:
    """The promise is measured inference + proof times the slack, + the wait for a proving
    worker behind the proofs ahead + restart headroom + tx inclusion; optimistic jobs wait for
    no proof but for EZKL's witness."""
    pricing = PricingSection(latency_slack=1.0, restart_s=15.0, delivery_s=4.0)
    pricer = Pricer(pricing, workers=2)
    pricer.observe("mlp", inference_s=1.0, proof_s=3.0, witness_s=0.5)
    assert pricer.latency_s("mlp", queued=0) == 1 + 3 + 15 + 4
    assert pricer.latency_s("mlp", queued=1) == 1 + 3 + 15 + 4  # one ahead: the other worker is free
    assert pricer.latency_s("mlp", queued=2) == 1 + 3 + 3 + 15 + 4  # both busy: one proof's wait
    assert pricer.latency_s("mlp", queued=4) == 1 + 3 * 2 + 3 + 15 + 4  # four ahead: two waves
    assert pricer.latency_s("mlp", queued=4, optimistic=True) == math.ceil(1 + 0.5 + 15 + 4)
    slack = Pricer(pricing.model_copy(update={"latency_slack": 2.0}), workers=2)
    slack.observe("mlp", inference_s=1.0, proof_s=3.0)
    assert slack.latency_s("mlp", queued=2) == (1 + 3) * 2 + 3 + 15 + 4  # the wait is measured already
    offer = pricer.offer("mlp", max_price=10**30, queued=4, now=0, deadline=28, optimistic=False)
    assert offer.refusal is not None
    assert offer.refusal.startswith("deadline too tight")


def test_promised_latency_waits_behind_each_queued_proof_for_its_own_model() -> None:
    """A cheap model's job queued behind an expensive model's proofs waits for those proofs,
    not for its own model's proving time times their number."""
    pricer = Pricer(PricingSection(latency_slack=1.0, restart_s=0.0, delivery_s=0.0), workers=1)
    pricer.observe("mlp", inference_s=0.0, proof_s=2.0)
    pricer.observe("cnn", inference_s=0.0, proof_s=20.0)
    behind_cnn = [pricer.proof_estimate("cnn")] * 2
    assert pricer.latency_s("mlp", ahead=behind_cnn) == 20 * 2 + 2
    assert pricer.latency_s("mlp", queued=2) == 2 * 2 + 2
    assert start_after([5.0, 1.0, 1.0], 2) == 2.0  # the short ones share the worker the long one leaves


def test_promised_latency_follows_the_recent_slowest_measurement_not_the_average() -> None:
    """The machine got busy: one proof took four times as long. The promise covers that at once
    (a moving average would promise too little for several jobs), and comes back down once the
    slow measurement is older than the last ``RECENT``."""
    pricer = Pricer(PricingSection(latency_slack=1.0, restart_s=0.0, delivery_s=1.0), workers=1)
    for _ in range(RECENT):
        pricer.observe("mlp", inference_s=0.0, proof_s=5.0)
    calm = pricer.latency_s("mlp")
    pricer.observe("mlp", proof_s=20.0)
    assert pricer.latency_s("mlp") == calm + 15
    pricer.observe_delivery(6.0)  # a delivery that waited 6 s to be mined
    assert pricer.latency_s("mlp") == calm + 15 + 5
    for _ in range(RECENT):
        pricer.observe("mlp", proof_s=5.0)
        pricer.observe_delivery(0.5)
    assert pricer.latency_s("mlp") == calm  # delivery_s stays the floor


def test_restart_headroom_is_at_least_the_measured_start_up() -> None:
    """A node that took 40 s to start (a loaded machine) promises 40 s of restart headroom,
    not the configured 15; a fast start leaves the configured headroom."""
    pricer = Pricer(PricingSection(latency_slack=1.0, restart_s=15.0, delivery_s=0.0), workers=1)
    pricer.observe("mlp", inference_s=0.0, proof_s=5.0)
    configured = pricer.latency_s("mlp")
    pricer.observe_startup(4.0)
    assert pricer.latency_s("mlp") == configured
    pricer.observe_startup(40.0)
    assert pricer.latency_s("mlp") == configured + 25


def test_process_age_counts_from_the_process_start() -> None:
    from provider._node import process_age_s

    age = process_age_s()
    assert age is not None  # Linux
    assert age > 0  # this test process started before the test (its imports took time)
    later = process_age_s()
    assert later is not None
    assert later >= age


def _record_order(order: list[str], name: str) -> ProofResult:
    order.append(name)
    return ProofResult(output_felts=[], proof=b"", output=[], seconds=0.0)


async def test_proving_pool_gives_a_free_worker_to_the_earliest_deadline() -> None:
    """With the worker busy, proofs wait in deadline order, not in arrival order; a calibration
    proof (untracked) waits behind every job; the backlog names every model in flight."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from provider._proving import ProvingPool

    order: list[str] = []
    gate = threading.Event()

    def prove(bundle_dir: str, data: Any) -> ProofResult:
        if bundle_dir == "first":
            gate.wait(30)
        return _record_order(order, bundle_dir)

    pool = ProvingPool(1, prove=prove)
    pool.close()
    pool._pool = ThreadPoolExecutor(1)  # type: ignore[assignment]  # one class under test, a stub worker
    try:
        first = asyncio.ensure_future(pool.prove("first", None, deadline=1.0, model="mlp"))
        await asyncio.sleep(0.05)
        queued = [
            asyncio.ensure_future(pool.prove("calibration", None, track=False, model="cnn")),
            asyncio.ensure_future(pool.prove("late", None, deadline=300.0, model="cnn")),
            asyncio.ensure_future(pool.prove("soon", None, deadline=100.0, model="mlp")),
        ]
        cancelled = asyncio.ensure_future(pool.prove("gone", None, deadline=50.0, model="mlp"))
        await asyncio.sleep(0.05)
        assert sorted(pool.backlog()) == ["cnn", "cnn", "mlp", "mlp", "mlp"]
        assert pool.in_flight == 4
        cancelled.cancel()
        await asyncio.sleep(0)
        gate.set()
        await asyncio.gather(first, *queued)
    finally:
        pool._pool.shutdown()
    assert order == ["first", "soon", "late", "calibration"]
    assert pool.in_flight == 0
    assert pool.backlog() == []


# -- quote signatures ---------------------------------------------------------------------


def test_quote_signature_is_eip191_over_quote_digest() -> None:
    account = Account.from_key(DEV_KEYS[1])
    quote = Quote(
        jobId="0x" + "ab" * 32,
        provider=account.address,
        price="123",
        latency_s=9,
        capacity=3,
        region="0x0000",
        expires_at=1_900_000_000,
        signature="0x",
    )
    digest = quote_digest(quote)
    ours = sign_quote_digest(digest, DEV_KEYS[1])
    theirs = Account.sign_message(encode_defunct(primitive=digest), DEV_KEYS[1]).signature
    assert bytes.fromhex(ours[2:]) == bytes(theirs)
    # the node signs with its key built once: the same bytes
    assert sign_quote_digest(digest, coincurve.PrivateKey(bytes.fromhex(DEV_KEYS[1][2:]))) == ours
    assert (
        Account.recover_message(encode_defunct(primitive=digest), signature=bytes.fromhex(ours[2:]))
        == account.address
    )
    from eth_utils import keccak

    eip191 = keccak(b"\x19Ethereum Signed Message:\n32" + digest)
    assert recover_digest_signer(eip191, bytes.fromhex(ours[2:])) == account.address


# -- chain time for quotes ---------------------------------------------------------------------


class _Head:
    """A chain head whose timestamp the test sets; a read can be made to fail."""

    def __init__(self, timestamp: int) -> None:
        self.timestamp = timestamp
        self.reads = 0
        self.fail_next = False
        self.read_again = asyncio.Event()

    async def __call__(self) -> int:
        self.reads += 1
        if self.reads >= 3:
            self.read_again.set()
        if self.fail_next:
            self.fail_next = False
            raise ChainError("rpc down")
        return self.timestamp


def _frozen_monotonic(monkeypatch: pytest.MonkeyPatch, start: float = 1000.0) -> list[float]:
    clock = [start]
    monkeypatch.setattr("provider._clock.monotonic", lambda: clock[0])
    return clock


def test_chain_clock_adds_the_time_since_the_head_was_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    mono = _frozen_monotonic(monkeypatch)
    head = _Head(5_000)
    clock = ChainClock(head)
    asyncio.run(clock.start())
    assert clock.now() == 5_000
    mono[0] += 7.5
    assert clock.now() == 5_007  # no read: the head plus the monotonic time since it was seen
    assert head.reads == 1


def test_chain_clock_keeps_its_anchor_while_the_head_is_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    mono = _frozen_monotonic(monkeypatch)
    head = _Head(5_000)
    clock = ChainClock(head)
    asyncio.run(clock.start())
    mono[0] += 30
    asyncio.run(clock.refresh())  # an idle chain: the same head again
    assert clock.now() == 5_030  # not stepped back to 5_000
    head.timestamp = 5_100  # a new block (e.g. after evm_increaseTime)
    asyncio.run(clock.refresh())
    assert clock.now() == 5_100
    assert head.reads == 3


def test_chain_clock_without_a_chain_is_wall_time() -> None:
    clock = ChainClock(None)
    asyncio.run(clock.start())
    assert abs(clock.now() - int(time.time())) <= 1


def test_chain_clock_survives_a_failed_refresh(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    mono = _frozen_monotonic(monkeypatch)
    head = _Head(5_000)
    clock = ChainClock(head, refresh_s=0)

    async def main() -> None:
        await clock.start()
        head.fail_next = True  # the first background read fails, the next succeeds
        task = asyncio.create_task(clock.run())
        await asyncio.wait_for(head.read_again.wait(), 60)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    caplog.set_level("WARNING", logger="provider.clock")
    asyncio.run(main())
    assert "clock.refresh_failed" in caplog.text
    mono[0] += 2
    assert clock.now() == 5_002


# -- optimistic deliveries: the output without a proof ----------------------------------------


def test_witness_output_felts_are_the_proofs(mlp_bundle: Any, mlp_samples: list[list[float]]) -> None:
    """An optimistic delivery sends the witness's output felts; a later proof must prove exactly them."""
    from provider._proving import prove_with_bundle, witness_with_bundle

    for sample in mlp_samples[:2]:
        felts = witness_with_bundle(str(mlp_bundle.path), sample)
        assert felts == prove_with_bundle(str(mlp_bundle.path), sample).output_felts


def test_witness_is_made_without_keys_and_quietly(
    mlp_bundle: Any, mlp_samples: list[list[float]], caplog: pytest.LogCaptureFixture
) -> None:
    """The quote path's witness goes without the verifying key and SRS (EZKL's input
    commitment, which the outputs do not need): the same outputs, and no warning logged."""
    import tender.models._prove as prove

    seen: list[tuple[Any, ...]] = []
    gen_witness = prove.ezkl.gen_witness

    def spy(*args: Any) -> Any:
        seen.append(args)
        return gen_witness(*args)

    with caplog.at_level(logging.DEBUG), pytest.MonkeyPatch.context() as patch:
        patch.setattr(prove.ezkl, "gen_witness", spy)
        felts = prove.output_felts(mlp_bundle, mlp_samples[0])
    assert seen
    assert seen[0][3:] == (None, None)
    assert not [r for r in caplog.records if r.name.startswith("ezkl") and r.levelno >= logging.WARNING]
    assert felts == prove.output_felts(mlp_bundle, mlp_samples[0])  # (the proof's: the test above)


async def test_quoted_jobs_input_is_checked_once_per_job() -> None:
    """Both solvers ask for a quote on the same job, often at the same moment, and ``/rfq/run``
    follows: the job id binds the input and its commitment, so the (EZKL) check runs once; another
    job is checked on its own, and a check that failed is made again."""
    from provider._rfq import RfqDesk

    calls: list[str] = []
    failing = {"0xbb"}

    class Node:
        async def _input_mismatch(self, served: Any, location: str, commitment: int) -> str | None:
            calls.append(location)
            await asyncio.sleep(0)
            if location in failing:
                failing.discard(location)
                raise OSError("the bundle's files are unreadable")
            return None if commitment == 1 else "inline input commits to 1"

    desk = RfqDesk(Node())  # type: ignore[arg-type]
    first = await asyncio.gather(*(desk._input_check(None, "0x01", "0xaa", 1) for _ in range(3)))  # type: ignore[arg-type]
    assert first == [None, None, None]
    assert await desk._input_check(None, "0x01", "0xaa", 1) is None  # type: ignore[arg-type]
    assert calls == ["0xaa"]
    assert await desk._input_check(None, "0x02", "0xcc", 2) == "inline input commits to 1"  # type: ignore[arg-type]
    with pytest.raises(OSError, match="unreadable"):
        await desk._input_check(None, "0x03", "0xbb", 1)  # type: ignore[arg-type]
    assert await desk._input_check(None, "0x03", "0xbb", 1) is None  # type: ignore[arg-type]
    assert calls == ["0xaa", "0xcc", "0xbb", "0xbb"]


def _niceness() -> int:
    import os

    return os.nice(0)


async def test_proving_workers_run_at_a_lower_priority() -> None:
    """Proofs are background work: the workers add ``nice`` to the node's niceness (the quote
    path's output and commitment, and the node's chain reads, go first on a busy machine)."""
    import os

    from provider._proving import WORKER_NICE, ProvingPool

    assert WORKER_NICE > 0
    pool = ProvingPool(1, nice=3)
    try:
        loop = asyncio.get_running_loop()
        worker = await loop.run_in_executor(pool._pool, _niceness)
    finally:
        pool.close()
    assert worker == min(19, os.nice(0) + 3)


def _scheduler() -> tuple[int, int]:
    import os

    return os.sched_getscheduler(0), os.nice(0)


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")
async def test_proving_workers_under_sched_idle_take_only_idle_cycles() -> None:
    """``provider.proving_idle``: the workers run under SCHED_IDLE (and keep their niceness);
    without it they stay under the normal policy."""
    from provider._proving import ProvingPool

    loop = asyncio.get_running_loop()
    seen = {}
    for idle in (True, False):
        pool = ProvingPool(1, nice=2, idle=idle)
        try:
            seen[idle] = await loop.run_in_executor(pool._pool, _scheduler)
        finally:
            pool.close()
    assert seen[True] == (os.SCHED_IDLE, min(19, os.nice(0) + 2))
    assert seen[False] == (os.sched_getscheduler(0), min(19, os.nice(0) + 2))


# -- the job store as the market feed's cursor ------------------------------------------------


def test_store_rollback_returns_the_jobs_a_dropped_block_spoke_of(tmp_path: Path) -> None:
    from provider import JobStore, StoredJob

    store = JobStore(tmp_path / "jobs.db")
    for n, block in ((1, 10), (2, 20)):
        store.insert(
            StoredJob(
                job_id=f"0x{n:064x}",
                market="0x" + "11" * 20,
                model="mlp",
                input=[0.0],
                input_commitment="1",
                deadline=100,
                proof_mode=0,
                chain_block=block,
            )
        )
    with store.transaction():
        store.advance(20, {19: "0x19", 20: "0x20"}, keep=64)
    assert store.cursor == 20
    assert store.recent_blocks() == [(20, "0x20"), (19, "0x19")]
    assert store.rollback(15) == [f"0x{2:064x}"]  # only job 2's event was after the fork
    assert store.cursor == 15
    assert store.block_hash(20) is None
    assert store.rollback(15) == []  # forgotten once checked
    store.close()
    reopened = JobStore(tmp_path / "jobs.db")  # the cursor survives a restart
    assert reopened.cursor == 15
    reopened.close()


async def test_quoted_jobs_output_is_computed_once_when_quoted(
    mlp_bundle: Any, mlp_samples: list[list[float]]
) -> None:
    """A quoted job's output (EZKL's witness) is started when the node quotes and kept per job:
    the second solver's quote and ``/rfq/run`` reuse it, and it is exactly the proof's felts."""
    from types import SimpleNamespace

    from provider._rfq import RfqDesk
    from provider._spec import read_spec
    from tender.client._models import encode_input_uri
    from tender.models import output_felts

    served = SimpleNamespace(
        entry=SimpleNamespace(name="mlp"),
        key="mlp",
        spec=read_spec("mlp", mlp_bundle.path / "model.onnx"),
        bundle=SimpleNamespace(path=mlp_bundle.path),
    )
    desk = RfqDesk(SimpleNamespace())  # type: ignore[arg-type]
    location = encode_input_uri(mlp_samples[0])
    first = desk._output(served, "0x01", location)  # type: ignore[arg-type]
    assert desk._output(served, "0x01", location) is first  # type: ignore[arg-type]
    other = desk._output(served, "0x02", encode_input_uri(mlp_samples[1]))  # type: ignore[arg-type]
    assert other is not first
    assert await first == output_felts(mlp_bundle, mlp_samples[0])
    assert await other == output_felts(mlp_bundle, mlp_samples[1])
