"""One job as its market's events tell it: :class:`JobView`, folded from typed events.

Every role and the SDK learn where a job stands the same way: by folding the market's events
(from an :class:`~tender.chain.EventFeed`) into a :class:`JobView`. The transition rules live
here and only here; a new state or event changes this file, and mypy finds every reader.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from tender.chain._events import (
    AuditDrawn,
    AuditRequired,
    Awarded,
    Challenged,
    Declined,
    Delivered,
    Event,
    Expired,
    FailedOver,
    IntentPosted,
    Proved,
    Refunded,
    Settled,
    Slashed,
)
from tender.chain._jobs import JobState
from tender.intents import Intent

__all__ = ["JobView"]

#: States that a later ``Refunded`` of the same job does not overwrite: an expiry or a slash
#: returns the escrow too, and says more about what happened.
_KEEP_ON_REFUND = frozenset({JobState.EXPIRED, JobState.SLASHED})


@dataclass(frozen=True, slots=True)
class JobView:
    """Where one job stands, folded from its market's events (:meth:`apply`, :meth:`fold`).

    Amounts are payment-token units, times Unix seconds; empty values until the event that sets
    them. ``events`` keeps every event applied, in order.
    """

    job_id: bytes
    market: str = ""
    state: JobState = JobState.NONE
    requester: str = ""
    model_id: bytes = b""
    intent: Intent | None = None
    auction_end: int = 0
    provider: str = ""
    price: int = 0
    latency: int = 0
    stake_locked: int = 0
    provider_deadline: int = 0
    output: tuple[int, ...] = ()
    output_hash: bytes = b""
    dispute_end: int = 0
    challenger: str = ""
    audited: bool | None = None
    declined_by: tuple[str, ...] = ()
    slashed: int = 0
    refunded: int = 0
    fee: int = 0
    events: tuple[Event, ...] = ()

    @property
    def final(self) -> bool:
        """Nothing can happen to the job any more."""
        return self.state.final

    @classmethod
    def fold(cls, job_id: bytes, events: Iterable[Event]) -> JobView:
        """The view of ``job_id`` after ``events`` (oldest first; other jobs' events are skipped)."""
        view = cls(job_id)
        for event in events:
            view = view.apply(event)
        return view

    def apply(self, event: Event) -> JobView:
        """The view after ``event``; an event of another job (or no job) leaves it as it is."""
        if getattr(event, "job_id", None) != self.job_id:
            return self
        seen = replace(self, events=(*self.events, event), market=self.market or event.address)
        match event:
            case IntentPosted():
                return replace(
                    seen,
                    state=JobState.OPEN,
                    requester=event.requester,
                    model_id=event.model_id,
                    intent=event.intent,
                    auction_end=event.auction_end,
                )
            case Awarded():
                return replace(
                    seen,
                    state=JobState.AWARDED,
                    provider=event.provider,
                    price=event.price,
                    latency=event.latency,
                    stake_locked=event.stake_locked,
                    provider_deadline=event.provider_deadline,
                )
            case FailedOver():
                return replace(seen, state=JobState.AWARDED, provider=event.to, price=event.price)
            case Declined():
                return replace(seen, declined_by=(*self.declined_by, event.provider))
            case Delivered():
                return replace(
                    seen,
                    state=event.state,
                    output=event.output,
                    output_hash=event.output_hash,
                    dispute_end=event.dispute_end,
                )
            case AuditDrawn():
                return replace(seen, audited=event.audited)
            case AuditRequired():
                return replace(seen, state=JobState.PROOF_REQUIRED, dispute_end=event.proof_deadline)
            case Challenged():
                return replace(
                    seen,
                    state=JobState.CHALLENGED,
                    challenger=event.challenger,
                    dispute_end=event.proof_deadline,
                )
            case Proved():
                return seen
            case Settled():
                return replace(
                    seen, state=JobState.SETTLED, price=event.price, fee=event.fee, refunded=event.refund
                )
            case Expired():
                return replace(seen, state=JobState.EXPIRED, slashed=self.slashed + event.slashed)
            case Slashed():
                return replace(
                    seen,
                    state=JobState.SLASHED,
                    slashed=self.slashed + event.to_requester + event.to_challenger,
                )
            case Refunded():
                state = self.state if self.state in _KEEP_ON_REFUND else JobState.REFUNDED
                return replace(seen, state=state, refunded=self.refunded + event.amount)
            case _:
                return seen
