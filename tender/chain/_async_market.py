"""The async twin of :class:`~tender.chain.Market`: the same methods, awaitable.

One model, two faces (the way httpx pairs ``Client`` and ``AsyncClient``): :class:`AsyncMarket` holds
a :class:`Market` and runs each call in a worker thread. The sync wrapper is thread-safe (one nonce
manager per key and chain), so concurrent awaits are safe; a change to ``Market`` shows in mypy here.
``tests/chain`` checks that every public method of ``Market`` has its twin.
"""

from __future__ import annotations

from tender.chain._market import Market
from tender.chain._tx import TxSender, forwarded
from tender.intents import AuctionType

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

    job_id = forwarded(Market.job_id)
    hash_intent = forwarded(Market.hash_intent)
    post = forwarded(Market.post)
    submit_signed = forwarded(Market.submit_signed)
    invalidate_nonces = forwarded(Market.invalidate_nonces)
    nonce_bitmap = forwarded(Market.nonce_bitmap)
    terms = forwarded(Market.terms)
    remember = forwarded(Market.remember)
    forget = forwarded(Market.forget)
    bid_fn = forwarded(Market.bid_fn)
    award_fn = forwarded(Market.award_fn)
    refund_fn = forwarded(Market.refund_fn)
    bid = forwarded(Market.bid)
    award = forwarded(Market.award)
    best_bid = forwarded(Market.best_bid)
    runner_up = forwarded(Market.runner_up)
    score_of = forwarded(Market.score_of)
    clearing_price = forwarded(Market.clearing_price)
    fill = forwarded(Market.fill)
    current_price = forwarded(Market.current_price)
    deliver = forwarded(Market.deliver)
    challenge = forwarded(Market.challenge)
    prove = forwarded(Market.prove)
    finalize = forwarded(Market.finalize)
    expire = forwarded(Market.expire)
    refund = forwarded(Market.refund)
    draw_audit = forwarded(Market.draw_audit)
    decline = forwarded(Market.decline)
    release_declined = forwarded(Market.release_declined)
    owed = forwarded(Market.owed)
    withdraw = forwarded(Market.withdraw)
    withdrawn_in = forwarded(Market.withdrawn_in)
    covered_by_credit = forwarded(Market.covered_by_credit)
    ensure_funding = forwarded(Market.ensure_funding)
    set_params = forwarded(Market.set_params)
    apply_params = forwarded(Market.apply_params)
    pending_params = forwarded(Market.pending_params)
    set_treasury = forwarded(Market.set_treasury)
    withdraw_fees = forwarded(Market.withdraw_fees)
    pause = forwarded(Market.pause)
    unpause = forwarded(Market.unpause)
    job = forwarded(Market.job)
    provider_deadline = forwarded(Market.provider_deadline)
    output_of = forwarded(Market.output_of)
    is_nonce_used = forwarded(Market.is_nonce_used)
    escrow_for = forwarded(Market.escrow_for)
    params = forwarded(Market.params)
    dispute_terms = forwarded(Market.dispute_terms)
    domain_separator = forwarded(Market.domain_separator)
    auction_type = forwarded(Market.auction_type)
    token = forwarded(Market.token)
    registry = forwarded(Market.registry)
    staking = forwarded(Market.staking)
    treasury = forwarded(Market.treasury)
    fees_owed = forwarded(Market.fees_owed)
