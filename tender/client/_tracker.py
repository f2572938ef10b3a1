"""Following one job as a requester: the chain's :class:`~tender.chain.JobView` plus a timeline.

Where the job stands (its :class:`~tender.chain.JobState`, provider, price, output, amounts) is
the :class:`~tender.chain.JobView` that :mod:`tender.chain` folds from the market's typed events;
the tracker adds only what the client alone knows: when it sent the intent, when it saw each
step, each step's transaction, and the proof it fetched. Until the intent is on the market the
job is :attr:`JobState.NONE <tender.chain.JobState.NONE>` (sent, not yet posted).

The timeline's steps are named after the events that mark them (:data:`STEPS`): they key
``RequestResult.tx_hashes`` and its gas figures.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from tender.chain import (
    AuditRequired,
    Awarded,
    BidPlaced,
    CallbackFailed,
    Challenged,
    Delivered,
    Event,
    Expired,
    FailedOver,
    IntentPosted,
    JobState,
    JobView,
    Proved,
    Refunded,
    Settled,
    Slashed,
)

__all__ = ["STEPS", "JobTracker"]

#: The job's timeline: the step each market event marks (``IMarket``, ``IReverseAuctionMarket``).
#: ``CallbackFailed`` is followed but marks no step (it comes with ``Settled``).
STEPS: dict[type[Event], str] = {
    IntentPosted: "posted",
    BidPlaced: "bid",
    Awarded: "awarded",  # reverse award, or Dutch fill
    FailedOver: "awarded",  # re-awarded to the runner-up after an expiry
    Delivered: "delivered",
    AuditRequired: "audited",
    Challenged: "challenged",
    Proved: "proved",
    Settled: "settled",
    Refunded: "refunded",
    Expired: "expired",
    Slashed: "slashed",  # a challenged or audited provider failed to prove
}

#: The events a client follows (the names its feed asks the chain for).
FOLLOWED: tuple[type[Event], ...] = (*STEPS, CallbackFailed)


def _tx(event: Event) -> str | None:
    return "0x" + event.tx_hash.hex() if event.tx_hash else None


@dataclass
class JobTracker:
    """The timeline of one job and what it means.

    Args:
        job_id: the job id (``0x``-hex).
        sent_at: ``time.monotonic()`` when the intent left the client.
    """

    job_id: str
    sent_at: float = field(default_factory=time.monotonic)
    view: JobView = field(init=False)
    #: the proof, when the client has it (``Client`` reads it from the delivery's calldata)
    proof: bytes | None = None
    #: transaction hash by step (plus ``post`` when the client posted the intent itself)
    tx_hashes: dict[str, str] = field(default_factory=dict)
    #: ``time.monotonic()`` when the client first saw each step
    at: dict[str, float] = field(default_factory=dict)
    #: the newest block the client's feed has read (what confirmations are counted against)
    head: int = 0
    #: how many reorgs took back events of this job (each one sends it back to an earlier state)
    reorgs: int = 0
    _seen: set[tuple[bytes, int]] = field(default_factory=set, init=False, repr=False)

    def __post_init__(self) -> None:
        self.job_id = self.job_id.lower()
        self.view = JobView(bytes.fromhex(self.job_id.removeprefix("0x")))

    def feed(self, event: Event, *, at: float | None = None) -> JobState:
        """Take one event into account; returns the new state. Other jobs' events, unrelated
        events and an event seen before (same transaction and log index) are ignored."""
        if type(event) not in FOLLOWED or getattr(event, "job_id", None) != self.view.job_id:
            return self.state
        key = (event.tx_hash, event.log_index)
        if event.tx_hash and key in self._seen:
            return self.state
        self._seen.add(key)
        self.view = self.view.apply(event)
        step = STEPS.get(type(event))
        if step is not None:
            self.at.setdefault(step, time.monotonic() if at is None else at)
            tx_hash = _tx(event)
            if tx_hash:
                self.tx_hashes.setdefault(step, tx_hash)
        return self.state

    def rollback(self, fork: int) -> bool:
        """Forget the events of blocks after ``fork`` (the chain reorganised): the job goes
        back to the state the remaining events give (a settlement taken back leaves it
        ``DELIVERED`` or ``AWARDED`` again), and the steps those events marked are unmarked.
        Returns whether any event of this job was dropped (then :attr:`reorgs` counts it)."""
        kept = [e for e in self.view.events if e.block_number <= fork]
        if len(kept) == len(self.view.events):
            return False
        self.view = JobView.fold(self.view.job_id, kept)
        self._seen = {(e.tx_hash, e.log_index) for e in kept}
        marked = {STEPS[type(e)] for e in kept if type(e) in STEPS}
        for step in [s for s in self.at if s not in marked]:
            del self.at[step]
        for step in [s for s in self.tx_hashes if s not in marked and s in STEPS.values()]:
            del self.tx_hashes[step]
        self.reorgs += 1
        return True

    @property
    def end_block(self) -> int | None:
        """The block of the event that ended the job (``None`` while it has not ended)."""
        if not self.state.final or not self.view.events:
            return None
        return max(e.block_number for e in self.view.events)

    @property
    def confirmations(self) -> int:
        """Blocks mined on top of the block that ended the job (0 while it has not ended)."""
        end = self.end_block
        return 0 if end is None else max(0, self.head - end)

    # -- what the events say --------------------------------------------------------------

    def _of(self, kind: type[Event]) -> list[Event]:
        return [e for e in self.view.events if isinstance(e, kind)]

    @property
    def state(self) -> JobState:
        return self.view.state

    @property
    def provider(self) -> str | None:
        return self.view.provider or None

    @property
    def price(self) -> int | None:
        return self.view.price if self.view.provider else None

    @property
    def output(self) -> list[int] | None:
        return list(self.view.output) if self._of(Delivered) else None

    @property
    def auction_end(self) -> int | None:
        return self.view.auction_end or None

    @property
    def provider_deadline(self) -> int | None:
        return self.view.provider_deadline or None

    @property
    def bids(self) -> int:
        return len(self._of(BidPlaced))

    @property
    def challenged(self) -> bool:
        return bool(self._of(Challenged))

    @property
    def slashed(self) -> bool:
        """The provider lost stake over this job (it missed its deadline, or failed to prove)."""
        return self.view.slashed > 0 or self.state is JobState.SLASHED

    @property
    def verified_onchain(self) -> bool:
        """The market verified a proof: at delivery (zk), or after a challenge or audit."""
        delivered = any(isinstance(e, Delivered) and e.state is JobState.SETTLED for e in self.view.events)
        return delivered or bool(self._of(Proved))

    @property
    def refund(self) -> int:
        """What the market returned to the requester (unspent escrow, or all of it)."""
        return self.view.refunded

    @property
    def compensation(self) -> int:
        """Slashed stake credited to the requester (an expiry's, or a failed proof's share)."""
        return sum(e.slashed for e in self.view.events if isinstance(e, Expired)) + sum(
            e.to_requester for e in self.view.events if isinstance(e, Slashed)
        )

    @property
    def callback_failed(self) -> bytes | None:
        """The consumer callback's revert data when the market logged ``CallbackFailed``."""
        failed = [e for e in self.view.events if isinstance(e, CallbackFailed)]
        return failed[-1].reason if failed else None

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
