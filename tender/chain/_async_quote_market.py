"""The async twin of :class:`~tender.chain.QuoteMarket` (see :class:`~tender.chain.AsyncMarket`):
each call runs in a worker thread; ``tests/chain`` checks every public method has its twin."""

from __future__ import annotations

from web3.types import TxReceipt

from tender.chain._async_market import AsyncMarket
from tender.chain._quote_market import AwardSkip, BatchSkip, QuoteMarket
from tender.chain._tx import TxSender, forwarded
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

    hash_quote = forwarded(QuoteMarket.hash_quote)
    hash_commitment = forwarded(QuoteMarket.hash_commitment)
    open_awarded = forwarded(QuoteMarket.open_awarded)
    open_awarded_batch = forwarded(QuoteMarket.open_awarded_batch)

    async def award_outcome(self, receipt: TxReceipt) -> tuple[dict[int, QuotedJob], dict[int, AwardSkip]]:
        """The awarded entries' terms and the skipped ones (decoded locally)."""
        return self.sync.award_outcome(receipt)

    deliver_quoted = forwarded(QuoteMarket.deliver_quoted)
    deliver_batch = forwarded(QuoteMarket.deliver_batch)

    async def batch_outcome(self, receipt: TxReceipt) -> tuple[list[int], dict[int, BatchSkip]]:
        """The settled slots and the skipped ones (decoded locally)."""
        return self.sync.batch_outcome(receipt)

    expire_quoted = forwarded(QuoteMarket.expire_quoted)
    slash_commitment = forwarded(QuoteMarket.slash_commitment)
    job_state = forwarded(QuoteMarket.job_state)

    async def terms_in(self, receipt: TxReceipt) -> QuotedJob:
        """The terms of the job an ``open_awarded`` receipt awarded (decoded locally)."""
        return self.sync.terms_in(receipt)
