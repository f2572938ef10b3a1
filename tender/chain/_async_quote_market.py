"""The async twin of :class:`~tender.chain.QuoteMarket` (see :class:`~tender.chain.AsyncMarket`):
each call runs in a worker thread; ``tests/chain`` checks every public method has its twin."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from web3.types import TxReceipt

from tender.chain._async_market import AsyncMarket
from tender.chain._jobs import JobState
from tender.chain._quote_market import BatchSkip, QuoteMarket
from tender.chain._tx import TxSender
from tender.intents import Intent
from tender.quotes import Quote, QuotedJob

__all__ = ["AsyncQuoteMarket"]


class AsyncQuoteMarket(AsyncMarket):
    """``await market.open_awarded(intent, quote, signature)``: :class:`QuoteMarket`, awaitable."""

    sync: QuoteMarket

    def __init__(self, market: QuoteMarket) -> None:
        super().__init__(market)

    def using(self, sender: TxSender) -> AsyncQuoteMarket:
        """The same market, sending from ``sender``'s account."""
        return AsyncQuoteMarket(self.sync.using(sender))

    def quote_digest(self, quote: Quote) -> bytes:
        """What the provider signs (local, no RPC: not awaitable)."""
        return self.sync.quote_digest(quote)

    def commitment_digest(self, job_id: bytes, output_hash: bytes) -> bytes:
        """What a result commitment signs (local, no RPC: not awaitable)."""
        return self.sync.commitment_digest(job_id, output_hash)

    async def hash_quote(self, quote: Quote) -> bytes:
        return await asyncio.to_thread(self.sync.hash_quote, quote)

    async def hash_commitment(self, job_id: bytes, output_hash: bytes) -> bytes:
        return await asyncio.to_thread(self.sync.hash_commitment, job_id, output_hash)

    async def open_awarded(
        self, intent: Intent, quote: Quote, quote_signature: bytes, acceptance: bytes = b""
    ) -> TxReceipt:
        """Open ``intent`` and award it to ``quote.provider`` in one transaction."""
        return await asyncio.to_thread(self.sync.open_awarded, intent, quote, quote_signature, acceptance)

    async def deliver_quoted(
        self, job_id: bytes, terms: QuotedJob, output: Sequence[int], proof: bytes
    ) -> TxReceipt:
        """Hand in the output with its proof; settles at once."""
        return await asyncio.to_thread(self.sync.deliver_quoted, job_id, terms, output, proof)

    async def deliver_batch(
        self,
        model_id: bytes,
        job_ids: Sequence[bytes],
        terms: Sequence[QuotedJob],
        outputs: Sequence[Sequence[int]],
        proof: bytes,
    ) -> TxReceipt:
        """Settle up to ``batchSize`` jobs of one batch model with one proof."""
        return await asyncio.to_thread(self.sync.deliver_batch, model_id, job_ids, terms, outputs, proof)

    async def batch_outcome(self, receipt: TxReceipt) -> tuple[list[int], dict[int, BatchSkip]]:
        """The settled slots and the skipped ones (decoded locally)."""
        return self.sync.batch_outcome(receipt)

    async def expire_quoted(self, job_id: bytes, terms: QuotedJob) -> TxReceipt:
        return await asyncio.to_thread(self.sync.expire_quoted, job_id, terms)

    async def slash_commitment(
        self, job_id: bytes, terms: QuotedJob, delivered_hash: bytes, committed_hash: bytes, signature: bytes
    ) -> TxReceipt:
        return await asyncio.to_thread(
            self.sync.slash_commitment, job_id, terms, delivered_hash, committed_hash, signature
        )

    async def job_state(self, job_id: bytes) -> JobState:
        return await asyncio.to_thread(self.sync.job_state, job_id)

    async def terms_in(self, receipt: TxReceipt) -> QuotedJob:
        """The terms of the job an ``open_awarded`` receipt awarded (decoded locally)."""
        return self.sync.terms_in(receipt)

    async def is_nonce_used(self, owner: str, nonce: int) -> bool:
        return await asyncio.to_thread(self.sync.is_nonce_used, owner, nonce)
