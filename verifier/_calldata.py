"""Recover a market call's arguments from the transaction that made it.

A job's output and proof live only in calldata (``deliver(jobId, output, proof)``,
``prove(jobId, proof)``); the events say which transaction to read. A direct call is decoded
from the transaction's input; a call made through another contract (a smart wallet, a
multicall) is found in the transaction's call trace (``debug_traceTransaction`` with the
``callTracer``, which Anvil and geth-style nodes serve).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_utils import function_abi_to_4byte_selector, to_checksum_address
from eth_utils.abi import collapse_if_tuple
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import Web3RPCError

from verifier._errors import ReconstructionError


@dataclass(frozen=True, slots=True)
class DecodedCall:
    """A decoded call to a market function: its name, arguments (ABI names), and raw input."""

    name: str
    args: dict[str, Any]
    data: bytes
    tx_hash: bytes
    sender: str


class CallDecoder:
    """Decodes calldata against the ``function`` entries of an ABI."""

    def __init__(self, abi: Any) -> None:
        self._by_selector: dict[bytes, dict[str, Any]] = {}
        for entry in abi:
            if entry.get("type") == "function":
                self._by_selector[bytes(function_abi_to_4byte_selector(entry))] = entry

    def selector(self, name: str) -> bytes:
        for selector, entry in self._by_selector.items():
            if entry["name"] == name:
                return selector
        raise KeyError(name)

    def decode(self, data: bytes) -> tuple[str, dict[str, Any]] | None:
        """``(name, args)`` for calldata, or ``None`` when the selector is unknown or data malformed."""
        entry = self._by_selector.get(bytes(data[:4]))
        if entry is None:
            return None
        inputs = entry["inputs"]
        try:
            values = abi_decode([collapse_if_tuple(i) for i in inputs], bytes(data[4:]))
        except (DecodingError, ValueError, OverflowError):
            return None
        names = [i.get("name") or f"arg{n}" for n, i in enumerate(inputs)]
        return str(entry["name"]), dict(zip(names, values, strict=True))


def _walk(frame: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield frame
    for child in frame.get("calls", []) or []:
        yield from _walk(child)


def find_call(
    w3: Web3,
    tx_hash: bytes,
    *,
    to: str,
    names: tuple[str, ...],
    decoder: CallDecoder,
    job_id: bytes | None = None,
    tx: Mapping[str, Any] | None = None,
) -> DecodedCall:
    """The call to ``to`` named one of ``names`` made by transaction ``tx_hash``.

    When ``job_id`` is given and the transaction made several such calls (a batch), the one
    whose first argument is ``job_id`` is returned. ``tx`` is the transaction when the caller
    already has it (``eth_getTransactionByHash``'s answer).

    Raises:
        ReconstructionError: no such call in the transaction (nor in its trace).
    """
    target = to_checksum_address(to)
    if tx is None:
        tx = w3.eth.get_transaction(HexBytes(tx_hash))
    candidates: list[tuple[str, bytes]] = []
    if tx.get("to") and to_checksum_address(tx["to"]) == target:
        candidates.append((str(tx["from"]), bytes(tx["input"])))
    else:
        try:
            trace = w3.provider.make_request(
                "debug_traceTransaction",  # type: ignore[arg-type]
                [Web3.to_hex(tx_hash), {"tracer": "callTracer"}],
            )
        except (Web3RPCError, OSError, ValueError) as exc:
            raise ReconstructionError(
                f"tx {Web3.to_hex(tx_hash)} calls the market indirectly and the node cannot trace it: {exc}"
            ) from exc
        result = trace.get("result") if isinstance(trace, dict) else None
        if not isinstance(result, dict):
            raise ReconstructionError(f"no call trace for tx {Web3.to_hex(tx_hash)}: {trace!r:.200}")
        for frame in _walk(result):
            if frame.get("to") and to_checksum_address(frame["to"]) == target and frame.get("type") == "CALL":
                candidates.append(
                    (to_checksum_address(frame["from"]), bytes(HexBytes(frame.get("input", "0x"))))
                )
    for sender, data in candidates:
        decoded = decoder.decode(data)
        if decoded is None or decoded[0] not in names:
            continue
        name, args = decoded
        first = next(iter(args.values()), None)
        if job_id is not None and isinstance(first, bytes) and first != job_id:
            continue
        return DecodedCall(name=name, args=args, data=data, tx_hash=bytes(tx_hash), sender=sender)
    raise ReconstructionError(f"tx {Web3.to_hex(tx_hash)} holds no {'/'.join(names)} call to {target}")
