"""Proving off the event loop: a process pool sized to the machine.

EZKL proving is CPU-heavy and holds the GIL for long stretches, so proofs run in separate
processes (``spawn``: no forked threads from uvicorn or onnxruntime). The event loop keeps
answering ``/health`` and quotes while they run; the queue depth feeds the quoted latency.

Proofs are background work: the workers run at a lower CPU priority (:data:`WORKER_NICE`), so
on a busy machine the real-time path (quotes, the quote market's output and commitment, the
node's chain reads) goes first and proofs take the cycles left over. Their latency is
promised from the measured proving time with slack (``provider._pricing``), and they use every
idle cycle as before. On a machine shared with other busy work they would starve: set
``provider.proving_nice = 0`` there. ``provider.proving_idle`` goes further on Linux: the
workers run under ``SCHED_IDLE`` and get only the cycles nothing else asks for (a nice-10 worker
still takes about a tenth of a core from a busy one), for a node whose machine serves it alone.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, TypeVar

from provider._errors import ProvingError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ProofResult:
    """What a proving worker returns: the output as field elements (the public instances the
    market checks), the proof bytes, and the circuit's output rescaled to floats."""

    output_felts: list[str]
    proof: bytes
    output: list[float]
    seconds: float


ProveFn = Callable[[str, Any], ProofResult]
#: ``witness(bundle_dir, data)``: the output felts of ``data`` without a proof (an optimistic
#: delivery needs only them; the proof is made when a challenge or an audit asks for it).
WitnessFn = Callable[[str, Any], list[str]]


def prove_with_bundle(bundle_dir: str, data: Any) -> ProofResult:
    """Worker entry point: prove ``data`` with the bundle at ``bundle_dir`` (``tender.models.prove``)."""
    from tender.models import prove

    started = time.perf_counter()
    proof = prove(bundle_dir, data)
    return ProofResult(
        output_felts=[str(int(x)) for x in proof.output_felts],
        proof=bytes(proof.proof),
        output=[float(x) for x in proof.output],
        seconds=time.perf_counter() - started,
    )


def witness_with_bundle(bundle_dir: str, data: Any) -> list[str]:
    """The circuit's output felts of ``data`` (EZKL's witness, ~10 ms; no proof), as decimal strings:
    the same numbers a proof's public instances carry."""
    from tender.models import ModelError, output_felts

    try:
        return [str(v) for v in output_felts(bundle_dir, data)]
    except ModelError as exc:
        raise ProvingError(f"witness of the model in {bundle_dir} failed: {exc}") from exc


#: The niceness the proving workers add to their own by default (``provider.proving_nice``;
#: Unix; 0 keeps the node's priority).
WORKER_NICE = 10


def _lower_priority(increment: int, idle: bool = False) -> None:
    """Worker initializer: add ``increment`` to the process's niceness (where the OS has it) and,
    with ``idle``, move it to ``SCHED_IDLE`` (Linux; elsewhere the niceness alone)."""
    import os

    if increment > 0 and hasattr(os, "nice"):
        os.nice(increment)
    if idle and hasattr(os, "SCHED_IDLE"):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def _warm_worker() -> int:
    """Import the prover in a worker, so the first real proof does not pay for it."""
    import os

    import tender.models  # noqa: F401

    return os.getpid()


class ProvingPool:
    """A process pool for proofs, dispatched earliest deadline first.

    At most ``workers`` proofs are in the process pool at once; the others wait in a heap
    ordered by their job's deadline, so a proof promised for soon is never stuck behind one
    promised for later that merely arrived first (a quote-market proof started before its
    award, a calibration proof). Calibration proofs (``track=False``) wait behind every job.

    Args:
        workers: processes (proofs in parallel).
        prove: the picklable, module-level function each worker runs.
        nice: the niceness each worker adds to its own (background work; 0: the node's).
        idle: run the workers under ``SCHED_IDLE`` (Linux): only the cycles nothing else wants.
    """

    def __init__(
        self, workers: int, *, prove: ProveFn = prove_with_bundle, nice: int = WORKER_NICE, idle: bool = False
    ) -> None:
        self.workers = max(1, workers)
        self.nice, self.idle = nice, idle
        self._prove = prove
        self._pool = self._new_pool()
        self.in_flight = 0
        self._since: dict[int, float] = {}  # tracked proofs in flight -> when they were asked for
        self._models: dict[int, str] = {}  # every proof in flight (calibration too) -> its model
        self._ticket = 0
        self._running = 0
        self._waiting: list[tuple[float, int, asyncio.Future[None]]] = []  # (deadline, ticket, turn)

    def oldest_age_s(self) -> float:
        """Seconds the oldest tracked proof in flight (queued or running) has been waiting (0: none)."""
        return time.monotonic() - min(self._since.values()) if self._since else 0.0

    @property
    def queued(self) -> int:
        """Proofs waiting for a worker (beyond the ones running)."""
        return max(0, self.in_flight - self.workers)

    def backlog(self) -> list[str]:
        """The model of every proof queued or running (calibration proofs included): the work a
        new job's proof may wait behind."""
        return list(self._models.values())

    async def prove(
        self, bundle_dir: str, data: Any, *, track: bool = True, deadline: float = math.inf, model: str = ""
    ) -> ProofResult:
        """Prove ``data`` in a worker once the proofs with earlier ``deadline`` s (unix seconds)
        have had theirs; ``track=False`` keeps it out of :attr:`in_flight` (calibration)."""
        return await self.run(self._prove, bundle_dir, data, track=track, deadline=deadline, model=model)

    async def run(
        self,
        fn: Callable[[str, Any], T],
        bundle_dir: str,
        data: Any,
        *,
        track: bool = True,
        deadline: float = math.inf,
        model: str = "",
    ) -> T:
        """:meth:`prove` with another picklable, module-level worker function ``fn`` (a batch
        proof: ``provider._batch_proofs.prove_batch_rows``), in the same queue."""
        self.in_flight += track
        self._ticket += 1
        ticket = self._ticket
        self._models[ticket] = model
        if track:
            self._since[ticket] = time.monotonic()
        try:
            await self._turn(deadline if track else math.inf, ticket)
            try:
                return await asyncio.get_running_loop().run_in_executor(self._pool, fn, bundle_dir, data)
            finally:
                self._release()
        except BrokenProcessPool as exc:
            self._pool = self._new_pool()
            raise ProvingError(f"proving worker died: {exc}") from exc
        finally:
            self.in_flight -= track
            self._since.pop(ticket, None)
            self._models.pop(ticket, None)

    async def _turn(self, deadline: float, ticket: int) -> None:
        """Wait until a worker is ours: at once if one is free and nobody waits, else by deadline."""
        if self._running < self.workers and not self._waiting:
            self._running += 1
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (deadline, ticket, turn))
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._release()  # granted as we were cancelled: hand the worker on
            else:
                self._waiting = [w for w in self._waiting if w[1] != ticket]
                heapq.heapify(self._waiting)
            raise

    def _release(self) -> None:
        """A worker is free: give it to the waiting proof with the earliest deadline."""
        self._running -= 1
        while self._waiting and self._running < self.workers:
            _, _, turn = heapq.heappop(self._waiting)
            if not turn.done():
                self._running += 1
                turn.set_result(None)

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_lower_priority,
            initargs=(self.nice, self.idle),
        )

    async def warm(self) -> None:
        """Start every worker process and import the prover in it."""
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self._pool, _warm_worker) for _ in range(self.workers)))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


#: the bundles a witness worker has loaded, by folder (one process's)
_WITNESS_BUNDLES: dict[str, Any] = {}


def witness_in_worker(bundle_dir: str, row: Any) -> list[int]:
    """Witness worker entry point: ``tender.models.output_felts`` with the bundle loaded once
    per worker process."""
    from tender.models import Bundle, output_felts

    bundle = _WITNESS_BUNDLES.get(bundle_dir)
    if bundle is None:
        bundle = _WITNESS_BUNDLES[bundle_dir] = Bundle.load(bundle_dir)
    return output_felts(bundle, row)


class WitnessWorker:
    """One process, at the node's priority, for the quote market's witnesses (a quoted job's
    output as its proof will carry it, ~10 ms each).

    EZKL holds the GIL for the whole witness: in a thread it would stop the event loop for as
    long, with the quote just signed still to be sent and the ``/rfq/run`` it is computed for
    arriving meanwhile. In its own process it runs beside them, on another core. The process
    starts on first use (:meth:`felts` from the node's warm-up); a worker that died is
    replaced, and that witness is made in a thread.
    """

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    async def felts(self, bundle_dir: str, row: Any) -> list[int]:
        """``row``'s output felts with the bundle at ``bundle_dir`` (``tender.models`` errors as
        they are raised there: ``ProofError``, ``InputError``)."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor(), witness_in_worker, bundle_dir, row)
        except BrokenProcessPool:
            self._pool = None
            return await asyncio.to_thread(witness_in_worker, bundle_dir, row)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
