"""Intents: what a requester wants, its EIP-712 form, signatures and job ids.

An :class:`Intent` mirrors the Solidity ``Intent`` struct field by field (snake_case here).
Its job id is the EIP-712 digest under the domain ``("Tender", "1", chainId, market)``, so the
same intent posted to another market or chain is another job::

    intent = Intent(requester=alice, model_id=model, input_commitment=c, max_price=10**18, ...)
    signature = sign_intent(intent, alice_key, chain_id=31337, market=market_address)
    assert recover_signer(intent, signature, chain_id=31337, market=market_address) == alice
    job = job_id(intent, chain_id=31337, market=market_address)   # == market.hashIntent(intent)

The digest is computed directly with ``eth_abi`` and keccak (a few microseconds); the
:func:`typed_data` dict is the same message in the shape wallets and ``eth_account`` expect,
and the tests check that both agree. Signing and recovery use libsecp256k1 (``coincurve``),
about a hundred times faster than the pure-Python path; see ``benchmarks/signatures.py``.

Nonces follow Permit2's unordered bitmap: a nonce's high 248 bits pick a 256-bit word, its low
8 bits a bit in that word, and ``invalidateNonces(word, mask)`` burns any set of bits at once.
"""

from __future__ import annotations

import json
import keyword
import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from enum import IntEnum
from functools import lru_cache
from typing import Any, Final

import coincurve
from eth_utils import keccak, to_checksum_address

from tender.errors import IntentError

__all__ = [
    "DOMAIN_NAME",
    "DOMAIN_VERSION",
    "ERC1271_MAGIC",
    "INTENT_FIELDS",
    "INTENT_TYPE",
    "INTENT_TYPEHASH",
    "MAX_BOOK_LATENCY",
    "MAX_BOOK_PRICE",
    "AuctionType",
    "Bid",
    "Intent",
    "NonceSequence",
    "ProofMode",
    "check_signature",
    "decode_input_uri",
    "domain_separator",
    "eip712_digest",
    "eip712_type",
    "erc1271_accepts",
    "erc1271_calldata",
    "hash_struct",
    "job_id",
    "nonce_bitmap",
    "nonce_position",
    "nonce_used",
    "random_nonce",
    "recover_digest_address",
    "recover_digest_signer",
    "recover_signer",
    "sign_digest",
    "sign_intent",
    "snake",
    "struct_fields",
    "struct_hash",
    "typed_data",
]

DOMAIN_NAME = "Tender"
DOMAIN_VERSION = "1"

#: An EIP-712 struct's fields in declaration order: (solidity name, python name, abi type).
StructFields = tuple[tuple[str, str, str], ...]


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def snake(name: str) -> str:
    """``inputCommitment`` -> ``input_commitment``, ``jobId`` -> ``job_id``, ``_x`` -> ``x``,
    ``from`` -> ``from_`` (Python keywords get a trailing underscore)."""
    out = _CAMEL.sub("_", name.lstrip("_")).lower()
    return out + "_" if keyword.iskeyword(out) else out


def struct_fields(*declarations: str) -> StructFields:
    """A struct's fields from its Solidity declarations (``"uint256 maxPrice"``), in order; each
    field's Python name is :func:`snake` of its Solidity name."""
    return tuple((name, snake(name), abi) for abi, name in (d.split() for d in declarations))


def eip712_type(primary: str, fields: StructFields) -> str:
    """The EIP-712 type string of a struct, ``Name(type1 name1,...)`` (what its typehash hashes)."""
    return primary + "(" + ",".join(f"{abi} {name}" for name, _, abi in fields) + ")"


#: The Intent struct's fields.
INTENT_FIELDS = struct_fields(
    "address requester",
    "bytes32 modelId",
    "uint256 inputCommitment",
    "bytes inputLocation",
    "uint256 maxPrice",
    "uint256 startPrice",
    "uint8 auctionType",
    "uint32 auctionWindow",
    "uint64 deadline",
    "uint8 proofMode",
    "uint256 minStake",
    "bytes2 region",
    "uint16 priceWeightBps",
    "bool allowFailover",
    "uint32 callbackGasLimit",
    "uint256 nonce",
    "uint64 expiry",
)

#: The EIP-712 type string of an Intent (what ``IntentLib.INTENT_TYPEHASH`` hashes).
INTENT_TYPE = eip712_type("Intent", INTENT_FIELDS)
INTENT_TYPEHASH = keccak(text=INTENT_TYPE)

_DOMAIN_TYPEHASH = keccak(
    text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
_NAME_HASH = keccak(text=DOMAIN_NAME)
_VERSION_HASH = keccak(text=DOMAIN_VERSION)

_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

_UINT_MAX = {f"uint{bits}": (1 << bits) - 1 for bits in (8, 16, 32, 64, 256)}


class AuctionType(IntEnum):
    """How the job's price and provider are found (``MarketStructs.AuctionType``)."""

    REVERSE = 0
    DUTCH = 1
    #: request for quotes: opened and awarded in one transaction from a signed quote (``QuoteMarket``)
    QUOTE = 2


class ProofMode(IntEnum):
    """How the output is shown to be right (``MarketStructs.ProofMode``)."""

    ZK = 0
    OPTIMISTIC = 1


@dataclass(frozen=True, slots=True)
class Intent:
    """A requester's order, field for field the Solidity ``Intent`` struct.

    Addresses are checksummed strings, ``bytes32``/``bytes2`` are :class:`bytes` of that
    length, amounts are integers in token base units, times are Unix seconds.
    ``input_commitment`` is :func:`tender.models.input_commitment` of the input with the model's
    bundle: ``keccak256`` of the input's KZG point for polycommit models (the default; the
    market compares it with ``keccak256(proof[0:64])``), the Poseidon hash for hashed ones.
    """

    requester: str
    model_id: bytes
    input_commitment: int
    max_price: int
    deadline: int
    input_location: bytes = b""
    start_price: int = 0
    auction_type: AuctionType = AuctionType.REVERSE
    auction_window: int = 0
    proof_mode: ProofMode = ProofMode.ZK
    min_stake: int = 0
    region: bytes = b"\x00\x00"
    price_weight_bps: int = 10_000
    allow_failover: bool = False
    callback_gas_limit: int = 0
    nonce: int = 0
    expiry: int = 0

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "requester", to_checksum_address(self.requester))
        except ValueError as exc:
            raise IntentError(f"requester is not an address: {self.requester!r}") from exc
        object.__setattr__(self, "auction_type", AuctionType(self.auction_type))
        object.__setattr__(self, "proof_mode", ProofMode(self.proof_mode))
        if len(self.model_id) != 32:
            raise IntentError(f"model_id must be 32 bytes, got {len(self.model_id)}")
        if len(self.region) != 2:
            raise IntentError(f"region must be 2 bytes, got {len(self.region)}")
        for _, name, abi in INTENT_FIELDS:
            limit = _UINT_MAX.get(abi)
            if limit is not None and not 0 <= int(getattr(self, name)) <= limit:
                raise IntentError(f"{name} out of range for {abi}: {getattr(self, name)}")
        if self.auction_type == AuctionType.REVERSE and self.max_price > MAX_BOOK_PRICE:
            raise IntentError(
                f"max_price: a reverse auction's is at most 2**80 - 1 (one bid book word), got {self.max_price}"
            )

    def replace(self, **changes: Any) -> Intent:
        """A copy with some fields changed (``intent.replace(nonce=random_nonce())``)."""
        return replace(self, **changes)

    # -- ABI ---------------------------------------------------------------------------

    def to_abi(self) -> tuple[Any, ...]:
        """The struct as the tuple web3 passes to a contract function."""
        return tuple(
            int(value) if isinstance(value, IntEnum) else value
            for value in (getattr(self, name) for _, name, _ in INTENT_FIELDS)
        )

    @classmethod
    def from_abi(cls, values: Sequence[Any]) -> Intent:
        """The inverse of :meth:`to_abi` (a decoded struct tuple or event argument)."""
        if len(values) != len(INTENT_FIELDS):
            raise IntentError(f"an Intent tuple has {len(INTENT_FIELDS)} fields, got {len(values)}")
        return cls(**{name: value for (_, name, _), value in zip(INTENT_FIELDS, values, strict=True)})

    # -- JSON (hex strings for bytes, decimal strings for big integers) ------------------

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict with the Solidity field names (what the intent feed carries)."""
        out: dict[str, Any] = {}
        for sol, name, abi in INTENT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bytes):
                out[sol] = "0x" + value.hex()
            elif abi == "uint256":
                out[sol] = str(value)
            elif isinstance(value, IntEnum):
                out[sol] = int(value)
            else:
                out[sol] = value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Intent:
        """The inverse of :meth:`to_json`; raises :class:`IntentError` on a missing or malformed
        field (integers as numbers, decimal strings, leading zeros allowed, or ``0x`` hex)."""
        values: dict[str, Any] = {}
        for sol, name, abi in INTENT_FIELDS:
            if sol not in data:
                raise IntentError(f"intent field {sol!r} is missing")
            raw = data[sol]
            try:
                if abi.startswith("bytes"):
                    values[name] = bytes.fromhex(str(raw).removeprefix("0x"))
                elif abi == "bool":
                    values[name] = bool(raw)
                elif abi == "address":
                    values[name] = str(raw)
                elif isinstance(raw, str):
                    values[name] = int(raw, 16) if raw[:2].lower() == "0x" else int(raw, 10)
                else:
                    values[name] = int(raw)
            except (ValueError, TypeError) as exc:
                raise IntentError(f"intent field {sol!r} is malformed: {raw!r:.80}") from exc
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict with the Python names."""
        return asdict(self)


#: A reverse-auction bid book side is one storage word (``ReverseAuctionMarket``): a reverse intent's
#: ``max_price`` is at most this (1.2M tokens of 18 decimals) ...
MAX_BOOK_PRICE: Final = 2**80 - 1
#: ... and a bid promises at most this many seconds of latency (9 h 6 min), whatever the deadline.
MAX_BOOK_LATENCY: Final = 2**15 - 1


@dataclass(frozen=True, slots=True)
class Bid:
    """A solver's offer for a provider (``MarketStructs.Bid``)."""

    provider: str
    price: int
    latency: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "provider", to_checksum_address(self.provider))

    def to_abi(self) -> tuple[str, int, int]:
        return (self.provider, self.price, self.latency)

    @classmethod
    def from_abi(cls, values: Sequence[Any]) -> Bid:
        provider, price, latency = values
        return cls(provider=provider, price=int(price), latency=int(latency))


# -- EIP-712 ---------------------------------------------------------------------------


def _keccak_impl() -> Callable[[bytes], bytes]:
    try:  # safe-pysha3: ~1.5 us a hash, ten times faster than eth-hash's pycryptodome backend
        import sha3  # type: ignore[import-not-found,import-untyped,unused-ignore]

        def fast(data: bytes) -> bytes:
            return bytes(sha3.keccak_256(data).digest())

        return fast
    except ImportError:
        return keccak


_keccak = _keccak_impl()


def _word(value: Any, abi: str) -> bytes:
    """One 32-byte ABI word of a static value (what ``abi.encode`` does, without eth-abi)."""
    if abi == "address":
        return bytes(12) + bytes.fromhex(value[2:])
    if abi == "bool":
        return (1 if value else 0).to_bytes(32, "big")
    if abi == "bytes":  # EIP-712 encodes dynamic bytes as their hash
        return _keccak(value)
    if abi.startswith("bytes"):
        return bytes(value).ljust(32, b"\x00")
    return int(value).to_bytes(32, "big")


@lru_cache(maxsize=256)
def domain_separator(*, chain_id: int, market: str) -> bytes:
    """The EIP-712 domain separator of a market (``EIP712._domainSeparatorV4()``)."""
    return _keccak(
        _DOMAIN_TYPEHASH
        + _NAME_HASH
        + _VERSION_HASH
        + chain_id.to_bytes(32, "big")
        + _word(to_checksum_address(market), "address")
    )


def hash_struct(typehash: bytes, value: Any, fields: StructFields) -> bytes:
    """EIP-712 ``hashStruct``: keccak of the typehash and ``value``'s encoded ``fields``."""
    return _keccak(typehash + b"".join(_word(getattr(value, name), abi) for _, name, abi in fields))


def eip712_digest(struct: bytes, *, chain_id: int, market: str) -> bytes:
    """What is signed: keccak of ``0x1901``, the market's domain separator and ``struct``'s hash."""
    return _keccak(b"\x19\x01" + domain_separator(chain_id=chain_id, market=market) + struct)


def struct_hash(intent: Intent) -> bytes:
    """``IntentLib.hash(intent)``: keccak of the typehash and the encoded fields."""
    return hash_struct(INTENT_TYPEHASH, intent, INTENT_FIELDS)


def job_id(intent: Intent, *, chain_id: int, market: str) -> bytes:
    """The job id: the EIP-712 digest of ``intent`` for ``market`` on ``chain_id``.

    It equals ``market.hashIntent(intent)`` and is what the requester signs.
    """
    return eip712_digest(struct_hash(intent), chain_id=chain_id, market=market)


def _json_unsafe(abi: str) -> bool:
    """Whether values of the integer type ``abi`` can exceed 2**53 (JavaScript's safe integers)."""
    return abi.startswith(("uint", "int")) and int(abi.lstrip("uint") or 256) > 53


def typed_data(intent: Intent, *, chain_id: int, market: str, json_safe: bool = False) -> dict[str, Any]:
    """The full EIP-712 message for ``eth_account`` (``sign_typed_data(full_message=...)``).

    With ``json_safe=True`` it is what a wallet's ``eth_signTypedData_v4`` takes over JSON-RPC
    (the digest is the same): bytes are ``0x`` hex, and every integer whose type can exceed 2**53
    (``uint64`` times, ``uint256`` amounts and nonces, and the domain's ``chainId``) is a decimal
    string, since JavaScript's ``JSON.parse`` rounds larger numbers (``expiry = 2**64 - 1`` is
    valid on chain). Smaller integer types stay numbers.
    """
    message: dict[str, Any] = {}
    for sol, name, abi in INTENT_FIELDS:
        value = getattr(intent, name)
        if isinstance(value, IntEnum):
            value = int(value)
        if json_safe and isinstance(value, bytes):
            value = "0x" + value.hex()
        elif json_safe and _json_unsafe(abi):
            value = str(int(value))
        message[sol] = value
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Intent": [{"name": sol, "type": abi} for sol, _, abi in INTENT_FIELDS],
        },
        "primaryType": "Intent",
        "domain": {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": str(int(chain_id)) if json_safe else chain_id,
            "verifyingContract": to_checksum_address(market),
        },
        "message": message,
    }


# -- signatures ------------------------------------------------------------------------


def _key_bytes(key: str | bytes) -> bytes:
    if isinstance(key, str):
        key = bytes.fromhex(key.removeprefix("0x"))
    if len(key) != 32:
        raise IntentError("a private key is 32 bytes")
    return key


def sign_digest(digest: bytes, key: str | bytes | coincurve.PrivateKey) -> bytes:
    """A 65-byte ``r || s || v`` signature (``v`` in {27, 28}, low ``s``) of a 32-byte digest.

    A signer on a hot path passes a built :class:`coincurve.PrivateKey` (parsing a hex key
    costs more than the signature)."""
    if len(digest) != 32:
        raise IntentError("a digest is 32 bytes")
    signer = key if isinstance(key, coincurve.PrivateKey) else coincurve.PrivateKey(_key_bytes(key))
    raw = signer.sign_recoverable(digest, hasher=None)
    return raw[:64] + bytes([raw[64] + 27])


def sign_intent(intent: Intent, key: str | bytes, *, chain_id: int, market: str) -> bytes:
    """Sign ``intent`` for ``market`` on ``chain_id`` (the same bytes ``eth_account`` gives)."""
    return sign_digest(job_id(intent, chain_id=chain_id, market=market), key)


def recover_digest_address(digest: bytes, signature: bytes) -> bytes:
    """The 20-byte address that signed ``digest``, by the market's own rule.

    This is the one signature rule of Tender, the one OpenZeppelin's ``ECDSA.tryRecover`` (what
    the market's ``SignatureChecker`` runs for an EOA) applies: exactly 65 bytes ``r || s || v``,
    ``v`` 27 or 28 (not 0/1), ``s`` in the lower half of the curve order (no malleable twin),
    and a recovery that succeeds. SDK, solver and provider all check with it, so nothing they
    accept can be refused on chain. Raises :class:`IntentError` otherwise.
    """
    if len(signature) != 65:
        raise IntentError(f"a signature is 65 bytes (r, s, v), got {len(signature)}")
    v = signature[64]
    s = int.from_bytes(signature[32:64], "big")
    if v not in (27, 28):
        raise IntentError(f"malformed signature: v is {v}, the market takes 27 or 28")
    if s > _SECP256K1_N // 2:
        raise IntentError("malformed signature: s in the upper half of the curve order (use its low-s twin)")
    try:
        public = coincurve.PublicKey.from_signature_and_message(
            signature[:64] + bytes([v - 27]), digest, hasher=None
        )
    except ValueError as exc:
        raise IntentError(f"signature does not recover: {exc}") from exc
    return _keccak(public.format(compressed=False)[1:])[-20:]


def recover_digest_signer(digest: bytes, signature: bytes) -> str:
    """The checksummed address that signed ``digest`` (:func:`recover_digest_address`'s rule);
    raises :class:`IntentError` if the market would refuse the signature."""
    return _checksum(recover_digest_address(digest, signature))


def _checksum(raw: bytes) -> str:
    """EIP-55 checksum of a 20-byte address (eth-utils' version is several times slower)."""
    lower = raw.hex()
    mask = _keccak(lower.encode()).hex()[:40]
    return "0x" + "".join(c.upper() if int(m, 16) >= 8 else c for c, m in zip(lower, mask, strict=True))


def recover_signer(intent: Intent, signature: bytes, *, chain_id: int, market: str) -> str:
    """The address that signed ``intent`` for ``market`` on ``chain_id``."""
    return recover_digest_signer(job_id(intent, chain_id=chain_id, market=market), signature)


#: ``IERC1271.isValidSignature.selector``, the answer of a contract that accepts a signature.
ERC1271_MAGIC = keccak(text="isValidSignature(bytes32,bytes)")[:4]


def erc1271_calldata(digest: bytes, signature: bytes) -> bytes:
    """The ``isValidSignature(digest, signature)`` call the market makes on a contract requester."""
    from eth_abi import encode

    return ERC1271_MAGIC + encode(["bytes32", "bytes"], [digest, signature])


def erc1271_accepts(result: bytes) -> bool:
    """Whether ``isValidSignature``'s return data says yes, exactly as OpenZeppelin's
    ``SignatureChecker`` reads it: at least 32 bytes whose first word is the selector."""
    return len(result) >= 32 and result[:32] == ERC1271_MAGIC.ljust(32, b"\0")


def check_signature(intent: Intent, signature: bytes, *, chain_id: int, market: str) -> None:
    """Raise :class:`IntentError` unless ``intent.requester`` signed ``intent``.

    This is the market's check for a requester without code (:func:`recover_digest_address`);
    for a contract requester the market asks the contract instead (ERC-1271): callers with
    chain access then make the :func:`erc1271_calldata` call and read it with
    :func:`erc1271_accepts` (the solver and the SDK do).
    """
    signer = recover_signer(intent, signature, chain_id=chain_id, market=market)
    if signer != intent.requester:
        raise IntentError(f"intent signed by {signer}, not by its requester {intent.requester}")


# -- nonces (Permit2-style unordered bitmap) -------------------------------------------


def random_nonce() -> int:
    """A fresh random 256-bit nonce (collisions are negligible; no chain read needed)."""
    return secrets.randbits(256)


class NonceSequence:
    """Sequential nonces that reuse bitmap words: a random 248-bit word, then its 256 bits in
    order, then another random word. Every intent but one in 256 flips a bit of a word that is
    already non-zero (~5k gas instead of ~22k for a fresh word) and no chain read is needed;
    two processes never share a word (random words). Not thread-safe: one per client.
    """

    def __init__(self, word: int | None = None) -> None:
        self._word = secrets.randbits(248) if word is None else word
        self._bit = 0

    def next(self) -> int:
        """The next nonce."""
        if self._bit == 256:
            self._word, self._bit = secrets.randbits(248), 0
        nonce = self._word << 8 | self._bit
        self._bit += 1
        return nonce


def nonce_position(nonce: int) -> tuple[int, int]:
    """``(word, bit)``: the bitmap word holding ``nonce`` and its bit in that word."""
    if not 0 <= nonce < 1 << 256:
        raise IntentError(f"nonce out of range: {nonce}")
    return nonce >> 8, nonce & 0xFF


def nonce_bitmap(nonces: Iterable[int]) -> dict[int, int]:
    """``{word: mask}`` covering ``nonces``: one ``invalidateNonces(word, mask)`` per entry."""
    masks: dict[int, int] = {}
    for nonce in nonces:
        word, bit = nonce_position(nonce)
        masks[word] = masks.get(word, 0) | (1 << bit)
    return masks


def nonce_used(bitmap_word: int, nonce: int) -> bool:
    """Whether ``nonce``'s bit is set in its bitmap word (as read from the market)."""
    return bool(bitmap_word >> nonce_position(nonce)[1] & 1)


_DATA_PREFIX = "data:application/json,"


def decode_input_uri(location: bytes) -> Any:
    """The input an intent's ``inputLocation`` holds inline (JSON, or a ``data:`` URI of JSON);
    ``None`` for a location that points elsewhere (``https://``, ``ipfs://``...).

    Raises:
        ValueError: inline bytes that are not JSON.
    """
    text = location.decode(errors="replace")
    if text.startswith(_DATA_PREFIX):
        text = text[len(_DATA_PREFIX) :]
    elif not text.lstrip().startswith(("[", "{")):
        return None
    return json.loads(text)
