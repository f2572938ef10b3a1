"""Input commitments without EZKL: what the light SDK signs into an intent.

A ``polycommit`` model binds its input by the KZG commitment of the circuit column that holds
the quantized input (the proof's first point; see :mod:`tender.models`). That commitment is
affine in the input: ``C(x) = C(0) + sum_i x_i * (C(e_i) - C(0))``, where ``C(0)`` commits the
column with a zero input (it is not the identity: the column holds more than the input) and
``e_i`` is the i-th unit input. A bundle built with EZKL stores those ``n + 1`` points in
``commit_basis.json`` (:func:`tender.models.ensure_commit_basis` checks the identity against
EZKL on real inputs when it writes them), so a requester computes the commitment with a few
small BN254 scalar multiplications in pure Python, no EZKL or numpy installed (~10 ms for the
64-value sample MLP).

Quantization is EZKL's ``float_to_felt`` for float32 inputs, reproduced exactly: the value is
rounded to float32, scaled by ``2**scale`` and rounded half away from zero.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_utils import keccak
from py_ecc.optimized_bn128 import FQ, Z1, add, multiply, neg, normalize
from py_ecc.typing import Optimized_Point3D

from tender.errors import ModelError

__all__ = [
    "BASIS_FILE",
    "FIELD_MODULUS",
    "CommitBasis",
    "light_input_commitment",
    "point_commitment",
    "quantize_f32",
]

#: The BN254 scalar field (EZKL's felts).
FIELD_MODULUS = 21888242871839275222246405745257275088548364400416034343698204186575808495617

#: The file, in a bundle folder, holding the commitment basis.
BASIS_FILE = "commit_basis.json"


def quantize_f32(values: Iterable[float], scale: int) -> list[int]:
    """Floats as EZKL quantizes float32 inputs at ``scale``: signed integers (not reduced)."""
    out = []
    for value in values:
        single = struct.unpack("f", struct.pack("f", float(value)))[0]
        scaled = single * float(2**scale)
        out.append(int(math.copysign(math.floor(abs(scaled) + 0.5), scaled)))
    return out


def point_commitment(point: bytes) -> int:
    """``uint256(keccak256(x || y))``: the intent's commitment to a KZG point (64 bytes)."""
    return int.from_bytes(keccak(point), "big")


def _point(raw: bytes) -> Optimized_Point3D[FQ]:
    if len(raw) != 64:
        raise ModelError(f"a G1 point is 64 bytes (x || y), got {len(raw)}")
    return (FQ(int.from_bytes(raw[:32], "big")), FQ(int.from_bytes(raw[32:], "big")), FQ(1))


def _bytes(point: Optimized_Point3D[FQ]) -> bytes:
    x, y = normalize(point)
    return int(x).to_bytes(32, "big") + int(y).to_bytes(32, "big")


@dataclass(frozen=True, slots=True)
class CommitBasis:
    """``origin`` = ``C(0)`` and ``steps[i]`` = ``C(e_i) - C(0)``, each ``x || y`` big-endian."""

    origin: bytes
    steps: tuple[bytes, ...]

    def commit(self, values: Sequence[int]) -> bytes:
        """The KZG point (``x || y``) of a quantized input given as signed integers."""
        if len(values) != len(self.steps):
            raise ModelError(f"input has {len(values)} values, the model takes {len(self.steps)}")
        total = _point(self.origin)
        for step, value in zip(self.steps, values, strict=True):
            value %= FIELD_MODULUS
            if value == 0:
                continue
            if value > FIELD_MODULUS // 2:  # a negative input: multiply by |x| and negate (fast)
                total = add(total, neg(multiply(_point(step), FIELD_MODULUS - value)))
            else:
                total = add(total, multiply(_point(step), value))
        return _bytes(total) if total != Z1 else bytes(64)

    @classmethod
    def from_points(cls, zero: bytes, units: Sequence[bytes]) -> CommitBasis:
        """From ``C(0)`` and each ``C(e_i)`` as EZKL computes them."""
        origin = _point(zero)
        return cls(zero, tuple(_bytes(add(_point(u), neg(origin))) for u in units))

    def to_json(self) -> dict[str, Any]:
        return {"origin": self.origin.hex(), "steps": [s.hex() for s in self.steps]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CommitBasis:
        try:
            return cls(bytes.fromhex(data["origin"]), tuple(bytes.fromhex(s) for s in data["steps"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"not a commitment basis: {exc}") from exc

    @classmethod
    def load(cls, bundle_dir: Path) -> CommitBasis:
        path = Path(bundle_dir) / BASIS_FILE
        try:
            return cls.from_json(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelError(
                f"{path} is missing or unreadable: build the bundle with a current Tender (tender model build)"
            ) from exc


def _flatten(data: Any) -> list[float]:
    if isinstance(data, int | float) and not isinstance(data, bool):
        return [float(data)]
    if isinstance(data, list | tuple):
        return [v for item in data for v in _flatten(item)]
    raise ModelError(f"input holds a {type(data).__name__}, not numbers")


def light_input_commitment(bundle_dir: Path, data: Any) -> int:
    """The intent's ``inputCommitment`` of ``data`` for the polycommit model in ``bundle_dir``,
    from its ``card.json`` and ``commit_basis.json`` alone (no EZKL). Equal to
    :func:`tender.models.input_commitment` (``tests/models`` checks it)."""
    try:
        card = json.loads((Path(bundle_dir) / "card.json").read_text())
        scale, visibility = int(card["input_scale"]), str(card["input_visibility"])
        size = math.prod(int(n) for n in card["input_shape"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{bundle_dir} holds no readable model card: {exc}") from exc
    if visibility != "polycommit":
        raise ModelError(
            f"model {card.get('name')} commits with {visibility}: install tender[zk] to commit to it"
        )
    values = _flatten(data)
    if len(values) != size:
        raise ModelError(f"input has {len(values)} values, the model takes {size}")
    if not all(math.isfinite(v) for v in values):
        raise ModelError("input holds NaN or infinite values")
    return point_commitment(CommitBasis.load(bundle_dir).commit(quantize_f32(values, scale)))
