"""The bidding policy: a pure function from what the solver knows to what it should do.

Nothing here touches the network or the clock: :func:`decide` takes the intent's terms, the
verified quotes, the solver's costs and the auction's state, and returns a :class:`BidAction`,
a :class:`FillAction` or a :class:`Pass`. That keeps the money rules testable on their own
(``tests/solver/test_policy.py`` checks them with hypothesis):

* a bid or fill is never above the intent's ``maxPrice``;
* it is never below cost, where cost is the provider's quoted price plus the gas the solver
  spends on the job, and a margin is added on top;
* for the same quotes, a larger ``priceWeightBps`` never picks a dearer bid.

The reverse auction pays the second score, so bidding one's true floor (cost + margin) is the
dominant strategy: a higher bid only risks losing without raising the payment. The solver
therefore bids its floor with the quote that scores best under the intent's own weights, and
passes when that floor does not strictly beat the standing best bid. In a Dutch auction the
price is the market's; the solver fills as soon as the current price covers the floor of some
quote, choosing among the covered quotes the one with the best score at that price (the
fastest, since the price is the same for all).

Scores follow ``ReverseAuctionMarket``::

    score = w * price * maxLatency + (10000 - w) * latency * maxPrice     (lower is better)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tender.intents import MAX_BOOK_LATENCY, AuctionType

__all__ = [
    "Action",
    "AuctionState",
    "BidAction",
    "Economics",
    "FillAction",
    "Offer",
    "Pass",
    "Terms",
    "decide",
    "floor_price",
    "score",
]

BPS = 10_000


@dataclass(frozen=True, slots=True)
class Offer:
    """A provider's verified quote: it does the job for ``price`` within ``latency_s``."""

    provider: str
    price: int
    latency_s: int
    expires_at: int = 2**63


@dataclass(frozen=True, slots=True)
class Terms:
    """The parts of an intent the policy needs."""

    auction_type: AuctionType
    max_price: int
    price_weight_bps: int
    max_latency: int


@dataclass(frozen=True, slots=True)
class Economics:
    """What serving a job costs the solver and what it wants on top.

    Attributes:
        gas_cost: the gas of the solver's own transactions for one job (bid and award, or
            fill), already converted to token base units.
        margin_bps: the margin in basis points of the cost.
        min_margin: the smallest margin in token base units.
        latency_buffer_s: seconds added to a provider's quoted latency before promising it.
    """

    gas_cost: int
    margin_bps: int = 0
    min_margin: int = 0
    latency_buffer_s: int = 0


@dataclass(frozen=True, slots=True)
class AuctionState:
    """What the chain says now: the standing best bid (reverse) or the current price (Dutch)."""

    now: int
    best_price: int | None = None
    best_latency: int | None = None
    current_price: int | None = None


@dataclass(frozen=True, slots=True)
class OfferAction:
    """Take ``offer``: ``provider`` does the job for ``price`` within ``latency`` (costing ``cost``)."""

    provider: str
    price: int
    latency: int
    cost: int
    offer: Offer

    def pursuit(self) -> dict[str, Any]:
        """What the solver's store records of the action."""
        return {"provider": self.provider, "price": self.price, "latency": self.latency, "cost": self.cost}


@dataclass(frozen=True, slots=True)
class BidAction(OfferAction):
    """Bid ``price`` and ``latency`` for ``provider`` (reverse auction)."""


@dataclass(frozen=True, slots=True)
class FillAction(OfferAction):
    """Fill the Dutch auction now for ``provider`` at ``price`` (the current price)."""


@dataclass(frozen=True, slots=True)
class Pass:
    """Do nothing; ``wait_for_price`` is the lowest price that would make a fill worth it."""

    reason: str
    wait_for_price: int | None = None


Action = BidAction | FillAction | Pass


def score(price: int, latency: int, *, terms: Terms) -> int:
    """The market's score of a bid for ``terms`` (lower is better)."""
    w = terms.price_weight_bps
    return w * price * terms.max_latency + (BPS - w) * latency * terms.max_price


def floor_price(offer: Offer, econ: Economics) -> tuple[int, int]:
    """``(cost, floor)``: cost is quote + gas; floor adds the margin (rounded up)."""
    cost = offer.price + econ.gas_cost
    margin = max(econ.min_margin, -(-cost * econ.margin_bps // BPS))
    return cost, cost + margin


def decide(terms: Terms, offers: Sequence[Offer], econ: Economics, state: AuctionState) -> Action:
    """The solver's move for one job.

    Args:
        terms: the intent's price cap, weights and latency bound.
        offers: verified quotes; expired ones are ignored.
        econ: the solver's gas cost and margin.
        state: the standing best bid (reverse) or the current price (Dutch).

    Returns:
        A :class:`BidAction`, a :class:`FillAction` or a :class:`Pass` saying why.
    """
    candidates: list[tuple[int, int, int, Offer]] = []  # (floor, cost, latency, offer)
    for offer in offers:
        if offer.expires_at <= state.now or offer.price < 0 or offer.latency_s <= 0:
            continue
        latency = offer.latency_s + econ.latency_buffer_s
        if latency > terms.max_latency:
            continue
        if terms.auction_type == AuctionType.REVERSE and latency > MAX_BOOK_LATENCY:
            continue  # a bid book word holds 15 bits of latency, whatever the deadline
        cost, floor = floor_price(offer, econ)
        if floor > terms.max_price:
            continue
        candidates.append((floor, cost, latency, offer))
    if not candidates:
        return Pass("no quote covers cost and margin within the price and latency caps")
    if terms.auction_type == AuctionType.DUTCH:
        return _dutch(terms, candidates, state)
    return _reverse(terms, candidates, state)


def _reverse(terms: Terms, candidates: list[tuple[int, int, int, Offer]], state: AuctionState) -> Action:
    # Best score first; on a tie the lower price, then the provider address (deterministic).
    floor, cost, latency, offer = min(
        candidates, key=lambda c: (score(c[0], c[2], terms=terms), c[0], c[3].provider)
    )
    if state.best_price is not None and state.best_latency is not None:
        best = score(state.best_price, state.best_latency, terms=terms)
        if score(floor, latency, terms=terms) >= best:
            return Pass("the standing bid scores better than our floor")
    return BidAction(provider=offer.provider, price=floor, latency=latency, cost=cost, offer=offer)


def _dutch(terms: Terms, candidates: list[tuple[int, int, int, Offer]], state: AuctionState) -> Action:
    cheapest = min(c[0] for c in candidates)
    price = state.current_price
    if price is None or price < cheapest:
        return Pass("the current price does not cover any quote yet", wait_for_price=cheapest)
    if price > terms.max_price:
        return Pass("the current price is above the intent's max price")
    covered = [c for c in candidates if c[0] <= price]
    _floor, cost, latency, offer = min(
        covered, key=lambda c: (score(price, c[2], terms=terms), c[0], c[3].provider)
    )
    return FillAction(provider=offer.provider, price=price, latency=latency, cost=cost, offer=offer)
