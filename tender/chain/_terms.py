"""A reverse-auction job's terms (``AuctionTerms`` and ``JobTerms``): what ``post`` fixed and the
market keeps only as a hash while the job is Open. ``bid``, ``award`` and ``refund`` pass them
back; every role rebuilds them from ``IntentPosted`` (:meth:`OpenTerms.from_event`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

if TYPE_CHECKING:
    from tender.chain._events import IntentPosted
    from tender.intents import Intent

_JOB_TERMS_TYPES = ("address", "bytes32", "uint256", "uint40", "uint16", "uint8", "bool", "uint32")
_AUCTION_TERMS_TYPES = ("uint96", "uint96", "uint40", "uint40", "uint16", "uint16", "bytes32")


@dataclass(frozen=True, slots=True)
class JobTerms:
    """Who pays and what is computed (``JobTerms``): only the award and the refund read them."""

    requester: str
    model_id: bytes
    input_commitment: int
    #: the posting block's time
    posted_at: int
    #: the market's fee at posting
    fee_bps: int
    proof_mode: int
    allow_failover: bool
    callback_gas_limit: int

    def to_abi(self) -> tuple[Any, ...]:
        return (
            to_checksum_address(self.requester),
            bytes(self.model_id),
            int(self.input_commitment),
            int(self.posted_at),
            int(self.fee_bps),
            int(self.proof_mode),
            bool(self.allow_failover),
            int(self.callback_gas_limit),
        )

    def hash(self) -> bytes:
        """``keccak256(abi.encode(terms))``, as ``AuctionTerms.jobTerms`` holds it."""
        return keccak(abi_encode(_JOB_TERMS_TYPES, self.to_abi()))


@dataclass(frozen=True, slots=True)
class AuctionTerms:
    """What a bid checks and scores by (``AuctionTerms``), with the hash of the :class:`JobTerms`."""

    max_price: int
    min_stake: int
    auction_end: int
    deadline: int
    price_weight_bps: int
    #: the market's stake multiple at posting
    stake_multiple: int
    #: :meth:`JobTerms.hash`
    job_terms: bytes

    def to_abi(self) -> tuple[Any, ...]:
        return (
            int(self.max_price),
            int(self.min_stake),
            int(self.auction_end),
            int(self.deadline),
            int(self.price_weight_bps),
            int(self.stake_multiple),
            bytes(self.job_terms),
        )

    def hash(self) -> bytes:
        """``keccak256(abi.encode(terms))``: the high 248 bits are what the job's Open word holds."""
        return keccak(abi_encode(_AUCTION_TERMS_TYPES, self.to_abi()))

    @property
    def max_latency(self) -> int:
        """The latency range the score uses: ``deadline - auction_end``."""
        return self.deadline - self.auction_end

    def score(self, price: int, latency: int) -> int:
        """A bid's score (lower wins), as ``scoreOf`` computes it."""
        w = self.price_weight_bps
        return w * price * self.max_latency + (10_000 - w) * latency * self.max_price


@dataclass(frozen=True, slots=True)
class OpenTerms:
    """A reverse job's terms while it is Open, both parts."""

    auction: AuctionTerms
    job: JobTerms

    @classmethod
    def from_intent(cls, intent: Intent, *, posted_at: int, fee_bps: int, stake_multiple: int) -> OpenTerms:
        """The terms ``post`` fixes for ``intent`` posted at ``posted_at`` (block time) under the
        market's fee and stake multiple then."""
        job = JobTerms(
            requester=intent.requester,
            model_id=bytes(intent.model_id),
            input_commitment=int(intent.input_commitment),
            posted_at=int(posted_at),
            fee_bps=int(fee_bps),
            proof_mode=int(intent.proof_mode),
            allow_failover=bool(intent.allow_failover),
            callback_gas_limit=int(intent.callback_gas_limit),
        )
        auction = AuctionTerms(
            max_price=int(intent.max_price),
            min_stake=int(intent.min_stake),
            auction_end=int(posted_at) + int(intent.auction_window),
            deadline=int(intent.deadline),
            price_weight_bps=int(intent.price_weight_bps),
            stake_multiple=int(stake_multiple),
            job_terms=job.hash(),
        )
        return cls(auction, job)

    @classmethod
    def from_event(cls, event: IntentPosted) -> OpenTerms:
        """The terms of the job ``event`` opened (posted at ``auction_end - auction_window``)."""
        intent = event.intent
        return cls.from_intent(
            intent,
            posted_at=int(event.auction_end) - int(intent.auction_window),
            fee_bps=int(event.fee_bps),
            stake_multiple=int(event.stake_multiple),
        )
