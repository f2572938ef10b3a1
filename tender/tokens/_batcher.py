"""Micro-batching across requests: requests that arrive together are generated stepped together.

The batcher gathers requests for up to ``max_wait_ms`` (or until ``max_batch``), runs them as one
batch (:meth:`TokenModel.steps`) in a worker thread and streams each caller its own tokens as
they are made. One batch runs at a time; requests that arrive meanwhile form the next one.

Example::

    batcher = TokenBatcher(model, max_batch=16, max_wait_ms=5)
    async for token in batcher.stream(request):
        ...
    await batcher.close()
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from tender.tokens._model import Generation, TokenModel, TokenRequest

__all__ = ["TokenBatcher"]

_END = object()


@dataclass(slots=True)
class _Waiting:
    request: TokenRequest
    queue: asyncio.Queue[object] = field(default_factory=asyncio.Queue)


class TokenBatcher:
    """Streams each request's tokens while stepping the requests that arrived together as one batch."""

    def __init__(self, model: TokenModel, *, max_batch: int = 16, max_wait_ms: float = 5.0) -> None:
        self.model = model
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000
        self.batches: list[int] = []  # the size of every batch run, in order (metrics, tests)
        self._pending: list[_Waiting] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def stream(self, request: TokenRequest) -> AsyncIterator[int]:
        """The request's tokens, as they are made."""
        waiting = _Waiting(request)
        self._pending.append(waiting)
        self._wake.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        while True:
            item = await waiting.queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, int)
            yield item

    async def generate(self, request: TokenRequest) -> Generation:
        tokens = [token async for token in self.stream(request)]
        return Generation(
            request, tuple(tokens), "eos" if tokens[-1] == self.model.eos_token_id else "budget"
        )

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            if len(self._pending) < self.max_batch:
                await asyncio.sleep(self.max_wait_s)
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            if not self._pending:
                self._wake.clear()
            if not batch:
                continue
            self.batches.append(len(batch))
            await asyncio.to_thread(self._step, batch, loop)

    def _step(self, batch: list[_Waiting], loop: asyncio.AbstractEventLoop) -> None:
        made = [0] * len(batch)
        try:
            for row, token in self.model.steps([w.request for w in batch]):
                made[row] += 1
                queue = batch[row].queue
                loop.call_soon_threadsafe(queue.put_nowait, token)
                if token == self.model.eos_token_id or made[row] == batch[row].request.max_tokens:
                    loop.call_soon_threadsafe(queue.put_nowait, _END)
        except Exception as error:  # handed to every caller of the batch, raised there
            for waiting in batch:
                loop.call_soon_threadsafe(waiting.queue.put_nowait, error)
