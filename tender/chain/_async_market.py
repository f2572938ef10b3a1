"""The async twin of :class:`~tender.chain.Market`: the same methods, awaitable.

One model, two faces (the way httpx pairs ``Client`` and ``AsyncClient``): :class:`AsyncMarket` holds
a :class:`Market` and runs each call in a worker thread. The sync wrapper is thread-safe (one nonce
manager per key and chain), so concurrent awaits are safe; a change to ``Market`` shows in mypy here.
``tests/chain`` checks that every public method of ``Market`` has its twin.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from web3.types import TxReceipt

from tender.chain._jobs import Job
from tender.chain._market import Market
from tender.chain._structs import DisputeTerms, MarketParams
from tender.chain._tx import TxSender
from tender.intents import AuctionType, Bid, Intent

__all__ = ["AsyncMarket"]


class AsyncMarket:
    """``await market.award(job_id)``: :class:`Market`, awaitable. ``sync`` is the wrapped market."""

    def __init__(self, market: Market) -> None:
        self.sync = market

    def __repr__(self) -> str:
        return f"Async{self.sync!r}"

    def using(self, sender: TxSender) -> AsyncMarket:
        """The same market, sending from ``sender``'s account."""
        return AsyncMarket(self.sync.using(sender))

    @property
    def address(self) -> str:
        return self.sync.address

    @property
    def auction(self) -> AuctionType:
        return self.sync.auction

    @property
    def chain_id(self) -> int:
        return self.sync.chain_id

    async def job_id(self, intent: Intent) -> bytes:
        """The job id of ``intent`` on this market, computed locally (no RPC)."""
        return await asyncio.to_thread(self.sync.job_id, intent)

    async def hash_intent(self, intent: Intent) -> bytes:
        """The job id as the contract computes it (``hashIntent``)."""
        return await asyncio.to_thread(self.sync.hash_intent, intent)

    async def post(self, intent: Intent) -> TxReceipt:
        """Post an intent from its requester (the sender), escrowing ``max_price`` plus the fee"""
        return await asyncio.to_thread(self.sync.post, intent)

    async def submit_signed(self, intent: Intent, signature: bytes) -> TxReceipt:
        """Post an intent signed off-chain by its requester (anyone may relay it); the escrow is"""
        return await asyncio.to_thread(self.sync.submit_signed, intent, signature)

    async def invalidate_nonces(self, word: int, mask: int) -> TxReceipt:
        """Burn the sender's nonces whose bits are set in ``mask`` within bitmap ``word``."""
        return await asyncio.to_thread(self.sync.invalidate_nonces, word, mask)

    async def nonce_bitmap(self, owner: str, word: int) -> int:
        """The bitmap word ``word`` of ``owner``'s used nonces."""
        return await asyncio.to_thread(self.sync.nonce_bitmap, owner, word)

    async def bid(self, job_id: bytes, bid: Bid) -> TxReceipt:
        """Offer ``bid`` on a reverse-auction job (sender: the provider or its solver)."""
        return await asyncio.to_thread(self.sync.bid, job_id, bid)

    async def award(self, job_id: bytes) -> TxReceipt:
        """Close a reverse auction after its window: the best bid wins at the second-score price."""
        return await asyncio.to_thread(self.sync.award, job_id)

    async def best_bid(self, job_id: bytes) -> Bid:
        """``Market.best_bid``."""
        return await asyncio.to_thread(self.sync.best_bid, job_id)

    async def runner_up(self, job_id: bytes) -> Bid:
        """``Market.runner_up``."""
        return await asyncio.to_thread(self.sync.runner_up, job_id)

    async def score_of(self, job_id: bytes, price: int, latency: int) -> int:
        """A bid's score for the job (lower wins; 0 if the job is unknown)."""
        return await asyncio.to_thread(self.sync.score_of, job_id, price, latency)

    async def clearing_price(self, job_id: bytes) -> int:
        """The price the current best bid would be paid if awarded now."""
        return await asyncio.to_thread(self.sync.clearing_price, job_id)

    async def fill(self, job_id: bytes, provider: str, latency: int) -> TxReceipt:
        """Take a Dutch-auction job at the current price for ``provider`` (sender: it or its solver)."""
        return await asyncio.to_thread(self.sync.fill, job_id, provider, latency)

    async def current_price(self, job_id: bytes) -> int:
        """A Dutch job's price at the latest block (``maxPrice`` after the window)."""
        return await asyncio.to_thread(self.sync.current_price, job_id)

    async def deliver(self, job_id: bytes, output: Sequence[int], proof: bytes = b"") -> TxReceipt:
        """Hand in the output (field elements) and, in zk mode, the proof (zk: settles now)."""
        return await asyncio.to_thread(self.sync.deliver, job_id, output, proof)

    async def challenge(self, job_id: bytes) -> TxReceipt:
        """Dispute an optimistic delivery (the challenge bond is taken from the sender's credit"""
        return await asyncio.to_thread(self.sync.challenge, job_id)

    async def prove(self, job_id: bytes, proof: bytes) -> TxReceipt:
        """Answer a challenge or audit with a proof; the job settles."""
        return await asyncio.to_thread(self.sync.prove, job_id, proof)

    async def finalize(self, job_id: bytes) -> TxReceipt:
        """Settle an unchallenged optimistic delivery once its window has closed."""
        return await asyncio.to_thread(self.sync.finalize, job_id)

    async def expire(self, job_id: bytes) -> TxReceipt:
        """Time out a job past its provider's deadline, or a dispute left unproven."""
        return await asyncio.to_thread(self.sync.expire, job_id)

    async def refund(self, job_id: bytes) -> TxReceipt:
        """Credit the escrow of a job that was never awarded back to its requester."""
        return await asyncio.to_thread(self.sync.refund, job_id)

    async def draw_audit(self, job_id: bytes) -> TxReceipt:
        """Draw whether an optimistic delivery is audited, from the hash of the block after it"""
        return await asyncio.to_thread(self.sync.draw_audit, job_id)

    async def decline(self, job_id: bytes) -> TxReceipt:
        """Give back an awarded job without penalty (the provider or its solver, within the"""
        return await asyncio.to_thread(self.sync.decline, job_id)

    async def release_declined(self, job_id: bytes, provider: str) -> TxReceipt:
        """Free the stake a declined job locked, once its provider deadline has passed (anyone)."""
        return await asyncio.to_thread(self.sync.release_declined, job_id, provider)

    async def owed(self, account: str) -> int:
        """What the market owes ``account`` (payments, refunds, compensation, bonds and rewards), which"""
        return await asyncio.to_thread(self.sync.owed, account)

    async def withdraw(self) -> TxReceipt:
        """Pay the sender everything the market owes it (works while the market is paused)."""
        return await asyncio.to_thread(self.sync.withdraw)

    async def withdrawn_in(self, receipt: TxReceipt) -> int:
        """What this market's ``Withdrawn`` events in ``receipt`` paid out."""
        return await asyncio.to_thread(self.sync.withdrawn_in, receipt)

    async def covered_by_credit(self, account: str, amount: int) -> bool:
        """Whether the market takes ``amount`` (an escrow, a bond) from ``account``'s credit:"""
        return await asyncio.to_thread(self.sync.covered_by_credit, account, amount)

    async def ensure_funding(self, amount: int) -> TxReceipt | None:
        """Make sure the market can take ``amount`` from the sender: nothing to do when the"""
        return await asyncio.to_thread(self.sync.ensure_funding, amount)

    async def set_params(self, params: MarketParams) -> TxReceipt:
        """Schedule ``params``: they apply after the market's delay, through :meth:`apply_params`,"""
        return await asyncio.to_thread(self.sync.set_params, params)

    async def apply_params(self) -> TxReceipt:
        """Apply the scheduled parameters once their time has come (anyone)."""
        return await asyncio.to_thread(self.sync.apply_params)

    async def pending_params(self) -> tuple[MarketParams, int] | None:
        """The scheduled parameters and when they may be applied; ``None`` when none are."""
        return await asyncio.to_thread(self.sync.pending_params)

    async def set_treasury(self, treasury: str) -> TxReceipt:
        """``Market.set_treasury``."""
        return await asyncio.to_thread(self.sync.set_treasury, treasury)

    async def withdraw_fees(self) -> TxReceipt:
        """Pay the fees accrued by settlements to the treasury (anyone may send it)."""
        return await asyncio.to_thread(self.sync.withdraw_fees)

    async def pause(self) -> TxReceipt:
        """``Market.pause``."""
        return await asyncio.to_thread(self.sync.pause)

    async def unpause(self) -> TxReceipt:
        """``Market.unpause``."""
        return await asyncio.to_thread(self.sync.unpause)

    async def job(self, job_id: bytes) -> Job:
        """The job's record (``state`` is ``JobState.NONE`` for an unknown id)."""
        return await asyncio.to_thread(self.sync.job, job_id)

    async def provider_deadline(self, job_id: bytes) -> int:
        """min(deadline, awardedAt + latency); 0 while not awarded."""
        return await asyncio.to_thread(self.sync.provider_deadline, job_id)

    async def output_of(self, job_id: bytes) -> tuple[int, ...]:
        """The stored output of an optimistic delivery (empty for zk jobs)."""
        return await asyncio.to_thread(self.sync.output_of, job_id)

    async def is_nonce_used(self, owner: str, nonce: int) -> bool:
        """``Market.is_nonce_used``."""
        return await asyncio.to_thread(self.sync.is_nonce_used, owner, nonce)

    async def escrow_for(self, max_price: int) -> int:
        """What ``post`` escrows from the requester for ``max_price`` (the fee included)."""
        return await asyncio.to_thread(self.sync.escrow_for, max_price)

    async def params(self) -> MarketParams:
        """The parameters new jobs are posted with."""
        return await asyncio.to_thread(self.sync.params)

    async def dispute_terms(self, job_id: bytes) -> DisputeTerms:
        """The dispute terms an optimistic job was posted with (all zero for a zk job)."""
        return await asyncio.to_thread(self.sync.dispute_terms, job_id)

    async def domain_separator(self) -> bytes:
        """``Market.domain_separator``."""
        return await asyncio.to_thread(self.sync.domain_separator)

    async def auction_type(self) -> AuctionType:
        """``Market.auction_type``."""
        return await asyncio.to_thread(self.sync.auction_type)

    async def token(self) -> str:
        """``Market.token``."""
        return await asyncio.to_thread(self.sync.token)

    async def registry(self) -> str:
        """``Market.registry``."""
        return await asyncio.to_thread(self.sync.registry)

    async def staking(self) -> str:
        """``Market.staking``."""
        return await asyncio.to_thread(self.sync.staking)

    async def treasury(self) -> str:
        """``Market.treasury``."""
        return await asyncio.to_thread(self.sync.treasury)

    async def fees_owed(self) -> int:
        """Fees accrued by settlements and not yet paid to the treasury."""
        return await asyncio.to_thread(self.sync.fees_owed)
