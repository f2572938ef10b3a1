"""Field elements of the BN254 scalar field, as EZKL writes and quantizes them.

EZKL serialises a field element as 32 bytes of little-endian hex without ``0x``; the EVM
verifier takes them as ``uint256``. Negative numbers are ``P - |x|``. A float ``x`` at scale
``s`` becomes ``round(x * 2**s)`` (EZKL's own :func:`ezkl.float_to_felt` does it here, so the
rounding is EZKL's).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from tender.models._errors import InputError
from tender.models._ezkl import ezkl

#: The BN254 scalar field modulus: every instance is below it.
FIELD_MODULUS = 21888242871839275222246405745257275088548364400416034343698204186575808495617


def felt_from_hex(value: str) -> int:
    """An EZKL felt string (little-endian hex, optional ``0x`` means big-endian) as an int."""
    if value.startswith("0x"):
        return int(value, 16)
    return int.from_bytes(bytes.fromhex(value), "little")


def felt_to_hex(value: int) -> str:
    """An int as EZKL's little-endian hex felt string."""
    return (value % FIELD_MODULUS).to_bytes(32, "little").hex()


def signed(value: int) -> int:
    """The signed integer a felt encodes (values above ``P/2`` are negative)."""
    value %= FIELD_MODULUS
    return value - FIELD_MODULUS if value > FIELD_MODULUS // 2 else value


def dequantize(value: int, scale: int) -> float:
    """The float a felt at fixed-point ``scale`` stands for."""
    return signed(value) / float(2**scale)


def flatten_input(data: Any, size: int) -> list[float]:
    """One model input as a flat list of ``size`` floats (nested lists and arrays accepted).

    Raises:
        InputError: the input does not hold exactly ``size`` finite numbers.
    """
    try:
        array = np.asarray(data, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise InputError(f"input is not an array of numbers: {exc}") from exc
    if array.size != size:
        raise InputError(f"input has {array.size} values, the model takes {size}")
    if not np.all(np.isfinite(array)):
        raise InputError("input holds NaN or infinite values")
    return [float(v) for v in array]


def quantize(values: Iterable[float], scale: int) -> list[str]:
    """Floats as EZKL's felt strings at ``scale``, rounded exactly as EZKL rounds inputs."""
    return [ezkl.float_to_felt(float(v), scale, ezkl.PyInputType.F32) for v in values]


def poseidon(felts: Sequence[str]) -> int:
    """EZKL's Poseidon hash of felt strings, as the instance the circuit exposes."""
    digest = ezkl.poseidon_hash(list(felts))
    return felt_from_hex(digest[0])
