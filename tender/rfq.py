"""The quote path's wire (request for quotes on the ``QuoteMarket``): one home for what the
requester, the solvers and the providers send each other, and for the requester's choice.

1. The requester sends its signed intent (a :class:`~tender.wire.SignedIntentWire` whose intent
   has ``auctionType = 2``) to each solver's ``POST /rfq?window_ms=N``; the solver asks its
   providers (``POST /rfq/quote``, the same body) and answers within the window with
   :class:`FirmQuotes`: every provider-signed EIP-712 :class:`~tender.quotes.Quote` it got.
2. The requester picks one (:func:`rank`), signs its acceptance (the quote's digest) and sends
   ``openAwarded`` itself; at once it also sends :class:`RunQuoted` to the winner's
   ``POST /rfq/run``.
3. The provider runs the inference, computes the output as the proof will carry it and answers
   :class:`CommittedOutput`: the output with its signed result commitment.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field

from tender.intents import Intent
from tender.quotes import Quote
from tender.wire import Address, Bytes32, Hex, RequestWire, SignedIntentWire, Wire

__all__ = ["CommittedOutput", "FirmQuote", "FirmQuotes", "RunQuoted", "rank", "score"]


class FirmQuote(Wire):
    """One provider-signed quote and where that provider runs the job (``/rfq/run``)."""

    quote: dict[str, Any]
    signature: Hex
    url: str

    def parsed(self) -> Quote:
        return Quote.from_json(self.quote)


class FirmQuotes(Wire):
    """A solver's answer to ``POST /rfq``: the quotes its providers signed within the window."""

    jobId: Bytes32
    quotes: list[FirmQuote] = Field(default_factory=list)
    asked: int = 0


class RunQuoted(RequestWire):
    """The requester's ``POST /rfq/run`` to the quote it took: the signed intent (its input is
    inline), the provider's quote and signature, and the requester's acceptance (its signature
    of the quote's digest, with which anyone, the provider too, may submit ``openAwarded``)."""

    signed: SignedIntentWire
    quote: dict[str, Any]
    quoteSignature: Hex
    acceptance: Hex


class CommittedOutput(Wire):
    """The provider's answer to ``/rfq/run``: the output as the proof will carry it (field
    elements), as floats, its hash (``keccak256(abi.encode(uint256[]))``) and the provider's
    EIP-712 result commitment to that hash."""

    jobId: Bytes32
    provider: Address
    output: list[float]
    outputFelts: list[str]
    outputHash: Bytes32
    commitment: Hex


def score(quote: Quote, intent: Intent, *, now: int) -> float:
    """Lower is better: the intent's own weight between price (share of ``maxPrice``) and latency
    (share of the time left to the deadline), as the reverse auction weighs bids."""
    w = intent.price_weight_bps / 10_000
    left = max(1, intent.deadline - now)
    return w * quote.price / intent.max_price + (1 - w) * quote.latency / left


def rank(
    quotes: Sequence[tuple[Quote, bytes, str]], intent: Intent, *, now: int
) -> list[tuple[Quote, bytes, str]]:
    """``(quote, signature, url)`` best first by :func:`score` (ties: the cheaper first)."""
    return sorted(quotes, key=lambda q: (score(q[0], intent, now=now), q[0].price))
