"""Awards of concurrent quote rounds sent as one ``openAwardedBatch``.

A client that runs many quote rounds at once (an agent fanning out queries) awards each job in
its own ``openAwarded`` transaction by default: ~121k gas each, most of it the base fee, the
escrow transfer and cold reads that every award pays again. An :class:`AwardBatcher` gathers
the awards that are ready until ``max_batch`` wait or the first has waited ``max_wait_s``,
and sends them as one ``openAwardedBatch`` (one base fee, one escrow pull, one stake check per
provider: ~60k per job at 16). The wait is spent after the provisional result is in the
caller's hands (the award is off the time to result), and never past
:data:`EXPIRY_MARGIN_S` before the earliest waiting quote expires.

An entry the chain skips (``BatchAwardSkipped``: expired, nonce used, too little stake or
escrow by inclusion) gets the batch receipt without its ``QuoteAwarded``, as a failed single
award would leave no ``QuoteAwarded``; a batch that reverts as a whole (an entry the contract
refuses outright) is retried entry by entry, so one bad entry only costs itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from tender.chain import QuoteMarket
from tender.daemon import stop_task
from tender.errors import ContractRevert
from tender.intents import Intent
from tender.quotes import Quote

__all__ = ["EXPIRY_MARGIN_S", "AwardBatcher"]

#: a batch is sent at the latest this many seconds before its earliest quote expires (the
#: provider relays the award itself 5 s before: ``provider._rfq.RELAY_MARGIN_S``)
EXPIRY_MARGIN_S = 8


@dataclass(slots=True)
class _Entry:
    intent: Intent
    quote: Quote
    signature: bytes
    future: asyncio.Future[Any] = field(repr=False)


class AwardBatcher:
    """Send the awards of concurrent quote rounds on one market as ``openAwardedBatch``.

    Args:
        market: the quote market, sending from the requester's account (the entries carry no
            acceptance: the sender is every entry's requester).
        max_batch: most awards in one transaction (1: each alone, by ``openAwarded``).
        max_wait_s: longest the first waiting award waits for more.

    Example::

        batcher = AwardBatcher(market, max_batch=16, max_wait_s=0.25)
        receipt = await batcher.award(intent, quote, quote_signature)
    """

    def __init__(self, market: QuoteMarket, *, max_batch: int = 16, max_wait_s: float = 0.25) -> None:
        self.market = market
        self.max_batch = max(1, min(max_batch, 256))
        self.max_wait = max(0.0, max_wait_s)
        self._pending: deque[_Entry] = deque()
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._bound: asyncio.AbstractEventLoop | None = None

    async def award(self, intent: Intent, quote: Quote, quote_signature: bytes) -> Any:
        """Award ``intent`` to ``quote`` (in a batch with the awards waiting now); the receipt of
        the transaction that carried it, with its ``QuoteAwarded`` unless the chain skipped it."""
        if self.max_batch == 1:
            return await asyncio.to_thread(self.market.open_awarded, intent, quote, quote_signature)
        loop = asyncio.get_running_loop()
        if loop is not self._bound:  # a client used from another event loop (asyncio.run again)
            self._bound, self._worker, self._pending = loop, None, deque()
            self._arrived, self._full = asyncio.Event(), asyncio.Event()
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._loop(), name="award-batcher")
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append(_Entry(intent, quote, quote_signature, future))
        self._arrived.set()
        if len(self._pending) >= self.max_batch:
            self._full.set()
        return await future

    async def _take(self) -> list[_Entry]:
        while not self._pending:
            self._arrived.clear()
            await self._arrived.wait()
        # never so long that a quote nears its expiry (when its provider relays the award itself)
        wait = min(self.max_wait, min(e.quote.expiry for e in self._pending) - time.time() - EXPIRY_MARGIN_S)
        if len(self._pending) < self.max_batch and wait > 0:
            self._full.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._full.wait()
        count = min(len(self._pending), self.max_batch)
        return [self._pending.popleft() for _ in range(count)]

    async def _loop(self) -> None:
        while True:
            live = [e for e in await self._take() if not e.future.done()]
            if len(live) == 1:
                await self._send_alone(live[0])
            elif live:
                await self._send_batch(live)

    async def _send_batch(self, entries: list[_Entry]) -> None:
        market = self.market
        try:
            receipt = await asyncio.to_thread(
                market.open_awarded_batch,
                [e.intent for e in entries],
                [e.quote for e in entries],
                [e.signature for e in entries],
            )
        except ContractRevert:
            # an entry the contract refuses outright (or none left to award): each alone
            for entry in entries:
                await self._send_alone(entry)
            return
        except Exception as exc:  # handed to every caller of the failed batch
            for entry in entries:
                if not entry.future.done():
                    entry.future.set_exception(exc)
            return
        for entry in entries:
            if not entry.future.done():
                entry.future.set_result(receipt)

    async def _send_alone(self, entry: _Entry) -> None:
        try:
            receipt = await asyncio.to_thread(
                self.market.open_awarded, entry.intent, entry.quote, entry.signature
            )
        except Exception as exc:  # handed to the caller, as a single award raises
            if not entry.future.done():
                entry.future.set_exception(exc)
            return
        if not entry.future.done():
            entry.future.set_result(receipt)

    async def close(self) -> None:
        """Stop the batching task; awards still waiting are cancelled."""
        await stop_task(self._worker)
        self._worker = None
        while self._pending:
            self._pending.popleft().future.cancel()
