"""Following one job: its market events, in order, folded into a timeline and an outcome.

:class:`JobTracker` is pure: it is fed events (name, arguments, transaction hash, when the
client saw them) and says where the job stands. The client reads the events from the chain;
the devnet reuses the tracker for its live view. Event names are those of ``IMarket`` (and
``IStaking.Slashed``); arguments are read by their snake_case names.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["JobState", "JobTracker", "Seen", "event_step"]


class JobState(StrEnum):
    """Where a job stands, as the client sees it."""

    SENT = "sent"  # broadcast to solvers (signed) or sent to the market (on-chain)
    OPEN = "open"  # on the market, auction running
    AWARDED = "awarded"  # a provider won; its stake is locked
    DELIVERED = "delivered"  # output (and proof) handed in
    CHALLENGED = "challenged"  # an optimistic delivery was disputed
    SETTLED = "settled"  # provider paid (terminal)
    REFUNDED = "refunded"  # never awarded: escrow returned (terminal)
    EXPIRED = "expired"  # provider missed its deadline: escrow returned, stake slashed (terminal)
    SLASHED = "slashed"  # provider failed to prove a disputed output: escrow returned (terminal)

    @property
    def terminal(self) -> bool:
        return self in (JobState.SETTLED, JobState.REFUNDED, JobState.EXPIRED, JobState.SLASHED)


#: Market event name (``IMarket``, ``IReverseAuctionMarket``) -> the step it marks. Staking's
#: ``StakeSlashed`` is not here: the market's ``Expired`` and ``Slashed`` carry the amounts.
_STEPS: dict[str, str] = {
    "IntentPosted": "posted",
    "BidPlaced": "bid",
    "Awarded": "awarded",  # reverse award, or Dutch fill
    "FailedOver": "awarded",  # re-awarded to the runner-up after an expiry
    "Delivered": "delivered",
    "AuditRequired": "audited",
    "Challenged": "challenged",
    "Proved": "proved",
    "Settled": "settled",
    "Refunded": "refunded",
    "Expired": "expired",
    "Slashed": "slashed",  # a challenged or audited provider failed to prove
    "CallbackFailed": "callback_failed",  # settled, but the consumer's callback reverted
}


#: Steps that may still come after a terminal one in the same transaction (an expiry or a
#: slash logs the escrow's ``Refunded`` too, in either order).
_LATE_STEPS = frozenset({"refunded", "expired", "slashed"})

#: ``JobState.Settled`` in ``MarketStructs.sol``.
_SOLIDITY_SETTLED = 6


def event_step(name: str) -> str | None:
    """The step a market event marks (``"awarded"``...), or ``None`` for an unrelated event."""
    return _STEPS.get(name)


def _first(args: dict[str, Any], *names: str, default: Any = None) -> Any:
    for name in names:
        if name in args and args[name] is not None:
            return args[name]
    return default


@dataclass(frozen=True, slots=True)
class Seen:
    """One event as the client saw it."""

    name: str
    step: str
    args: dict[str, Any]
    tx_hash: str | None
    at: float  # time.monotonic() when the client saw it
    block: int = 0


@dataclass
class JobTracker:
    """The timeline of one job and what it means.

    Args:
        job_id: the job id (``0x``-hex).
        sent_at: ``time.monotonic()`` when the intent left the client.
    """

    job_id: str
    sent_at: float = field(default_factory=time.monotonic)
    state: JobState = JobState.SENT
    events: list[Seen] = field(default_factory=list)
    bids: int = 0
    provider: str | None = None
    price: int | None = None
    refund: int = 0
    compensation: int = 0
    output: list[int] | None = None
    proof: bytes | None = None
    verified_onchain: bool = False
    challenged: bool = False
    slashed: bool = False
    auction_end: int | None = None
    provider_deadline: int | None = None
    #: the consumer callback's revert data when the market logged ``CallbackFailed``
    callback_failed: bytes | None = None
    tx_hashes: dict[str, str] = field(default_factory=dict)
    at: dict[str, float] = field(default_factory=dict)

    def feed(self, name: str, args: dict[str, Any], *, tx_hash: str | None = None,
             at: float | None = None, block: int = 0) -> JobState:  # fmt: skip
        """Take one event into account; returns the new state. Unrelated events are ignored."""
        step = event_step(name)
        if step is None:
            return self.state
        now = time.monotonic() if at is None else at
        self.events.append(Seen(name=name, step=step, args=dict(args), tx_hash=tx_hash, at=now, block=block))
        if step == "callback_failed":  # after ``Settled``, in the same transaction: no new state
            self.callback_failed = bytes(_first(args, "reason", default=b"") or b"")
            return self.state
        self.at.setdefault(step, now)
        if tx_hash:
            self.tx_hashes.setdefault(step, tx_hash)
        if self.state.terminal and step not in _LATE_STEPS:
            return self.state
        if step == "posted":
            self.auction_end = _int(_first(args, "auction_end", default=self.auction_end))
            self._advance(JobState.OPEN)
        elif step == "bid":
            self.bids += 1
            self._advance(JobState.OPEN)
        elif step == "awarded":
            if name == "FailedOver":
                self.provider = _first(args, "to", default=self.provider)
            else:
                self.provider = _first(args, "provider", default=self.provider)
            self.price = _int(_first(args, "price", default=self.price))
            self.provider_deadline = _int(_first(args, "provider_deadline", default=self.provider_deadline))
            self.state = JobState.AWARDED
        elif step == "delivered":
            output = _first(args, "output")
            if output is not None:
                self.output = [int(v) for v in output]
            if int(_first(args, "state", default=0) or 0) == _SOLIDITY_SETTLED:
                self.verified_onchain = True  # zk (or proof attached): verified at delivery
            self._advance(JobState.DELIVERED)
        elif step == "audited":
            self._advance(JobState.DELIVERED)
        elif step == "challenged":
            self.challenged = True
            self._advance(JobState.CHALLENGED)
        elif step == "proved":
            self.verified_onchain = True
            self.state = JobState.DELIVERED
        elif step == "settled":
            self.price = _int(_first(args, "price", default=self.price))
            self.refund = _int(_first(args, "refund", default=self.refund)) or 0
            self.provider = _first(args, "provider", default=self.provider)
            self.state = JobState.SETTLED
        elif step == "refunded":
            self.refund = _int(_first(args, "amount", default=self.refund)) or 0
            if not self.state.terminal:
                self.state = JobState.REFUNDED
        elif step == "expired":
            self.compensation += _int(_first(args, "slashed", default=0)) or 0
            self.slashed = self.slashed or self.compensation > 0
            if self.state in (JobState.REFUNDED,) or not self.state.terminal:
                self.state = JobState.EXPIRED
        elif step == "slashed":
            self.slashed = True
            self.compensation += _int(_first(args, "to_requester", default=0)) or 0
            if self.state in (JobState.REFUNDED,) or not self.state.terminal:
                self.state = JobState.SLASHED
        return self.state

    def _advance(self, state: JobState) -> None:
        order = list(JobState)
        if order.index(state) > order.index(self.state) or state == JobState.DELIVERED:
            self.state = state

    # -- latency ------------------------------------------------------------------------

    def ms_between(self, start: str, end: str) -> float | None:
        """Milliseconds from step ``start`` (``"sent"`` for the send) to step ``end``."""
        a = self.sent_at if start == "sent" else self.at.get(start)
        b = self.at.get(end)
        if a is None or b is None:
            return None
        return max(0.0, (b - a) * 1000.0)

    @property
    def auction_ms(self) -> float | None:
        return self.ms_between("sent", "awarded")

    @property
    def total_ms(self) -> float | None:
        end = next((s for s in ("settled", "refunded", "expired", "slashed") if s in self.at), None)
        return self.ms_between("sent", end) if end else None


def _int(value: Any) -> int | None:
    return None if value is None else int(value)
