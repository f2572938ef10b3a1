"""Batched proofs on the quote market: one EZKL proof settles up to ``N`` jobs (``deliverBatch``).

A model entry with a ``batch_bundle`` (``tender model build --batch N``, registered as its own
model) serves that batch model's id too. Its quote-market jobs are not proved one by one: once
awarded (the ``QuoteAwarded`` the quote path already waits for) each goes to the model's
:class:`BatchCollector`, which proves them together when

- ``N`` are waiting (a full batch), or
- the time limit is reached: the oldest has waited ``batch_wait_s``, or the earliest provider
  deadline (``terms.due``) leaves no more than the batch's proving time (the highest recent
  measurement times ``pricing.latency_slack``, plus the proofs queued ahead of it) and the
  delivery headroom (the delivery transaction's inclusion, ``max(pricing.delivery_s, measured)``,
  plus ``health.rpc_margin_s``) before it (:class:`BatchPolicy`).

A job that arrives with no time to wait (its deadline is already within that) flushes the
batch at once: it is proved with the jobs waiting then, or alone when none is. So waiting for
others never makes a job late: it only spends the slack its quote left. The missing slots are
padded with zero inputs (``prove_batch``); a padding slot is ``PADDING_JOB`` (nobody's job) with
terms carrying only the commitment it was proved on, and the market settles nothing for it.

One ``deliverBatch`` sends the proof. A job the market skips (``BatchJobSkipped``: expired,
settled already, terms or input mismatch, late) is reported; the others settle. A batch whose
transaction reverts as a whole (its proof refused, nothing settled) is split: each job is proved
and delivered alone, so one bad job never blocks the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from provider._errors import ProviderError
from tender.chain import PADDING_JOB, BatchSkip
from tender.errors import ContractRevert, TenderError
from tender.logs import log
from tender.quotes import QuotedJob

if TYPE_CHECKING:
    from provider._node import ProviderNode, ServedModel
    from tender.chain import AsyncQuoteMarket

__all__ = [
    "BatchCollector",
    "BatchJob",
    "BatchJobFailed",
    "BatchPolicy",
    "BatchProved",
    "BatchSettled",
    "prove_batch_rows",
]

logger = logging.getLogger("provider.batch")

_ZERO_ADDRESS = "0x" + "00" * 20


class BatchJobFailed(ProviderError):
    """A job of a batch was not settled: the market skipped it, or its proof or delivery failed
    even alone (``reason`` says which)."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class BatchJob:
    """An awarded quote-market job waiting for its batch.

    Attributes:
        job_id: the job (32 bytes).
        terms: its terms as ``QuoteAwarded`` logged them (what ``deliverBatch`` passes back).
        row: its input, as the model takes it.
    """

    job_id: bytes
    terms: QuotedJob
    row: Any = field(repr=False)

    @property
    def due(self) -> int:
        """Its provider deadline (chain seconds): ``deliverBatch`` skips it past this."""
        return self.terms.due


@dataclass(frozen=True, slots=True)
class BatchSettled:
    """Where a job was settled: the ``deliverBatch`` transaction, its slot and the batch's jobs."""

    tx: str
    slot: int
    jobs: int


@dataclass(frozen=True, slots=True)
class BatchProved:
    """What a proving worker returns for a batch: the proof, every slot's instances (padding
    included, as decimal strings) and the seconds it took."""

    proof: bytes
    instances: list[str]
    seconds: float


def prove_batch_rows(bundle_dir: str, rows: Any) -> BatchProved:
    """Worker entry point: prove up to ``N`` inputs with the batch bundle at ``bundle_dir``
    (``tender.models.prove_batch``; missing slots are padded with zeros)."""
    from tender.models import prove_batch

    proof = prove_batch(bundle_dir, rows)
    return BatchProved(proof.proof, [str(v) for v in proof.instances], proof.prove_s)


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """When a model's waiting jobs are proved (pure: the clock is passed in).

    Args:
        size: ``N``, the batch bundle's slots.
        max_wait_s: the longest the oldest waiting job waits for others (``batch_wait_s``).
    """

    size: int
    max_wait_s: float

    def latest_start(self, due: float, *, prove_s: float, headroom_s: float) -> float:
        """The last moment a proof for a job due at ``due`` may start and still be delivered."""
        return due - prove_s - headroom_s

    def flush_at(self, waiting: Sequence[tuple[float, float]], *, prove_s: float, headroom_s: float) -> float:
        """When to prove the ``waiting`` jobs (``(since, due)`` each, clock seconds) if no more come:
        the oldest's ``max_wait_s``, or the earliest due's latest start, whichever is first."""
        oldest = min(since for since, _ in waiting)
        earliest = min(due for _, due in waiting)
        return min(
            oldest + self.max_wait_s, self.latest_start(earliest, prove_s=prove_s, headroom_s=headroom_s)
        )

    def ready(
        self, waiting: Sequence[tuple[float, float]], now: float, *, prove_s: float, headroom_s: float
    ) -> bool:
        """Whether to prove now: ``N`` are waiting, or the time limit is reached."""
        if not waiting:
            return False
        if len(waiting) >= self.size:
            return True
        return now >= self.flush_at(waiting, prove_s=prove_s, headroom_s=headroom_s)

    def can_wait(self, due: float, now: float, *, prove_s: float, headroom_s: float) -> bool:
        """Whether a job due at ``due`` may wait at all (else its batch is proved at once)."""
        return now < self.latest_start(due, prove_s=prove_s, headroom_s=headroom_s)

    def reason(
        self, waiting: Sequence[tuple[float, float]], now: float, *, prove_s: float, headroom_s: float
    ) -> str:
        """Why a batch is proved now (logs): ``full``, ``deadline`` (a job cannot wait longer) or
        ``wait_limit`` (the oldest waited ``max_wait_s``)."""
        if len(waiting) >= self.size:
            return "full"
        if any(not self.can_wait(due, now, prove_s=prove_s, headroom_s=headroom_s) for _, due in waiting):
            return "deadline"
        return "wait_limit"

    def take(self, jobs: Sequence[BatchJob]) -> list[BatchJob]:
        """The jobs of the next batch: up to ``N``, earliest due first."""
        return sorted(jobs, key=lambda j: j.due)[: self.size]


#: ``prove(rows, due)``: one proof of up to ``N`` rows, for jobs the earliest of which is due at
#: ``due`` (clock seconds: its place in the node's earliest-deadline-first proving queue).
ProveBatch = Callable[[list[Any], float], Awaitable[BatchProved]]
#: ``deliver(jobs, proved)``: one ``deliverBatch`` of ``jobs`` in slots 0.. (padding after);
#: returns the transaction hash, the settled slots and the skipped ones with their reason.
DeliverBatch = Callable[[list[BatchJob], BatchProved], Awaitable[tuple[str, list[int], dict[int, BatchSkip]]]]


async def _wait_event(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), max(0.0, seconds))


@dataclass(slots=True)
class _Waiting:
    job: BatchJob
    since: float
    done: asyncio.Future[BatchSettled]


class BatchCollector:
    """Collects one batch model's awarded jobs and settles them ``N`` per proof.

    Args:
        policy: when to prove.
        prove: proves up to ``N`` rows in one proof (the node's proving pool).
        deliver: sends one ``deliverBatch``.
        prove_s: seconds to reserve for one batch proof (measured, with slack and the queue ahead).
        headroom_s: seconds to reserve after the proof (the delivery transaction's inclusion).
        clock: now, in the seconds the jobs' ``due`` use (chain time).
        wait: ``wait(event, seconds)``: until ``event`` is set or ``seconds`` passed (tests pass a
            fake that moves their fake clock).
        name: the model (logs).

    Example::

        collector = BatchCollector(BatchPolicy(4, 30.0), prove=..., deliver=..., prove_s=...,
                                   headroom_s=..., clock=node.clock.now)
        settled = await collector.submit(BatchJob(job_id, terms, row))   # BatchSettled
    """

    def __init__(
        self,
        policy: BatchPolicy,
        *,
        prove: ProveBatch,
        deliver: DeliverBatch,
        prove_s: Callable[[], float],
        headroom_s: Callable[[], float],
        clock: Callable[[], float],
        wait: Callable[[asyncio.Event, float], Awaitable[None]] = _wait_event,
        name: str = "",
    ) -> None:
        self.policy = policy
        self._prove = prove
        self._deliver = deliver
        self._prove_s = prove_s
        self._headroom_s = headroom_s
        self._clock = clock
        self._wait = wait
        self.name = name
        self._waiting: list[_Waiting] = []
        self._wake = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None
        self._batches: set[asyncio.Task[None]] = set()
        #: sizes of the batches sent (the jobs in each ``deliverBatch``), oldest first
        self.sent: list[int] = []

    @property
    def waiting(self) -> int:
        """Jobs waiting for their batch."""
        return len(self._waiting)

    async def submit(self, job: BatchJob) -> BatchSettled:
        """Wait for ``job``'s batch to be proved and delivered: where it settled.

        Raises:
            BatchJobFailed: the market skipped it, or it could not be proved or delivered alone.
        """
        done: asyncio.Future[BatchSettled] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(job, self._clock(), done))
        if self._loop is None or self._loop.done():
            self._loop = asyncio.get_running_loop().create_task(self._collect(), name=f"batch-{self.name}")
        self._wake.set()
        return await asyncio.shield(done)

    async def _collect(self) -> None:
        while self._waiting:
            now = self._clock()
            prove_s, headroom_s = self._prove_s(), self._headroom_s()
            waiting = [(w.since, float(w.job.due)) for w in self._waiting]
            if self.policy.ready(waiting, now, prove_s=prove_s, headroom_s=headroom_s):
                chosen = {id(j) for j in self.policy.take([w.job for w in self._waiting])}
                taken = [w for w in self._waiting if id(w.job) in chosen]
                self._waiting = [w for w in self._waiting if id(w.job) not in chosen]
                taken.sort(key=lambda w: w.job.due)
                reason = self.policy.reason(waiting, now, prove_s=prove_s, headroom_s=headroom_s)
                self._start(taken, reason)
                continue
            self._wake.clear()
            at = self.policy.flush_at(waiting, prove_s=prove_s, headroom_s=headroom_s)
            await self._wait(self._wake, at - now)

    def _start(self, taken: list[_Waiting], reason: str) -> None:
        log(
            logger,
            "batch.flush",
            model=self.name,
            jobs=len(taken),
            size=self.policy.size,
            reason=reason,
            job_ids=["0x" + w.job.job_id.hex() for w in taken],
        )
        task = asyncio.get_running_loop().create_task(self._settle(taken), name=f"batch-{self.name}-settle")
        self._batches.add(task)
        task.add_done_callback(self._batches.discard)

    async def _settle(self, taken: list[_Waiting]) -> None:
        jobs = [w.job for w in taken]
        try:
            proved = await self._prove([j.row for j in jobs], float(min(j.due for j in jobs)))
            tx, settled, skipped = await self._deliver(jobs, proved)
        except (TenderError, OSError) as exc:
            if len(taken) > 1 and not _hopeless(exc):
                # one proof for all failed (a revert: the proof refused, nothing settled): each alone
                log(
                    logger,
                    "batch.split",
                    level=logging.WARNING,
                    model=self.name,
                    jobs=len(taken),
                    error=repr(exc),
                )
                await asyncio.gather(*(self._settle([w]) for w in taken))
                return
            for w in taken:
                _fail(
                    w.done, BatchJobFailed(f"job 0x{w.job.job_id.hex()} not settled: {exc}", reason="failed")
                )
            return
        self.sent.append(len(jobs))
        for slot, w in enumerate(taken):
            if slot in settled:
                if not w.done.done():
                    w.done.set_result(BatchSettled(tx=tx, slot=slot, jobs=len(jobs)))
                continue
            why = skipped.get(slot)
            name = why.name.lower() if why is not None else "not_settled"
            log(
                logger,
                "batch.job_skipped",
                level=logging.ERROR,
                model=self.name,
                job_id="0x" + w.job.job_id.hex(),
                slot=slot,
                reason=name,
                tx=tx,
            )
            _fail(
                w.done, BatchJobFailed(f"the market skipped job 0x{w.job.job_id.hex()}: {name}", reason=name)
            )

    async def close(self) -> None:
        """Stop collecting; the jobs still waiting fail (the node is stopping)."""
        tasks = [t for t in [self._loop, *self._batches] if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for w in self._waiting:
            w.done.cancel()
        self._waiting.clear()


def _fail(done: asyncio.Future[BatchSettled], exc: BaseException) -> None:
    if not done.done():
        done.set_exception(exc)


def _hopeless(exc: BaseException) -> bool:
    """Errors that proving the jobs one by one would not cure."""
    return isinstance(exc, ContractRevert) and exc.name in {"NotABatchModel", "BatchShapeMismatch"}


# -- the node's glue -------------------------------------------------------------------------


def padding_terms(model_id: bytes, commitment: int) -> QuotedJob:
    """A padding slot's terms: nobody's job, only the commitment its slot was proved on."""
    return QuotedJob(
        requester=_ZERO_ADDRESS,
        provider=_ZERO_ADDRESS,
        model_id=model_id,
        input_commitment=commitment,
        price=0,
        stake_locked=0,
        awarded_at=0,
        due=0,
        fee_bps=0,
        layout=0,
    )


def batch_calldata(
    card: Any, model_id: bytes, jobs: Sequence[BatchJob], proved: BatchProved
) -> tuple[list[bytes], list[QuotedJob], list[list[int]]]:
    """``deliverBatch``'s job ids, terms and outputs: ``jobs`` in slots 0.., padding after."""
    from tender.models import job_of

    instances = [int(v) for v in proved.instances]
    job_ids: list[bytes] = []
    terms: list[QuotedJob] = []
    outputs: list[list[int]] = []
    for slot in range(card.batch):
        part = job_of(card, proved.proof, instances, slot)
        outputs.append(list(part.output_felts))
        if slot < len(jobs):
            job_ids.append(jobs[slot].job_id)
            terms.append(jobs[slot].terms)
        else:
            job_ids.append(PADDING_JOB)
            terms.append(padding_terms(model_id, part.input_commitment))
    return job_ids, terms, outputs


def collector_for(
    node: ProviderNode, served: ServedModel, market: Callable[[], AsyncQuoteMarket]
) -> BatchCollector:
    """The :class:`BatchCollector` of ``served`` (a batch model) on ``node``: proofs in the
    node's pool, deliveries from the node's account on the quote market."""
    from provider._pricing import start_after
    from tender.models import Bundle

    assert served.bundle is not None
    bundle = Bundle.load(served.bundle.path)
    card = bundle.card
    key = served.key
    config = node.config

    def prove_s() -> float:
        measured = key in node.pricer.proof_s
        single = node.pricer.proof_estimate(served.entry.name) * card.batch
        seconds = node.pricer.proof_estimate(key) if measured else single
        ahead = start_after(node.proofs_ahead(), node.pricer.workers)
        return seconds * config.pricing.latency_slack + ahead

    def headroom_s() -> float:
        delivery = max(config.pricing.delivery_s, node.pricer.delivery_s.high)
        return delivery + config.health.rpc_margin_s

    async def prove(rows: list[Any], due: float) -> BatchProved:
        assert node.pool is not None
        node.metrics.proving_queue.inc()
        deadline = time.time() + (due - node.clock.now())  # the pool orders by unix seconds
        try:
            proved = await node.pool.run(
                prove_batch_rows,
                str(served.bundle.path if served.bundle else ""),
                rows,
                deadline=deadline,
                model=key,
            )
        finally:
            node.metrics.proving_queue.dec()
        node.metrics.proof.labels(key).observe(proved.seconds)
        node.pricer.observe(key, proof_s=proved.seconds)
        return proved

    async def deliver(
        jobs: list[BatchJob], proved: BatchProved
    ) -> tuple[str, list[int], dict[int, BatchSkip]]:
        quote_market = market()
        model_id = jobs[0].terms.model_id
        job_ids, terms, outputs = batch_calldata(card, model_id, jobs, proved)
        started = time.perf_counter()
        receipt = await quote_market.deliver_batch(model_id, job_ids, terms, outputs, proved.proof)
        node.pricer.observe_delivery(time.perf_counter() - started)
        settled, skipped = await quote_market.batch_outcome(receipt)
        tx = "0x" + bytes(receipt["transactionHash"]).hex()
        log(
            logger,
            "batch.delivered",
            model=key,
            jobs=len(jobs),
            size=card.batch,
            settled=len(settled),
            skipped=len(skipped),
            gas=int(receipt["gasUsed"]),
            proof_s=round(proved.seconds, 3),
            tx=tx,
        )
        return tx, settled, skipped

    entry = served.entry
    return BatchCollector(
        BatchPolicy(card.batch, entry.batch_wait_s),
        prove=prove,
        deliver=deliver,
        prove_s=prove_s,
        headroom_s=headroom_s,
        clock=lambda: float(node.clock.now()),
        name=key,
    )


def batch_model(served: ServedModel, registered: Sequence[tuple[str, str, str]]) -> ServedModel:
    """The batch model of ``served``'s entry (``batch_bundle``), checked once at start-up: a batch
    bundle (``N`` > 1) of the same per-job model (its input size), found in the registry by its
    card's hashes unless ``batch_model_id`` names it.

    Raises:
        ConfigError: the bundle cannot be read, is not a batch bundle or takes other inputs.
    """
    from dataclasses import replace

    from provider._bundles import load_bundle_info
    from tender.errors import ConfigError

    entry = served.entry
    assert entry.batch_bundle is not None
    field_name = f"provider.models.{entry.name}.batch_bundle"
    try:
        info = load_bundle_info(entry.batch_bundle)
    except TenderError as exc:
        raise ConfigError(f"{field_name}: {exc}") from exc
    card = info.card
    if card.batch < 2:
        raise ConfigError(
            f"{field_name}: {entry.batch_bundle} proves one job per proof (build it with --batch N)"
        )
    size = math.prod(served.spec.input.single_shape())
    if card.input_size != size:
        raise ConfigError(
            f"{field_name}: its jobs take {card.input_size} values, model {entry.name} takes {size}"
        )
    if entry.batch_model_id is not None:
        model_ids = [entry.batch_model_id.lower()]
    else:
        model_ids = [
            mid
            for mid, onnx, settings in registered
            if onnx == info.onnx_sha256 and settings == info.settings_sha256
        ]
    batch = replace(served, bundle=info, model_ids=model_ids, batch=card.batch)
    log(
        logger,
        "model.served",
        model=batch.key,
        model_ids=model_ids,
        batch=card.batch,
        wait_s=entry.batch_wait_s,
    )
    if not model_ids:
        log(
            logger, "model.unregistered", level=logging.WARNING, model=batch.key, onnx_sha256=info.onnx_sha256
        )
    return batch


async def calibrate(node: ProviderNode, served: ServedModel) -> float:
    """Time one batch proof of zero inputs (behind every job), so the first time limits use a
    proving time measured on this machine; the seconds it took."""
    assert node.pool is not None
    assert served.bundle is not None
    import numpy as np

    zeros = np.zeros(served.spec.input.single_shape(), dtype=served.spec.input.dtype).tolist()
    proved = await node.pool.run(
        prove_batch_rows, str(served.bundle.path), [zeros], track=False, model=served.key
    )
    node.pricer.observe(served.key, proof_s=proved.seconds)
    return proved.seconds


def promise_s(served: ServedModel, latency_s: int) -> int:
    """A batch job's promised latency: the priced one (its batch's proof) plus the longest it may
    wait for its batch."""
    return latency_s + math.ceil(served.entry.batch_wait_s)
