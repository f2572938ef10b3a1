"""Micro-batching: concurrent single requests for one model run as one batch.

A :class:`MicroBatcher` gathers requests until ``max_batch`` are waiting or the first has
waited ``max_wait_ms``, concatenates them along the batch axis, runs them once and hands each
caller its own row. Requests that arrive while a batch runs wait for the next one, so under
load batches fill without waiting at all. Models without a dynamic batch dimension are run
one request at a time (``max_batch = 1``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tender.daemon import stop_task

RunBatch = Callable[[NDArray[Any]], Awaitable[NDArray[Any]]]


@dataclass(slots=True)
class _Pending:
    row: NDArray[Any]
    future: asyncio.Future[NDArray[Any]] = field(repr=False)


class MicroBatcher:
    """Batch concurrent requests for one model.

    Args:
        run: runs a batch (leading batch dimension) and returns one output row per input row.
        max_batch: most requests in one batch; 1 disables batching.
        max_wait_ms: longest a batch that is not full waits for more requests.
        on_batch: called with each batch's size and run seconds (metrics, pricing).

    Example::

        batcher = MicroBatcher(lambda b: backend.infer("mlp", b), max_batch=32, max_wait_ms=2)
        row = await batcher.submit(np.zeros((1, 64), np.float32))
    """

    def __init__(
        self,
        run: RunBatch,
        *,
        max_batch: int = 32,
        max_wait_ms: float = 2.0,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        self._run = run
        self.max_batch = max(1, max_batch)
        self.max_wait = max(0.0, max_wait_ms) / 1000.0
        self._on_batch = on_batch
        self._pending: deque[_Pending] = deque()
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        return len(self._pending)

    async def submit(self, row: NDArray[Any]) -> NDArray[Any]:
        """Run one request (shape ``(1, ...)``) and return its output (shape ``(1, ...)``)."""
        if self.max_batch == 1:
            started = time.perf_counter()
            out = await self._run(row)
            if self._on_batch:
                self._on_batch(1, time.perf_counter() - started)
            return out
        loop = asyncio.get_running_loop()
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._loop(), name="micro-batcher")
        future: asyncio.Future[NDArray[Any]] = loop.create_future()
        self._pending.append(_Pending(row, future))
        self._arrived.set()
        if len(self._pending) >= self.max_batch:
            self._full.set()
        return await future

    async def _take(self) -> list[_Pending]:
        while not self._pending:
            self._arrived.clear()
            await self._arrived.wait()
        if len(self._pending) < self.max_batch and self.max_wait > 0:
            self._full.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.max_wait):
                    await self._full.wait()
        count = min(len(self._pending), self.max_batch)
        return [self._pending.popleft() for _ in range(count)]

    async def _loop(self) -> None:
        while True:
            live = [p for p in await self._take() if not p.future.done()]
            if not live:
                continue
            try:
                rows = live[0].row if len(live) == 1 else np.concatenate([p.row for p in live], axis=0)
                started = time.perf_counter()
                out = await self._run(rows)
                seconds = time.perf_counter() - started
            except asyncio.CancelledError:
                for p in live:
                    if not p.future.done():
                        p.future.cancel()
                raise
            except Exception as exc:  # handed to every caller of the failed batch
                for p in live:
                    if not p.future.done():
                        p.future.set_exception(exc)
                continue
            if self._on_batch:
                self._on_batch(len(live), seconds)
            offset = 0
            for p in live:
                n = p.row.shape[0]
                if not p.future.done():
                    p.future.set_result(out[offset : offset + n])
                offset += n

    async def close(self) -> None:
        """Stop the batching task; requests still waiting are cancelled."""
        await stop_task(self._worker)
        self._worker = None
        while self._pending:
            self._pending.popleft().future.cancel()
