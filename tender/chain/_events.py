"""Typed events: one frozen dataclass per Solidity event, fields in snake_case.

Every event carries where it happened (``block_number``, ``tx_hash``, ``log_index``,
``address``); an event with no dataclass here comes back as :class:`RawEvent`, so a new
Solidity event never breaks a reader (``tests/chain`` checks that every event in the ABI has
its class). Struct arguments become domain objects (``IntentPosted.intent`` is an
:class:`~tender.intents.Intent`, ``Delivered.state`` a :class:`~tender.chain.JobState`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar, dataclass_transform

from tender.chain._abi import DecodedLog
from tender.chain._jobs import JobState
from tender.chain._structs import MarketParams, ModelInfo
from tender.chain._token_jobs import TokenModelConfig
from tender.intents import Intent
from tender.quotes import QuotedJob

__all__ = [
    "Approval",
    "AuditDrawn",
    "AuditRequired",
    "AwardSkipped",
    "AwardSkippedLate",
    "Awarded",
    "BatchAwardSkipped",
    "BatchDelivered",
    "BatchJobSkipped",
    "BidPlaced",
    "CallbackFailed",
    "Challenged",
    "Claimed",
    "CommitmentSlashed",
    "DeclineReleased",
    "Declined",
    "Delivered",
    "EIP712DomainChanged",
    "Expired",
    "ExpiryRecorded",
    "FailedOver",
    "FeesWithdrawn",
    "IntentPosted",
    "MarketScheduled",
    "MarketSet",
    "ModelRegistered",
    "NoncesInvalidated",
    "OperatorRegistered",
    "OwnershipTransferStarted",
    "OwnershipTransferred",
    "ParamsScheduled",
    "ParamsUpdated",
    "Paused",
    "Proved",
    "QuoteAwarded",
    "Redeemed",
    "ReexecutionVoted",
    "ReexecutorSet",
    "Refunded",
    "Settled",
    "Slashed",
    "SolverSet",
    "StakeLocked",
    "StakePenalized",
    "StakeSlashed",
    "StakeUnlocked",
    "Staked",
    "TokenAuditDrawn",
    "TokenChallenged",
    "TokenDelivered",
    "TokenJobExpired",
    "TokenJobOpened",
    "TokenJobSettled",
    "TokenJobSlashed",
    "TokenModelSet",
    "Transfer",
    "TreasuryUpdated",
    "Unpaused",
    "Unstaked",
    "UnstakingDelaySet",
    "UnstakingReclaimed",
    "Withdrawn",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Where an event happened; every typed event derives from this."""

    address: str = field(default="", compare=False)
    block_number: int = field(default=0, compare=False)
    tx_hash: bytes = field(default=b"", compare=False, repr=False)
    log_index: int = field(default=0, compare=False)

    @property
    def name(self) -> str:
        return type(self).__name__


@dataclass(frozen=True, slots=True, kw_only=True)
class RawEvent(Event):
    """An event without a typed class: its ABI name and arguments."""

    event: str
    args: dict[str, Any]

    @property
    def name(self) -> str:
        return self.event


EVENT_TYPES: dict[str, type[Event]] = {}

#: Per event class, converters from decoded ABI values to domain values, by field name.
_CONVERT: dict[str, dict[str, Callable[[Any], Any]]] = {}

E = TypeVar("E", bound=Event)


@dataclass_transform(kw_only_default=True, frozen_default=True)
def event_type(**convert: Callable[[Any], Any]) -> Callable[[type[E]], type[E]]:
    """Make a typed event class (a frozen, slotted, keyword-only dataclass, as :class:`Event`)
    and register it under its class name (the Solidity event's name).

    ``convert`` maps field names to converters of their decoded values.
    """

    def register(cls: type[E]) -> type[E]:
        cls = dataclass(frozen=True, slots=True, kw_only=True)(cls)
        EVENT_TYPES[cls.__name__] = cls
        _CONVERT[cls.__name__] = convert
        return cls

    return register


_META = frozenset({"address", "block_number", "tx_hash", "log_index"})


def to_event(log: DecodedLog) -> Event:
    """The typed event for a decoded log (a :class:`RawEvent` when none is registered)."""
    cls = EVENT_TYPES.get(log.name)
    args = dict(log.args)
    if cls is not None and {f.name for f in fields(cls)} - _META == set(args):
        for name, convert in _CONVERT[log.name].items():
            args[name] = convert(args[name])
        return cls(
            address=log.address,
            block_number=log.block_number,
            tx_hash=log.tx_hash,
            log_index=log.log_index,
            **args,
        )
    return RawEvent(
        event=log.name,
        args=dict(log.args),
        address=log.address,
        block_number=log.block_number,
        tx_hash=log.tx_hash,
        log_index=log.log_index,
    )


# -- markets (IMarket) -----------------------------------------------------------------


@event_type(intent=Intent.from_abi)
class IntentPosted(Event):
    job_id: bytes
    requester: str
    model_id: bytes
    intent: Intent
    escrow: int
    fee_bps: int
    stake_multiple: int
    auction_end: int
    submitter: str


@event_type()
class Awarded(Event):
    job_id: bytes
    provider: str
    price: int
    latency: int
    stake_locked: int
    provider_deadline: int


@event_type()
class AwardSkipped(Event):
    job_id: bytes
    provider: str
    available: int
    required: int


@event_type()
class AwardSkippedLate(Event):
    """A candidate skipped because its promised latency no longer fits before the deadline."""

    job_id: bytes
    provider: str
    latency: int
    deadline: int


@event_type()
class Declined(Event):
    """The awarded provider gave the job back (its input did not match the commitment): no
    slash; its stake stays locked until ``release_at``."""

    job_id: bytes
    provider: str
    release_at: int


@event_type()
class DeclineReleased(Event):
    job_id: bytes
    provider: str


@event_type(state=JobState, output=tuple)
class Delivered(Event):
    job_id: bytes
    provider: str
    output: tuple[int, ...]
    output_hash: bytes
    state: JobState
    dispute_end: int


@event_type()
class AuditRequired(Event):
    job_id: bytes
    provider: str
    proof_deadline: int


@event_type()
class AuditDrawn(Event):
    """Whether an optimistic delivery is audited, drawn from the hash of the block after it."""

    job_id: bytes
    audited: bool


@event_type()
class Challenged(Event):
    job_id: bytes
    challenger: str
    bond: int
    proof_deadline: int


@event_type()
class Proved(Event):
    job_id: bytes
    prover: str
    bond_paid: int


@event_type()
class Settled(Event):
    job_id: bytes
    provider: str
    price: int
    fee: int
    refund: int
    latency: int


@event_type()
class Expired(Event):
    job_id: bytes
    provider: str
    slashed: int


@event_type()
class FailedOver(Event):
    job_id: bytes
    from_: str
    to: str
    price: int


@event_type()
class Refunded(Event):
    job_id: bytes
    requester: str
    amount: int


@event_type()
class Slashed(Event):
    job_id: bytes
    provider: str
    to_requester: int
    to_challenger: int
    bond_returned: int


# -- the quote market (IQuoteMarket) ---------------------------------------------------


@event_type(terms=QuotedJob.from_abi)
class QuoteAwarded(Event):
    """A quoted job was opened and awarded in one transaction; ``terms`` is what its later
    calls (``deliver``, ``expire``, ``slashCommitment``) pass back."""

    job_id: bytes
    requester: str
    provider: str
    terms: QuotedJob
    latency: int
    submitter: str


@event_type()
class CommitmentSlashed(Event):
    """A provider proved another output than the one it signed a result commitment to."""

    job_id: bytes
    provider: str
    committed_hash: bytes
    delivered_hash: bytes
    taken: int


@event_type()
class BatchDelivered(Event):
    """One ``deliverBatch``: ``settled`` has bit i set for each slot whose job settled (each
    with its own ``Delivered`` and ``Settled``); ``skipped`` jobs each have a ``BatchJobSkipped``."""

    model_id: bytes
    submitter: str
    settled: int
    skipped: int


@event_type()
class BatchJobSkipped(Event):
    """The job in ``slot`` of a batch failed its own checks (``reason``: a
    :class:`~tender.chain.BatchSkip`) and was left as it was; the others settled."""

    job_id: bytes
    slot: int
    reason: int


@event_type()
class BatchAwardSkipped(Event):
    """Entry ``index`` of an ``openAwardedBatch`` (job ``job_id``) failed its own checks at
    inclusion (``reason``: a :class:`~tender.chain.AwardSkip`) and was not opened; its nonce
    stays unused. The other entries were awarded (each with its ``QuoteAwarded``)."""

    job_id: bytes
    index: int
    reason: int


@event_type()
class CallbackFailed(Event):
    job_id: bytes
    requester: str
    reason: bytes


@event_type()
class NoncesInvalidated(Event):
    owner: str
    word: int
    mask: int


@event_type(params=MarketParams.from_abi)
class ParamsUpdated(Event):
    params: MarketParams


@event_type(params=MarketParams.from_abi)
class ParamsScheduled(Event):
    """New parameters, applicable (``applyParams``) from ``effective_at`` to jobs posted after."""

    params: MarketParams
    effective_at: int


@event_type()
class TreasuryUpdated(Event):
    treasury: str


@event_type()
class FeesWithdrawn(Event):
    treasury: str
    amount: int


@event_type()
class Withdrawn(Event):
    """A market paid ``account`` everything it owed it (``IMarket.withdraw``)."""

    account: str
    amount: int


@event_type()
class Paused(Event):
    account: str


@event_type()
class Unpaused(Event):
    account: str


# -- reverse auction -------------------------------------------------------------------


@event_type()
class BidPlaced(Event):
    """A bid entered a reverse job's book (``rank`` 1: it leads, 2: runner-up). The book's stake
    reservations are logged here, not by Staking: a provider new to the book reserved the job's
    largest lock, and ``pushed_out`` (the zero address if none), the runner-up it pushed off the
    book, got its reservation back in the same transaction. Its score is
    ``OpenTerms.auction.score(price, latency)``."""

    job_id: bytes
    provider: str
    solver: str
    price: int
    latency: int
    rank: int
    pushed_out: str


# -- staking ---------------------------------------------------------------------------


@event_type()
class Staked(Event):
    provider: str
    payer: str
    amount: int


@event_type()
class Unstaked(Event):
    provider: str
    amount: int
    total_unstaking: int
    ready_at: int


@event_type()
class Redeemed(Event):
    """Staking paid ``provider`` the stake it unstaked, once the unstaking delay had passed."""

    provider: str
    amount: int


@event_type(models=tuple)
class OperatorRegistered(Event):
    provider: str
    endpoint: str
    region: bytes
    hardware_class: bytes
    models: tuple[bytes, ...]


@event_type()
class SolverSet(Event):
    provider: str
    solver: str
    allowed: bool


@event_type()
class MarketSet(Event):
    market: str
    allowed: bool


@event_type()
class MarketScheduled(Event):
    """A market authorised in ``Staking``, active (able to lock stake) from ``active_at``."""

    market: str
    active_at: int


@event_type()
class UnstakingDelaySet(Event):
    delay: int


@event_type()
class StakeLocked(Event):
    provider: str
    job_id: bytes
    market: str
    amount: int


@event_type()
class StakeUnlocked(Event):
    provider: str
    job_id: bytes
    amount: int


@event_type()
class StakeSlashed(Event):
    provider: str
    job_id: bytes
    recipient: str
    amount: int


@event_type()
class StakePenalized(Event):
    """A winner that could not lock the stake its bid showed lost up to that much to ``recipient``."""

    provider: str
    job_id: bytes
    recipient: str
    amount: int


@event_type()
class UnstakingReclaimed(Event):
    """An award took back stake the provider was unstaking (it backed a standing bid)."""

    provider: str
    amount: int


@event_type()
class Claimed(Event):
    """Slashed stake credited to ``account`` paid out (``Staking.claim``)."""

    account: str
    amount: int


@event_type()
class ExpiryRecorded(Event):
    provider: str
    job_id: bytes


# -- registry --------------------------------------------------------------------------


@event_type(info=ModelInfo.from_abi)
class ModelRegistered(Event):
    model_id: bytes
    owner: str
    info: ModelInfo


# -- OpenZeppelin Ownable2Step ----------------------------------------------------------


@event_type()
class OwnershipTransferred(Event):
    previous_owner: str
    new_owner: str


@event_type()
class OwnershipTransferStarted(Event):
    previous_owner: str
    new_owner: str


@event_type()
class EIP712DomainChanged(Event):
    """ERC-5267: the EIP-712 domain may have changed (emitted by OpenZeppelin's EIP712, never in practice)."""


# -- token market (ITokenMarket) --------------------------------------------------------


@event_type(config=TokenModelConfig.from_abi)
class TokenModelSet(Event):
    """The owner registered or updated a token model's re-execution tier."""

    model_id: bytes
    config: TokenModelConfig


@event_type()
class ReexecutorSet(Event):
    model_id: bytes
    account: str
    allowed: bool


@event_type()
class TokenJobOpened(Event):
    """A requester opened a token job from a provider's signed quote (escrow and stake held)."""

    job_id: bytes
    requester: str
    provider: str
    model_id: bytes
    request_hash: bytes
    max_tokens: int
    price_per1k: int
    escrow: int
    stake_locked: int
    due: int


@event_type()
class TokenDelivered(Event):
    """The sequence went on chain: ``tokens`` holds the ids, uint32 big-endian each
    (:func:`~tender.chain.decode_tokens`)."""

    job_id: bytes
    provider: str
    delivered: int
    output_hash: bytes
    tokens: bytes


@event_type()
class TokenAuditDrawn(Event):
    job_id: bytes
    audited: bool


@event_type()
class TokenChallenged(Event):
    job_id: bytes
    challenger: str
    bond: int
    vote_deadline: int


@event_type()
class ReexecutionVoted(Event):
    job_id: bytes
    reexecutor: str
    faithful: bool


@event_type()
class TokenJobSettled(Event):
    """Paid for ``delivered`` tokens: ``paid`` to the provider, ``refund`` to the requester."""

    job_id: bytes
    provider: str
    delivered: int
    paid: int
    refund: int


@event_type()
class TokenJobSlashed(Event):
    """A quorum of re-executors found the delivery unfaithful."""

    job_id: bytes
    provider: str
    to_requester: int
    to_challenger: int


@event_type()
class TokenJobExpired(Event):
    job_id: bytes
    provider: str
    slashed: int


# -- ERC-20 ----------------------------------------------------------------------------


@event_type()
class Transfer(Event):
    from_: str
    to: str
    value: int


@event_type()
class Approval(Event):
    owner: str
    spender: str
    value: int
