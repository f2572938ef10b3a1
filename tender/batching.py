"""Batching of concurrent submissions: up to ``max_batch`` at once, or what came while the first waited.

A :class:`Batcher` gathers what callers :meth:`~Batcher.submit` until ``max_batch`` are waiting
or the first has waited ``max_wait`` seconds, then hands them to :meth:`~Batcher.run` as one
batch; submissions that arrive while a batch runs wait for the next one, so under load batches
fill without waiting at all. With ``max_batch = 1`` each submission runs alone
(:meth:`~Batcher.run_alone`), with no task in between. A subclass says what a batch is: the
provider's micro-batcher runs model inputs together, the SDK's award batcher sends awards in
one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from tender.daemon import stop_task

__all__ = ["Batcher", "Waiting"]

T = TypeVar("T")
R = TypeVar("R")


@dataclass(slots=True)
class Waiting(Generic[T, R]):
    """One submission in a batch: what was submitted and the future its caller awaits."""

    item: T
    future: asyncio.Future[R] = field(repr=False)

    def fail(self, exc: BaseException) -> None:
        """Hand ``exc`` to the caller (unless it gave up waiting)."""
        if not self.future.done():
            self.future.set_exception(exc)

    def succeed(self, result: R) -> None:
        """Hand ``result`` to the caller (unless it gave up waiting)."""
        if not self.future.done():
            self.future.set_result(result)


class Batcher(ABC, Generic[T, R]):
    """Run concurrent submissions in batches.

    Args:
        max_batch: most submissions in one batch; 1 runs each alone.
        max_wait: longest (seconds) the first waiting submission waits for more.
        name: the batching task's name.
    """

    def __init__(self, *, max_batch: int, max_wait: float, name: str = "batcher") -> None:
        self.max_batch = max(1, max_batch)
        self.max_wait = max(0.0, max_wait)
        self._name = name
        self._pending: deque[Waiting[T, R]] = deque()
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._bound: asyncio.AbstractEventLoop | None = None

    @property
    def waiting(self) -> int:
        return len(self._pending)

    @abstractmethod
    async def run(self, batch: list[Waiting[T, R]]) -> None:
        """Run one batch (none of its callers has given up) and settle each one's future."""

    @abstractmethod
    async def run_alone(self, item: T) -> R:
        """Run one submission by itself (``max_batch = 1``)."""

    def wait_for(self) -> float:
        """How long the first waiting submission may wait for more (``<= 0``: not at all)."""
        return self.max_wait

    async def submit(self, item: T) -> R:
        """Run ``item`` in a batch with what is waiting now; its result."""
        if self.max_batch == 1:
            return await self.run_alone(item)
        loop = asyncio.get_running_loop()
        if loop is not self._bound:  # used from another event loop (asyncio.run again)
            self._bound, self._worker, self._pending = loop, None, deque()
            self._arrived, self._full = asyncio.Event(), asyncio.Event()
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._loop(), name=self._name)
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append(Waiting(item, future))
        self._arrived.set()
        if len(self._pending) >= self.max_batch:
            self._full.set()
        return await future

    async def _take(self) -> list[Waiting[T, R]]:
        while not self._pending:
            self._arrived.clear()
            await self._arrived.wait()
        wait = self.wait_for()
        if len(self._pending) < self.max_batch and wait > 0:
            self._full.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._full.wait()
        count = min(len(self._pending), self.max_batch)
        return [self._pending.popleft() for _ in range(count)]

    async def _loop(self) -> None:
        while True:
            live = [w for w in await self._take() if not w.future.done()]
            if live:
                await self.run(live)

    async def close(self) -> None:
        """Stop the batching task; submissions still waiting are cancelled."""
        await stop_task(self._worker)
        self._worker = None
        while self._pending:
            self._pending.popleft().future.cancel()
