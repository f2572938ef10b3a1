"""A job as the market stores it: :class:`Job` and its :class:`JobState`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from enum import IntEnum
from typing import Any

from tender.chain._abi import normalise, snake
from tender.errors import ChainError
from tender.intents import ProofMode


class JobState(IntEnum):
    """``MarketStructs.JobState``, value for value."""

    NONE = 0
    OPEN = 1
    AWARDED = 2
    DELIVERED = 3
    CHALLENGED = 4
    PROOF_REQUIRED = 5
    SETTLED = 6
    REFUNDED = 7
    EXPIRED = 8
    SLASHED = 9

    @property
    def final(self) -> bool:
        """Nothing can happen to the job any more."""
        return self >= JobState.SETTLED


@dataclass(frozen=True, slots=True)
class Job:
    """One job's on-chain record (``market.job(jobId)``), the ``Job`` struct in snake_case.

    Times are Unix seconds (0 until they happen); amounts are payment-token units.
    """

    job_id: bytes
    requester: str
    state: JobState
    proof_mode: ProofMode
    allow_failover: bool
    price_weight_bps: int
    fee_bps: int
    callback_gas_limit: int
    max_price: int
    min_stake: int
    posted_at: int
    stake_multiple: int
    auction_end: int
    deadline: int
    awarded_at: int
    delivered_at: int
    dispute_end: int
    latency: int
    provider: str
    price: int
    model_id: bytes
    input_commitment: int
    start_price: int
    stake_locked: int
    challenger: str
    challenge_bond: int
    output_hash: bytes

    @property
    def exists(self) -> bool:
        return self.state is not JobState.NONE

    @classmethod
    def from_abi(
        cls, job_id: bytes, value: Sequence[Any] | Mapping[str, Any], components: Sequence[Mapping[str, Any]]
    ) -> Job:
        """Build from the decoded ``Job`` struct, matching fields by the ABI component names."""
        if isinstance(value, Mapping):
            raw = {snake(k): v for k, v in value.items()}
        else:
            raw = {snake(c["name"]): v for c, v in zip(components, value, strict=True)}
        types = {snake(c["name"]): str(c["type"]) for c in components}
        wanted = {f.name for f in fields(cls)} - {"job_id"}
        if set(raw) != wanted:
            raise ChainError(
                f"the market's Job struct does not match tender.chain.Job: {sorted(set(raw) ^ wanted)}"
            )
        values = {name: normalise(v, types.get(name, "")) for name, v in raw.items()}
        values["state"] = JobState(values["state"])
        values["proof_mode"] = ProofMode(values["proof_mode"])
        return cls(job_id=bytes(job_id), **values)
