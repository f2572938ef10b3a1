"""Revert decoding: raw revert data to :class:`~tender.errors.ContractRevert`.

The selectors come from the ABI's ``error`` entries (the combined ABI of every Tender
contract, plus the two built-ins ``Error(string)`` and ``Panic(uint256)`` that the Solidity ABI
specification defines); nothing is copied by hand.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any, cast

from eth_abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_typing import ABIError
from eth_utils.abi import abi_to_signature, get_abi_input_names, get_abi_input_types
from eth_utils.crypto import keccak
from web3.exceptions import ContractLogicError

from tender.chain._abi import normalise
from tender.chain._artifacts import TENDER_CONTRACTS, combined_abi, load_artifact
from tender.errors import ContractRevert

#: The built-in errors of the Solidity ABI specification.
BUILTIN_ERRORS: tuple[dict[str, Any], ...] = (
    {"type": "error", "name": "Error", "inputs": [{"name": "message", "type": "string"}]},
    {"type": "error", "name": "Panic", "inputs": [{"name": "code", "type": "uint256"}]},
)


@dataclass(frozen=True, slots=True)
class _ErrorAbi:
    name: str
    types: tuple[str, ...]
    names: tuple[str, ...]


class RevertDecoder:
    """Decodes revert data against a set of ABI ``error`` entries.

    Example::

        decoder = RevertDecoder(artifact.abi)
        decoder.decode(bytes.fromhex("..."))   # ContractRevert("BidNotBetter", {...})
    """

    def __init__(self, abi: Iterable[dict[str, Any]]) -> None:
        self._by_selector: dict[bytes, _ErrorAbi] = {}
        for raw in (*BUILTIN_ERRORS, *abi):
            if raw.get("type") != "error":
                continue
            entry = cast(ABIError, raw)
            selector = keccak(text=abi_to_signature(entry))[:4]
            names = tuple(name or f"arg{i}" for i, name in enumerate(get_abi_input_names(entry)))
            self._by_selector[selector] = _ErrorAbi(entry["name"], tuple(get_abi_input_types(entry)), names)

    @property
    def names(self) -> frozenset[str]:
        """The names of every error this decoder knows."""
        return frozenset(error.name for error in self._by_selector.values())

    def selector(self, name: str) -> bytes:
        """The 4-byte selector of the error called ``name``."""
        for selector, error in self._by_selector.items():
            if error.name == name:
                return selector
        raise KeyError(name)

    def decode(self, data: bytes | str | None) -> ContractRevert:
        """The revert described by ``data`` (``ContractRevert("unknown")`` if unrecognised)."""
        raw = _as_bytes(data)
        if len(raw) < 4:
            return ContractRevert("unknown", {}, raw)
        error = self._by_selector.get(raw[:4])
        if error is None:
            return ContractRevert("unknown", {"selector": "0x" + raw[:4].hex()}, raw)
        try:
            values = abi_decode(list(error.types), raw[4:])
        except (DecodingError, ValueError, OverflowError):
            return ContractRevert(error.name, {}, raw)
        args = {
            name: normalise(value, kind)
            for name, kind, value in zip(error.names, error.types, values, strict=True)
        }
        return ContractRevert(error.name, args, raw)

    def from_exception(self, exc: BaseException) -> ContractRevert | None:
        """The revert carried by a web3 or RPC exception, or ``None`` if it carries none."""
        data = revert_data(exc)
        if data is None:
            return None
        return self.decode(data)


def _as_bytes(data: bytes | str | None) -> bytes:
    if data is None:
        return b""
    if isinstance(data, bytes):
        return data
    try:
        return bytes.fromhex(data.removeprefix("0x"))
    except ValueError:
        return b""


def revert_data(exc: BaseException) -> bytes | None:
    """The raw revert data inside a web3 exception (``None`` when it is not a revert)."""
    if isinstance(exc, ContractLogicError):
        data = exc.data
        if isinstance(data, dict):
            data = data.get("data")  # type: ignore[assignment]
        return _as_bytes(data if isinstance(data, str | bytes) else None)
    # Some providers surface the JSON-RPC error object as the first argument.
    for arg in exc.args:
        if isinstance(arg, dict):
            message = str(arg.get("message", ""))
            data = arg.get("data")
            if isinstance(data, dict):
                data = data.get("data")
            if isinstance(data, str) and ("revert" in message or data.startswith("0x")):
                return _as_bytes(data)
            if "revert" in message:
                return b""
    return None


def tender_decoder(extra: tuple[str, ...] = ()) -> RevertDecoder:
    """A decoder over the errors of every Tender contract (plus ``extra`` artefact names).

    Cached until an artefact is rebuilt.
    """
    names = (*TENDER_CONTRACTS, *extra)
    stamp = tuple(load_artifact(name).path.stat().st_mtime_ns for name in names)
    return _decoder(names, stamp)


@cache
def _decoder(names: tuple[str, ...], stamp: tuple[int, ...]) -> RevertDecoder:
    del stamp  # part of the cache key only
    return RevertDecoder(combined_abi(names))
