"""Unit tests of the provider's batch collection policy (``provider._batch_proofs``) on a fake
clock: a batch is proved when N jobs wait, when the oldest waited ``batch_wait_s``, or when the
earliest deadline leaves only the batch's proving time and the delivery headroom; a job with no
time to wait is proved at once; a job the market skips, or one that spoils the batch, never
blocks the others. The real proof and ``deliverBatch`` are in ``test_batch_proofs_chain.py``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from provider._batch_proofs import (
    BatchCollector,
    BatchJob,
    BatchJobFailed,
    BatchPolicy,
    BatchProved,
    BatchSettled,
)
from tender.chain import BatchSkip
from tender.errors import ContractRevert
from tender.quotes import QuotedJob

PROVE_S, HEADROOM_S = 10.0, 5.0


def terms(due: int) -> QuotedJob:
    return QuotedJob(
        requester="0x" + "11" * 20,
        provider="0x" + "22" * 20,
        model_id=b"\x01" * 32,
        input_commitment=7,
        price=1,
        stake_locked=1,
        awarded_at=0,
        due=due,
        fee_bps=0,
        layout=0,
    )


def job(n: int, due: int) -> BatchJob:
    return BatchJob(job_id=n.to_bytes(32, "big"), terms=terms(due), row=[float(n)])


class FakeClock:
    """Chain seconds that move only when the collector waits (by exactly what it asked for)."""

    def __init__(self, t: float = 1_000.0) -> None:
        self.t = t
        self.waits: list[float] = []

    def now(self) -> float:
        return self.t

    async def wait(self, event: asyncio.Event, seconds: float) -> None:
        await asyncio.sleep(0)  # a submit in the same tick wakes it instead
        if event.is_set():
            return
        self.waits.append(seconds)
        self.t += max(0.0, seconds)


class Fakes:
    """The collector's proving and delivery, recorded; ``skip`` / ``spoil`` make the market skip a
    job or refuse every batch holding it."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.proved: list[tuple[float, list[Any]]] = []
        self.dues: list[float] = []
        self.delivered: list[list[bytes]] = []
        self.skip: dict[bytes, BatchSkip] = {}
        self.spoil: set[bytes] = set()

    async def prove(self, rows: list[Any], due: float) -> BatchProved:
        self.dues.append(due)
        self.proved.append((self.clock.t, rows))
        return BatchProved(b"proof", [], 1.0)

    async def deliver(
        self, jobs: list[BatchJob], proved: BatchProved
    ) -> tuple[str, list[int], dict[int, BatchSkip]]:
        ids = [j.job_id for j in jobs]
        if self.spoil & set(ids):
            raise ContractRevert("BatchProofRejected", {"modelId": b"\x01" * 32})
        self.delivered.append(ids)
        skipped = {i: self.skip[j] for i, j in enumerate(ids) if j in self.skip}
        return f"0x{len(self.delivered):064x}", [i for i in range(len(ids)) if i not in skipped], skipped


def collector(size: int = 4, wait_s: float = 30.0) -> tuple[BatchCollector, FakeClock, Fakes]:
    clock = FakeClock()
    fakes = Fakes(clock)
    c = BatchCollector(
        BatchPolicy(size, wait_s),
        prove=fakes.prove,
        deliver=fakes.deliver,
        prove_s=lambda: PROVE_S,
        headroom_s=lambda: HEADROOM_S,
        clock=clock.now,
        wait=clock.wait,
        name="mlp@batch4",
    )
    return c, clock, fakes


async def submit_all(c: BatchCollector, jobs: list[BatchJob]) -> list[BatchSettled | BaseException]:
    return list(await asyncio.gather(*(c.submit(j) for j in jobs), return_exceptions=True))


# -- the policy alone ---------------------------------------------------------------------------


def test_policy_is_ready_with_n_jobs_whatever_the_clock() -> None:
    policy = BatchPolicy(4, 30.0)
    waiting = [(0.0, 1_000.0)] * 3
    assert not policy.ready(waiting, 1.0, prove_s=PROVE_S, headroom_s=HEADROOM_S)
    assert policy.ready([*waiting, (1.0, 1_000.0)], 1.0, prove_s=PROVE_S, headroom_s=HEADROOM_S)
    assert not policy.ready([], 1e9, prove_s=PROVE_S, headroom_s=HEADROOM_S)


def test_policy_time_limit_is_the_oldest_wait_or_the_earliest_deadline_less_proof_and_headroom() -> None:
    policy = BatchPolicy(4, 30.0)
    # far deadlines: the oldest job's wait decides
    assert (
        policy.flush_at([(100.0, 10_000.0), (110.0, 10_000.0)], prove_s=PROVE_S, headroom_s=HEADROOM_S)
        == 130.0
    )
    # a near deadline: the last start that still delivers it in time decides
    near = [(100.0, 10_000.0), (110.0, 140.0)]
    assert policy.flush_at(near, prove_s=PROVE_S, headroom_s=HEADROOM_S) == 140.0 - PROVE_S - HEADROOM_S
    assert not policy.ready(near, 124.9, prove_s=PROVE_S, headroom_s=HEADROOM_S)
    assert policy.ready(near, 125.0, prove_s=PROVE_S, headroom_s=HEADROOM_S)
    assert policy.reason(near, 125.0, prove_s=PROVE_S, headroom_s=HEADROOM_S) == "deadline"


def test_policy_a_job_without_time_to_wait_cannot_wait() -> None:
    policy = BatchPolicy(4, 30.0)
    assert policy.can_wait(1_016.0, 1_000.0, prove_s=PROVE_S, headroom_s=HEADROOM_S)
    assert not policy.can_wait(1_015.0, 1_000.0, prove_s=PROVE_S, headroom_s=HEADROOM_S)
    # already within its proving time: its batch is due now
    assert policy.ready([(1_000.0, 1_012.0)], 1_000.0, prove_s=PROVE_S, headroom_s=HEADROOM_S)


def test_policy_takes_up_to_n_earliest_due_first() -> None:
    policy = BatchPolicy(2, 30.0)
    jobs = [job(1, 900), job(2, 500), job(3, 700)]
    assert [j.job_id[-1] for j in policy.take(jobs)] == [2, 3]


# -- the collector on a fake clock --------------------------------------------------------------


async def test_n_waiting_jobs_are_proved_at_once_in_one_batch() -> None:
    c, _clock, fakes = collector()
    results = await submit_all(c, [job(i, 5_000) for i in range(1, 5)])
    assert [r.slot for r in results if isinstance(r, BatchSettled)] == [0, 1, 2, 3]
    assert {r.tx for r in results if isinstance(r, BatchSettled)} == {f"0x{1:064x}"}
    assert fakes.proved == [(1_000.0, [[1.0], [2.0], [3.0], [4.0]])]  # no wait: the clock never moved
    assert c.sent == [4]


async def test_fewer_than_n_jobs_are_proved_once_the_oldest_waited_the_limit() -> None:
    c, _clock, fakes = collector(wait_s=30.0)
    results = await submit_all(c, [job(1, 5_000), job(2, 5_000)])
    assert all(isinstance(r, BatchSettled) and r.jobs == 2 for r in results)
    assert [t for t, _ in fakes.proved] == [1_030.0]
    assert c.sent == [2]


async def test_a_near_deadline_shortens_the_wait_so_no_job_is_late() -> None:
    c, _clock, fakes = collector(wait_s=30.0)
    # due at 1,020: proving (10 s) and the delivery headroom (5 s) must start by 1,005
    results = await submit_all(c, [job(1, 5_000), job(2, 1_020)])
    assert all(isinstance(r, BatchSettled) for r in results)
    ((at, rows),) = fakes.proved
    assert at == 1_020 - PROVE_S - HEADROOM_S
    assert at + PROVE_S + HEADROOM_S <= 1_020
    assert rows == [[2.0], [1.0]]  # earliest due first
    assert fakes.dues == [1_020.0]  # its place in the proving queue: the earliest due


async def test_a_job_that_cannot_wait_is_proved_at_once_alone() -> None:
    c, clock, fakes = collector()
    (result,) = await submit_all(c, [job(1, 1_010)])  # within its proving time already
    assert isinstance(result, BatchSettled)
    assert result.jobs == 1
    assert fakes.proved == [(1_000.0, [[1.0]])]
    assert clock.waits == []


async def test_a_job_that_cannot_wait_takes_the_waiting_ones_along() -> None:
    c, _clock, fakes = collector()
    waiting = asyncio.ensure_future(c.submit(job(1, 5_000)))
    await asyncio.sleep(0)
    urgent = await c.submit(job(2, 1_012))
    assert urgent.jobs == 2
    assert (await waiting).jobs == 2
    assert [t for t, _ in fakes.proved] == [1_000.0]


async def test_more_than_n_jobs_make_two_batches() -> None:
    c, _clock, _fakes = collector(size=2, wait_s=30.0)
    results = await submit_all(c, [job(i, 5_000 + i) for i in range(1, 6)])
    assert all(isinstance(r, BatchSettled) for r in results)
    assert sorted(c.sent) == [1, 2, 2]


async def test_a_skipped_job_is_reported_and_the_others_settle() -> None:
    c, _clock, fakes = collector()
    late = job(2, 5_000)
    fakes.skip[late.job_id] = BatchSkip.LATE
    results = await submit_all(c, [job(1, 5_000), late, job(3, 5_000), job(4, 5_000)])
    assert isinstance(results[1], BatchJobFailed)
    assert results[1].reason == "late"
    assert [isinstance(r, BatchSettled) for r in results] == [True, False, True, True]
    assert len(fakes.proved) == 1


async def test_a_batch_refused_as_a_whole_is_split_and_only_the_bad_job_fails() -> None:
    c, _clock, fakes = collector()
    bad = job(3, 5_000)
    fakes.spoil.add(bad.job_id)
    results = await submit_all(c, [job(1, 5_000), job(2, 5_000), bad, job(4, 5_000)])
    assert isinstance(results[2], BatchJobFailed)
    assert [isinstance(r, BatchSettled) for r in results] == [True, True, False, True]
    assert sorted(len(ids) for ids in fakes.delivered) == [1, 1, 1]  # each good job alone


async def test_close_cancels_the_waiting_jobs() -> None:
    c, _clock, fakes = collector()

    async def never(event: asyncio.Event, seconds: float) -> None:
        await asyncio.Event().wait()

    c._wait = never
    pending = asyncio.ensure_future(c.submit(job(1, 5_000)))
    await asyncio.sleep(0)
    await c.close()
    with pytest.raises(asyncio.CancelledError):
        await pending
    assert fakes.proved == []
