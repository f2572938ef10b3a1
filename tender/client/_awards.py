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
import time
from typing import Any, NamedTuple

from tender.batching import Batcher, Waiting
from tender.chain import QuoteMarket
from tender.errors import ContractRevert
from tender.intents import Intent
from tender.quotes import Quote

__all__ = ["EXPIRY_MARGIN_S", "AwardBatcher"]

#: a batch is sent at the latest this many seconds before its earliest quote expires (the
#: provider relays the award itself 5 s before: ``provider._rfq.RELAY_MARGIN_S``)
EXPIRY_MARGIN_S = 8


class _Award(NamedTuple):
    """One award to send: ``open_awarded``'s arguments."""

    intent: Intent
    quote: Quote
    signature: bytes


class AwardBatcher(Batcher[_Award, Any]):
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
        super().__init__(max_batch=min(max_batch, 256), max_wait=max_wait_s, name="award-batcher")
        self.market = market

    async def award(self, intent: Intent, quote: Quote, quote_signature: bytes) -> Any:
        """Award ``intent`` to ``quote`` (in a batch with the awards waiting now); the receipt of
        the transaction that carried it, with its ``QuoteAwarded`` unless the chain skipped it."""
        return await self.submit(_Award(intent, quote, quote_signature))

    def wait_for(self) -> float:
        # never so long that a quote nears its expiry (when its provider relays the award itself)
        earliest = min(w.item.quote.expiry for w in self._pending)
        return min(self.max_wait, earliest - time.time() - EXPIRY_MARGIN_S)

    async def run_alone(self, item: _Award) -> Any:
        return await asyncio.to_thread(self.market.open_awarded, *item)

    async def run(self, batch: list[Waiting[_Award, Any]]) -> None:
        if len(batch) == 1:
            await self._send_alone(batch[0])
            return
        try:
            receipt = await asyncio.to_thread(
                self.market.open_awarded_batch,
                [w.item.intent for w in batch],
                [w.item.quote for w in batch],
                [w.item.signature for w in batch],
            )
        except ContractRevert:
            # an entry the contract refuses outright (or none left to award): each alone
            for waiting in batch:
                await self._send_alone(waiting)
            return
        except Exception as exc:  # handed to every caller of the failed batch
            for waiting in batch:
                waiting.fail(exc)
            return
        for waiting in batch:
            waiting.succeed(receipt)

    async def _send_alone(self, waiting: Waiting[_Award, Any]) -> None:
        try:
            receipt = await self.run_alone(waiting.item)
        except Exception as exc:  # handed to the caller, as a single award raises
            waiting.fail(exc)
            return
        waiting.succeed(receipt)
