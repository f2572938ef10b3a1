"""Token jobs on chain (``ITokenMarket``): the signed quote, a model's re-execution tier, the job
record and its states, and how a token sequence is encoded and committed.

No web3 here: the provider, the requester and the re-executors build and check these off chain;
:class:`~tender.chain.TokenMarket` sends them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import astuple, dataclass, fields
from typing import Any

import coincurve
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

from tender.chain._jobs import JobState
from tender.chain._structs import IntStruct
from tender.errors import ChainError
from tender.intents import eip712_digest, eip712_type, hash_struct, sign_digest, struct_fields

#: ``TokenQuote``'s fields (Solidity name, Python name, ABI type), in declaration order.
TOKEN_QUOTE_FIELDS = struct_fields(
    "address requester",
    "address provider",
    "bytes32 modelId",
    "bytes32 requestHash",
    "uint32 maxTokens",
    "uint96 pricePer1k",
    "uint32 latency",
    "uint64 expiry",
    "uint256 salt",
)
TOKEN_QUOTE_TYPEHASH = keccak(text=eip712_type("TokenQuote", TOKEN_QUOTE_FIELDS))


@dataclass(frozen=True, slots=True)
class TokenQuote:
    """A provider's firm offer for one token job (``ITokenMarket.TokenQuote``); its EIP-712
    digest is the job id.

    Attributes:
        requester: the only account that may open it.
        provider: the staked provider that generates, is paid and is slashed.
        model_id: a token model registered in the market.
        request_hash: :func:`request_hash` of the prompt and the sampling rule.
        max_tokens: the budget; fewer tokens only when the last one is EOS.
        price_per1k: payment-token units per 1,000 tokens.
        latency: promised seconds from open to delivery.
        expiry: the quote may be taken strictly before this time.
        salt: makes two otherwise equal quotes two jobs.
    """

    requester: str
    provider: str
    model_id: bytes
    request_hash: bytes
    max_tokens: int
    price_per1k: int
    latency: int
    expiry: int
    salt: int

    def to_abi(self) -> tuple[Any, ...]:
        return astuple(self)

    def digest(self, *, chain_id: int, market: str) -> bytes:
        """The job id: what the provider (or its solver) signs."""
        return eip712_digest(
            hash_struct(TOKEN_QUOTE_TYPEHASH, self, TOKEN_QUOTE_FIELDS), chain_id=chain_id, market=market
        )

    def sign(self, key: str | bytes | coincurve.PrivateKey, *, chain_id: int, market: str) -> bytes:
        return sign_digest(self.digest(chain_id=chain_id, market=market), key)

    def to_json(self) -> dict[str, Any]:
        """The quote as a desk answers it (``POST /tokens/quote``: ids as 0x hex, amounts as strings)."""
        return {
            "requester": self.requester,
            "provider": self.provider,
            "model_id": "0x" + self.model_id.hex(),
            "request_hash": "0x" + self.request_hash.hex(),
            "max_tokens": self.max_tokens,
            "price_per1k": str(self.price_per1k),
            "latency": self.latency,
            "expiry": self.expiry,
            "salt": str(self.salt),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TokenQuote:
        """The quote of :meth:`to_json` (``KeyError``/``ValueError``/``TypeError`` when malformed)."""
        return cls(
            requester=to_checksum_address(str(data["requester"])),
            provider=to_checksum_address(str(data["provider"])),
            model_id=bytes.fromhex(str(data["model_id"]).removeprefix("0x")),
            request_hash=bytes.fromhex(str(data["request_hash"]).removeprefix("0x")),
            max_tokens=int(data["max_tokens"]),
            price_per1k=int(data["price_per1k"]),
            latency=int(data["latency"]),
            expiry=int(data["expiry"]),
            salt=int(data["salt"]),
        )

    @property
    def escrow(self) -> int:
        """``escrowFor(price_per1k, max_tokens)``: what ``open`` takes from the requester."""
        return escrow_for(self.price_per1k, self.max_tokens)


@dataclass(frozen=True, slots=True)
class TokenModelConfig(IntStruct):
    """A token model's re-execution tier (``ITokenMarket.TokenModelConfig``)."""

    eos_id: int
    vocab_size: int
    max_tokens: int
    audit_rate_bps: int
    stake_multiple: int
    quorum: int
    min_reexecutor_stake: int


@dataclass(frozen=True, slots=True)
class TokenJob:
    """What the market stores per token job (``ITokenMarket.TokenJob``)."""

    requester: str
    opened_at: int
    due: int
    state: JobState
    audit_drawn: bool
    provider: str
    delivered_block: int
    delivered_at: int
    delivered: int
    challenger: str
    vote_deadline: int
    votes_faithful: int
    votes_unfaithful: int
    model_id: bytes
    max_tokens: int
    price_per1k: int
    stake_locked: int
    escrow: int
    bond: int
    output_hash: bytes

    @classmethod
    def from_abi(cls, values: Sequence[Any]) -> TokenJob:
        data = dict(zip((f.name for f in fields(cls)), values, strict=True))
        data["state"] = JobState(int(data["state"]))
        data["model_id"] = bytes(data["model_id"])
        data["output_hash"] = bytes(data["output_hash"])
        return cls(**data)

    @property
    def paid(self) -> int:
        """What settlement credits the provider: the delivered tokens at the quoted price."""
        return self.price_per1k * self.delivered // 1000


def escrow_for(price_per1k: int, tokens: int) -> int:
    """``TokenMarket.escrowFor``: ``ceil(price_per1k * tokens / 1000)``."""
    return (price_per1k * tokens + 999) // 1000


def encode_tokens(ids: Sequence[int]) -> bytes:
    """The on-chain form of a token sequence: uint32 big-endian ids (``deliver``'s calldata)."""
    try:
        return b"".join(int(i).to_bytes(4, "big") for i in ids)
    except OverflowError as exc:
        raise ChainError(f"a token id does not fit uint32: {exc}") from exc


def decode_tokens(data: bytes) -> list[int]:
    """The ids of :func:`encode_tokens` (``TokenDelivered.tokens``)."""
    if len(data) % 4:
        raise ChainError(f"a token sequence is whole uint32 ids; got {len(data)} bytes")
    return [int.from_bytes(data[i : i + 4], "big") for i in range(0, len(data), 4)]


def token_output_hash(ids: Sequence[int]) -> bytes:
    """The job's output commitment: keccak256 of :func:`encode_tokens`."""
    return keccak(encode_tokens(ids))


def request_hash(prompt: Sequence[int], *, temperature: float = 0.0, top_k: int = 0, seed: int = 0) -> bytes:
    """What a quote binds of the request: keccak256(abi.encode(uint32[] prompt, temperature in
    millionths, top_k, seed)); re-executors recompute it from the request they are given."""
    return keccak(
        abi_encode(
            ["uint32[]", "uint64", "uint32", "uint64"],
            [list(prompt), round(temperature * 1_000_000), top_k, seed],
        )
    )
