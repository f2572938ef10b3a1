"""Micro-batching: concurrent single requests for one model run as one batch.

A :class:`MicroBatcher` gathers requests until ``max_batch`` are waiting or the first has
waited ``max_wait_ms``, concatenates them along the batch axis, runs them once and hands each
caller its own row. Requests that arrive while a batch runs wait for the next one, so under
load batches fill without waiting at all. Models without a dynamic batch dimension are run
one request at a time (``max_batch = 1``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tender.batching import Batcher, Waiting

RunBatch = Callable[[NDArray[Any]], Awaitable[NDArray[Any]]]


class MicroBatcher(Batcher[NDArray[Any], NDArray[Any]]):
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
        super().__init__(max_batch=max_batch, max_wait=max_wait_ms / 1000.0, name="micro-batcher")
        self._run = run
        self._on_batch = on_batch

    async def run_alone(self, item: NDArray[Any]) -> NDArray[Any]:
        started = time.perf_counter()
        out = await self._run(item)
        if self._on_batch:
            self._on_batch(1, time.perf_counter() - started)
        return out

    async def run(self, batch: list[Waiting[NDArray[Any], NDArray[Any]]]) -> None:
        try:
            rows = batch[0].item if len(batch) == 1 else np.concatenate([w.item for w in batch], axis=0)
            started = time.perf_counter()
            out = await self._run(rows)
            seconds = time.perf_counter() - started
        except asyncio.CancelledError:
            for w in batch:
                w.future.cancel()
            raise
        except Exception as exc:  # handed to every caller of the failed batch
            for w in batch:
                w.fail(exc)
            return
        if self._on_batch:
            self._on_batch(len(batch), seconds)
        offset = 0
        for w in batch:
            n = w.item.shape[0]
            w.succeed(out[offset : offset + n])
            offset += n
