"""Following the chain's logs, reorg-safe, resumable.

:class:`LogFeed` reads the logs of some contracts block range by block range, ``confirmations``
blocks behind the head, and hands each batch to a handler *inside the store transaction that
advances the cursor*: either the events and the new cursor are stored together, or neither is.
A restarted solver therefore resumes exactly after the last block it processed.

Reorgs: the feed remembers the hashes of the last ``reorg_depth`` blocks it processed. Before
each step it checks that its cursor block still has the stored hash; if not, it walks back to
the highest block whose hash still matches (the fork point), calls ``Store.rollback(fork)`` so
that every intent, award or settlement learnt from the dropped blocks is forgotten, tells the
solver which jobs were touched, and reads the new chain from the fork on. Within a step it also
checks that the fetched headers chain together and that every log's ``blockHash`` is the
header's; a reorg in the middle of a step just retries it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from hexbytes import HexBytes
from web3 import AsyncWeb3

from solver._errors import FeedError
from solver._metrics import FEED_BLOCK, REORGS
from solver._store import Store
from tender.logs import log

__all__ = ["LogFeed"]

logger = logging.getLogger("solver.feed")

#: ``handler(logs)`` stores what the logs mean (it runs inside the store transaction).
Handler = Callable[[list[Any]], None]
#: ``on_rollback(fork, job_ids)`` is told which jobs a reorg touched (after the rollback).
RollbackHandler = Callable[[int, list[str]], None]


class _Retry(Exception):
    """The chain moved under one step (a reorg in flight): run the step again."""


def _hex(value: Any) -> str:
    return HexBytes(value).to_0x_hex()


class LogFeed:
    """Follows ``addresses``' logs with ``topics`` into ``store``.

    Args:
        w3: an async web3.
        store: where the cursor, block hashes and events go.
        addresses: contracts to follow.
        topics: topic0 values to follow (``None``: all).
        handler: stores a batch of logs (inside the cursor's transaction).
        on_rollback: told the fork point and the touched jobs after a reorg.
        confirmations: blocks behind the head to stay.
        reorg_depth: block hashes remembered.
        start_block: where a fresh store starts.
        chunk: blocks per ``eth_getLogs``.
    """

    def __init__(
        self,
        w3: AsyncWeb3[Any],
        store: Store,
        *,
        addresses: Sequence[str],
        topics: Sequence[bytes] | None,
        handler: Handler,
        on_rollback: RollbackHandler | None = None,
        confirmations: int = 0,
        reorg_depth: int = 64,
        start_block: int = 0,
        chunk: int = 2_000,
    ) -> None:
        self.w3 = w3
        self.store = store
        self.addresses = [AsyncWeb3.to_checksum_address(a) for a in addresses]
        self.topics = [_hex(t) for t in topics] if topics else None
        self.handler = handler
        self.on_rollback = on_rollback
        self.confirmations = confirmations
        self.reorg_depth = reorg_depth
        self.start_block = start_block
        self.chunk = chunk
        self.head = 0

    @property
    def cursor(self) -> int:
        cursor = self.store.cursor
        return self.start_block - 1 if cursor is None else cursor

    async def step(self) -> int:
        """Process the next range of blocks; returns how many blocks were processed."""
        for _ in range(5):
            try:
                return await self._step()
            except _Retry:
                await asyncio.sleep(0.05)
        raise FeedError("the chain kept reorganising under the feed")

    async def run(self, *, poll_interval: float, stopping: asyncio.Event) -> None:
        """Step forever (until ``stopping``), sleeping when caught up."""
        while not stopping.is_set():
            processed = await self.step()
            if processed == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), poll_interval)

    async def _hash_of(self, number: int) -> tuple[str, str]:
        block = await self.w3.eth.get_block(number)
        return _hex(block["hash"]), _hex(block["parentHash"])

    async def _check_reorg(self) -> None:
        cursor = self.cursor
        stored = self.store.block_hash(cursor)
        if stored is None:
            return
        try:
            current, _ = await self._hash_of(cursor)
        except Exception as exc:
            log(logger, "feed.cursor_block_missing", level=logging.DEBUG, error=repr(exc))
            current = ""
        if current == stored:
            return
        fork = await self._find_fork()
        touched = self.store.rollback(fork)
        REORGS.inc()
        log(logger, "feed.reorg", level=logging.WARNING, fork=fork, from_block=cursor, jobs=len(touched))
        if self.on_rollback is not None:
            self.on_rollback(fork, touched)

    async def _find_fork(self) -> int:
        remembered = self.store.recent_blocks()
        for number, stored in remembered:
            try:
                current, _ = await self._hash_of(number)
            except Exception:
                continue
            if current == stored:
                return number
        if remembered and remembered[-1][0] <= self.start_block:
            return self.start_block - 1
        raise FeedError(
            f"reorg deeper than the {len(remembered)} remembered blocks: raise solver.reorg_depth "
            "or solver.confirmations"
        )

    async def _step(self) -> int:
        await self._check_reorg()
        self.head = await self.w3.eth.block_number
        target = self.head - self.confirmations
        first = self.cursor + 1
        if target < first:
            return 0
        last = min(target, first + self.chunk - 1)
        # Headers of the blocks recent enough to be reorged; older ones are final for us.
        low = max(first, target - self.reorg_depth + 1)
        numbers = list(range(low, last + 1))
        headers = await asyncio.gather(*(self._hash_of(n) for n in numbers))
        hashes = {n: h for n, (h, _) in zip(numbers, headers, strict=True)}
        previous = self.store.block_hash(low - 1)
        for n, (_, parent) in zip(numbers, headers, strict=True):
            expected = hashes.get(n - 1, previous if n == low else None)
            if expected is not None and parent != expected:
                raise _Retry
        params: dict[str, Any] = {"fromBlock": first, "toBlock": last, "address": self.addresses}
        if self.topics:
            params["topics"] = [self.topics]
        logs = await self.w3.eth.get_logs(params)  # type: ignore[arg-type]
        for entry in logs:
            known = hashes.get(int(entry["blockNumber"]))
            if known is not None and _hex(entry["blockHash"]) != known:
                raise _Retry
        logs = sorted(logs, key=lambda e: (int(e["blockNumber"]), int(e["logIndex"])))
        with self.store.transaction():
            self.handler(list(logs))
            self.store.advance(last, hashes, keep=self.reorg_depth)
        FEED_BLOCK.set(last)
        return last - first + 1
