"""ABI helpers: snake_case names, and log decoding with eth-abi against ABI event entries."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_utils import to_checksum_address
from eth_utils.abi import abi_to_signature, collapse_if_tuple
from eth_utils.crypto import keccak
from hexbytes import HexBytes

from tender.intents import snake


def normalise(value: Any, abi_type: str) -> Any:
    """Decoded ABI values as Python likes them: ``bytes`` not ``HexBytes``, tuples kept."""
    if abi_type == "address" and isinstance(value, str):
        return to_checksum_address(value)
    if isinstance(value, HexBytes):
        return bytes(value)
    if isinstance(value, list):
        return tuple(value)
    return value


@dataclass(frozen=True, slots=True)
class DecodedLog:
    """A log matched to an ABI event: its name and arguments (snake_case names)."""

    name: str
    args: dict[str, Any]
    address: str
    block_number: int
    tx_hash: bytes
    log_index: int


class LogDecoder:
    """Decodes logs against ABI ``event`` entries (several contracts' ABIs may be merged)."""

    def __init__(self, abi: Iterable[dict[str, Any]]) -> None:
        self._by_topic: dict[bytes, dict[str, Any]] = {}
        for entry in abi:
            if entry.get("type") == "event" and not entry.get("anonymous"):
                self._by_topic[keccak(text=abi_to_signature(entry))] = entry  # type: ignore[arg-type]

    def topic(self, name: str) -> bytes:
        """The topic0 of the event called ``name``."""
        for topic, entry in self._by_topic.items():
            if entry["name"] == name:
                return topic
        raise KeyError(name)

    @property
    def names(self) -> frozenset[str]:
        """The names of the events this decoder knows."""
        return frozenset(str(entry["name"]) for entry in self._by_topic.values())

    @property
    def topics(self) -> list[bytes]:
        return list(self._by_topic)

    def decode(self, log: Any) -> DecodedLog | None:
        """The decoded log, or ``None`` if its topic0 is unknown or its data malformed."""
        topics = [bytes(HexBytes(t)) for t in log["topics"]]
        if not topics or topics[0] not in self._by_topic:
            return None
        entry = self._by_topic[topics[0]]
        inputs = entry["inputs"]
        indexed = [i for i in inputs if i.get("indexed")]
        plain = [i for i in inputs if not i.get("indexed")]
        if len(topics) - 1 != len(indexed):
            return None
        args: dict[str, Any] = {}
        try:
            for item, topic in zip(indexed, topics[1:], strict=True):
                kind = collapse_if_tuple(item)
                if kind in ("string", "bytes") or kind.endswith("]") or kind.startswith("("):
                    args[snake(item["name"])] = topic  # dynamic types are indexed by their hash
                else:
                    args[snake(item["name"])] = normalise(abi_decode([kind], topic)[0], kind)
            values = abi_decode([collapse_if_tuple(i) for i in plain], bytes(HexBytes(log["data"])))
        except (DecodingError, ValueError, OverflowError):
            return None
        for item, value in zip(plain, values, strict=True):
            args[snake(item["name"])] = normalise(value, collapse_if_tuple(item))
        return DecodedLog(
            name=str(entry["name"]),
            args=args,
            address=str(log["address"]),
            block_number=int(log["blockNumber"]),
            tx_hash=bytes(HexBytes(log["transactionHash"])),
            log_index=int(log["logIndex"]),
        )
