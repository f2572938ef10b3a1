"""Wire types: the JSON bodies that cross HTTP between requesters, solvers and providers.

These are pydantic models, kept apart from the plain dataclasses the roles use inside
(``tender.intents.Intent``). Numbers that can exceed 2**53 (prices, field elements) travel as
decimal strings; bytes travel as 0x-prefixed hex.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from annotated_types import Ge, Le
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

Hex = Annotated[str, StringConstraints(pattern=r"^0x(?:[0-9a-fA-F]{2})*$")]  # bytes: an even number of digits
Address = Annotated[str, StringConstraints(pattern=r"^0x[0-9a-fA-F]{40}$")]
Bytes32 = Annotated[str, StringConstraints(pattern=r"^0x[0-9a-fA-F]{64}$")]
BigInt = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,78}$")]
#: The largest integer every JSON parser reads exactly (I-JSON, RFC 7493): integer fields stay
#: within it, so a schema's bounds mean the same to every validator (larger numbers travel as
#: decimal strings, see ``BigInt``). 2**53 seconds is 285 million years.
JSON_SAFE_INT = 2**53 - 1


def _json_integer(value: Any) -> Any:
    """A JSON Schema ``integer``: ``3`` or ``3.0``, never ``true`` nor ``"3"`` (the request types
    are strict; this lets the integral floats through that JSON Schema counts as integers)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# Integers as JSON Schema has them (the bounds go before the validator, so the schema shows them).
_JsonInt = BeforeValidator(_json_integer)
#: Unix seconds.
Seconds = Annotated[int, Ge(0), Le(JSON_SAFE_INT), _JsonInt]
#: An EIP-155 chain id.
ChainId = Annotated[int, Ge(1), Le(JSON_SAFE_INT), _JsonInt]
#: A Solidity ``uint32`` (windows, gas limits).
Uint32 = Annotated[int, Ge(0), Le(2**32 - 1), _JsonInt]
#: Basis points, 0 to 10,000.
Bps = Annotated[int, Ge(0), Le(10_000), _JsonInt]
#: 0 or 1 (an enum index); not ``false`` (``Literal[0, 1]`` would take it)
Bit = Annotated[int, Ge(0), Le(1), _JsonInt]
#: ``AuctionType``: 0 reverse, 1 Dutch, 2 quote
AuctionKind = Annotated[int, Ge(0), Le(2), _JsonInt]


class Wire(BaseModel):
    """Base of every wire type: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class RequestWire(Wire):
    """Base of the bodies a role receives: strict, so JSON types are never coerced (``false``
    is not the integer 0, ``"1"`` is not the number 1), as the OpenAPI schemas say."""

    model_config = ConfigDict(extra="forbid", strict=True)


class IntentWire(RequestWire):
    """An intent as JSON (field names follow the Solidity struct)."""

    requester: Address
    modelId: Bytes32
    inputCommitment: BigInt
    inputLocation: Hex = "0x"
    maxPrice: BigInt
    startPrice: BigInt = "0"
    auctionType: AuctionKind
    auctionWindow: Uint32
    deadline: Seconds
    proofMode: Bit
    minStake: BigInt = "0"
    region: Annotated[str, StringConstraints(pattern=r"^0x[0-9a-fA-F]{4}$")] = "0x0000"
    priceWeightBps: Bps
    allowFailover: bool = False
    callbackGasLimit: Uint32 = 0
    nonce: BigInt
    expiry: Seconds


class SignedIntentWire(RequestWire):
    """An off-chain intent with the requester's EIP-712 signature, as broadcast to solvers."""

    intent: IntentWire
    signature: Hex
    market: Address
    chainId: ChainId
    jobId: Bytes32


class IntentReceipt(Wire):
    """A solver's answer to a signed intent it checked: new to it, or known already."""

    jobId: Bytes32
    status: Literal["accepted", "known"]


class QuoteRequest(RequestWire):
    """A solver asks a provider what it would charge for an intent's job."""

    jobId: Bytes32
    market: Address
    chainId: ChainId
    intent: IntentWire


class Quote(Wire):
    """A provider's signed offer: it will do the job for ``price`` within ``latency_s``."""

    status: Literal["quote"] = "quote"
    jobId: Bytes32
    provider: Address
    price: BigInt
    latency_s: int = Field(gt=0)
    capacity: int = Field(ge=0, description="jobs it can still take now")
    region: str
    expires_at: int = Field(description="unix seconds after which the quote no longer holds")
    signature: Hex = Field(description="the provider key's EIP-191 signature over quote_digest()")


class QuoteRefusal(Wire):
    """A provider declines an intent, saying why (unknown model, below cost, no capacity...)."""

    status: Literal["refused"] = "refused"
    jobId: Bytes32
    provider: Address
    reason: str


class JobInput(RequestWire):
    """The input of an awarded job, sent by the winning solver (or the requester) to the provider."""

    jobId: Bytes32
    market: Address
    input: list[float] | list[list[float]] | list[list[list[float]]] | list[list[list[list[float]]]]


class JobStatus(Wire):
    """What a provider knows about a job."""

    jobId: Bytes32
    state: str
    output: list[float] | None = None
    outputFelts: list[BigInt] | None = None
    proof: Hex | None = None
    txHashes: dict[str, Hex] = Field(default_factory=dict)
    error: str | None = None


class ErrorBody(Wire):
    """Every 4xx/5xx JSON body: a machine code, a message, and the field it is about."""

    error: str
    message: str
    field: str | None = None


def quote_digest(quote: Quote) -> bytes:
    """The 32 bytes a provider signs (EIP-191, ``personal_sign``) to vouch for ``quote``:
    ``keccak256(abi.encode(jobId, provider, price, latency_s, expires_at))``.

    Every field is a static ABI type, so the encoding is five 32-byte words, built directly
    (``eth_abi.encode`` gives the same bytes about fifty times slower).
    """
    from eth_utils import keccak

    return keccak(
        bytes.fromhex(quote.jobId[2:])
        + bytes.fromhex(quote.provider[2:]).rjust(32, b"\0")
        + int(quote.price).to_bytes(32, "big")
        + quote.latency_s.to_bytes(32, "big")
        + quote.expires_at.to_bytes(32, "big")
    )


class TokenQuoteRequest(BaseModel):
    """``POST /tokens/quote``'s body (a token desk's, and a solver's that asks its desks)."""

    requester: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    prompt: list[int] = Field(min_length=1, max_length=4096)
    max_tokens: int = Field(ge=1, le=4096)
    temperature: float = Field(default=0.0, ge=0.0, le=10.0)
    top_k: int = Field(default=0, ge=0)
    seed: int = Field(default=0, ge=0, lt=2**63)
    max_price_per1k: int = Field(gt=0, lt=2**96, description="the requester's cap per 1,000 tokens")


class TokenStreamRequest(BaseModel):
    """``POST /tokens/stream``'s body: the job the requester opened from one of our quotes."""

    job_id: str = Field(pattern=r"^0x[0-9a-fA-F]{64}$")
