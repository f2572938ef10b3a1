"""Signed quotes and result commitments of the ``QuoteMarket`` (EIP-712, as the contract hashes them).

A provider (or a solver it authorised in ``Staking``) signs a :class:`Quote` for one job (the
intent's digest on the quote market); the requester picks one and opens and awards the job in one
transaction (``QuoteMarket.openAwarded``), either sending it itself or signing the quote's digest
as its acceptance for a relayer. When the provider hands its output to the requester off-chain it
signs a result commitment ``(jobId, keccak256(abi.encode(output)))``: a different output proved on
chain later costs it the job's stake (``slashCommitment``).

Example::

    quote = Quote(job_id=job, provider=me, price=10**17, latency=30, expiry=now + 5)
    signature = sign_quote(quote, key, chain_id=31337, market=quote_market)
    assert recover_quote_signer(quote, signature, chain_id=31337, market=quote_market) == me
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import coincurve
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

from tender.errors import IntentError
from tender.intents import (
    eip712_digest,
    eip712_type,
    hash_struct,
    recover_digest_signer,
    sign_digest,
    struct_fields,
)

__all__ = [
    "COMMITMENT_TYPE",
    "COMMITMENT_TYPEHASH",
    "QUOTE_TYPE",
    "QUOTE_TYPEHASH",
    "Quote",
    "QuotedJob",
    "commitment_digest",
    "output_hash",
    "quote_digest",
    "recover_commitment_signer",
    "recover_quote_signer",
    "sign_commitment",
    "sign_quote",
]

#: ``Quote``'s fields.
QUOTE_FIELDS = struct_fields(
    "bytes32 jobId", "address provider", "uint256 price", "uint32 latency", "uint64 expiry"
)
QUOTE_TYPE = eip712_type("Quote", QUOTE_FIELDS)
QUOTE_TYPEHASH = keccak(text=QUOTE_TYPE)
COMMITMENT_TYPE = "ResultCommitment(bytes32 jobId,bytes32 outputHash)"
COMMITMENT_TYPEHASH = keccak(text=COMMITMENT_TYPE)


@dataclass(frozen=True, slots=True)
class Quote:
    """A provider's firm offer for one job (``IQuoteMarket.Quote``).

    Attributes:
        job_id: the job (the intent's EIP-712 digest on the quote market).
        provider: the staked provider that does the work and is paid.
        price: token units asked, ``0 < price <= intent.max_price``.
        latency: promised seconds from award to delivery.
        expiry: the quote may be taken strictly before this unix time.
    """

    job_id: bytes
    provider: str
    price: int
    latency: int
    expiry: int

    def __post_init__(self) -> None:
        if len(self.job_id) != 32:
            raise IntentError("quote job_id: a job id is 32 bytes")
        object.__setattr__(self, "provider", to_checksum_address(self.provider))
        if not 0 < self.price < 1 << 96:
            raise IntentError(f"quote price: {self.price} is not in (0, 2**96)")
        if not 0 < self.latency < 1 << 32:
            raise IntentError(f"quote latency: {self.latency} is not in (0, 2**32)")
        if not 0 <= self.expiry < 1 << 64:
            raise IntentError(f"quote expiry: {self.expiry} is not a uint64")

    def to_abi(self) -> tuple[bytes, str, int, int, int]:
        return (self.job_id, self.provider, self.price, self.latency, self.expiry)

    def to_json(self) -> dict[str, Any]:
        return {
            "jobId": "0x" + self.job_id.hex(),
            "provider": self.provider,
            "price": str(self.price),
            "latency": self.latency,
            "expiry": self.expiry,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Quote:
        try:
            return cls(
                job_id=bytes.fromhex(str(data["jobId"]).removeprefix("0x")),
                provider=str(data["provider"]),
                price=int(data["price"]),
                latency=int(data["latency"]),
                expiry=int(data["expiry"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise IntentError(f"malformed quote: {exc}") from exc


@dataclass(frozen=True, slots=True)
class QuotedJob:
    """What later steps of a quoted job pass back (``IQuoteMarket.QuotedJob``): the market
    stores only a hash of it. Read it from the ``QuoteAwarded`` event's ``terms``."""

    requester: str
    provider: str
    model_id: bytes
    input_commitment: int
    price: int
    stake_locked: int
    awarded_at: int
    due: int
    fee_bps: int
    #: the model's layout in one word (``LayoutWord``), read from the registry at the award: delivery
    #: makes no registry call. Opaque to callers: pass back what ``QuoteAwarded`` logged.
    layout: int

    def to_abi(self) -> tuple[Any, ...]:
        return (
            self.requester,
            self.provider,
            self.model_id,
            self.input_commitment,
            self.price,
            self.stake_locked,
            self.awarded_at,
            self.due,
            self.fee_bps,
            self.layout,
        )

    @classmethod
    def from_abi(cls, values: Sequence[Any]) -> QuotedJob:
        r, p, m, c, price, stake, at, due, fee, layout = values
        return cls(
            requester=to_checksum_address(r),
            provider=to_checksum_address(p),
            model_id=bytes(m),
            input_commitment=int(c),
            price=int(price),
            stake_locked=int(stake),
            awarded_at=int(at),
            due=int(due),
            fee_bps=int(fee),
            layout=int(layout),
        )

    def hash(self) -> bytes:
        """``keccak256(abi.encode(terms))`` (``QuoteMarket.hashTerms``)."""
        types = [
            "address",
            "address",
            "bytes32",
            "uint256",
            "uint96",
            "uint96",
            "uint40",
            "uint40",
            "uint16",
            "uint256",
        ]
        return keccak(abi_encode(types, list(self.to_abi())))


def quote_digest(quote: Quote, *, chain_id: int, market: str) -> bytes:
    """The EIP-712 digest of ``quote`` on ``market`` (``QuoteMarket.hashQuote``): what the provider
    signs, and what the requester signs to accept it for a relayer."""
    return eip712_digest(hash_struct(QUOTE_TYPEHASH, quote, QUOTE_FIELDS), chain_id=chain_id, market=market)


def sign_quote(quote: Quote, key: str | bytes | coincurve.PrivateKey, *, chain_id: int, market: str) -> bytes:
    """A 65-byte signature of ``quote`` (by the provider or its authorised solver)."""
    return sign_digest(quote_digest(quote, chain_id=chain_id, market=market), key)


def recover_quote_signer(quote: Quote, signature: bytes, *, chain_id: int, market: str) -> str:
    """Who signed ``quote`` (raises :class:`IntentError` for a signature the market refuses)."""
    return recover_digest_signer(quote_digest(quote, chain_id=chain_id, market=market), signature)


def output_hash(output: Sequence[int]) -> bytes:
    """``keccak256(abi.encode(output))`` for a ``uint256[]`` output (the ``Delivered`` event's)."""
    return keccak(abi_encode(["uint256[]"], [list(output)]))


def commitment_digest(job_id: bytes, out_hash: bytes, *, chain_id: int, market: str) -> bytes:
    """The EIP-712 digest of a result commitment (``QuoteMarket.hashCommitment``)."""
    if len(job_id) != 32 or len(out_hash) != 32:
        raise IntentError("a result commitment binds a 32-byte job id and a 32-byte output hash")
    return eip712_digest(keccak(COMMITMENT_TYPEHASH + job_id + out_hash), chain_id=chain_id, market=market)


def sign_commitment(
    job_id: bytes, out_hash: bytes, key: str | bytes | coincurve.PrivateKey, *, chain_id: int, market: str
) -> bytes:
    """The provider's signed promise that ``out_hash`` is the output it will prove for ``job_id``."""
    return sign_digest(commitment_digest(job_id, out_hash, chain_id=chain_id, market=market), key)


def recover_commitment_signer(
    job_id: bytes, out_hash: bytes, signature: bytes, *, chain_id: int, market: str
) -> str:
    """Who signed a result commitment (raises :class:`IntentError` for a refused signature)."""
    return recover_digest_signer(
        commitment_digest(job_id, out_hash, chain_id=chain_id, market=market), signature
    )
