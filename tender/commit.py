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
from py_ecc.optimized_bn128 import FQ, add, neg, normalize
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
        """The KZG point (``x || y``) of a quantized input given as signed integers.

        ``origin + sum(values[i] * steps[i])`` by one shared double-and-add over all the steps
        (:func:`_combine`): a quantized input's values are small, so it takes a few hundred
        point additions on plain integers (~1 ms for the 64-value sample MLP)."""
        if len(values) != len(self.steps):
            raise ModelError(f"input has {len(values)} values, the model takes {len(self.steps)}")
        return _combine(self._affine(), values)

    def _affine(self) -> tuple[tuple[int, int] | None, tuple[tuple[int, int] | None, ...]]:
        """``origin`` and ``steps`` as affine integer pairs (``None``: the point at infinity),
        parsed once per basis."""
        parsed: tuple[tuple[int, int] | None, tuple[tuple[int, int] | None, ...]] | None = _PARSED.get(self)
        if parsed is None:
            parsed = (_pair(self.origin), tuple(_pair(s) for s in self.steps))
            _PARSED[self] = parsed
        return parsed

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


#: The BN254 base field (the coordinates of G1 points).
_P = 21888242871839275222246405745257275088696311157297823662689037894645226208583
#: each basis's points as integers (:meth:`CommitBasis._affine`), by basis
_PARSED: dict[CommitBasis, tuple[tuple[int, int] | None, tuple[tuple[int, int] | None, ...]]] = {}
#: a point in Jacobian coordinates ``(X, Y, Z)``: ``(X / Z**2, Y / Z**3)``; ``Z == 0`` is infinity
_Jacobian = tuple[int, int, int]
_INFINITY: _Jacobian = (1, 1, 0)


def _pair(raw: bytes) -> tuple[int, int] | None:
    """A 64-byte ``x || y`` point as integers (``None`` for the all-zero encoding of infinity)."""
    if len(raw) != 64:
        raise ModelError(f"a G1 point is 64 bytes (x || y), got {len(raw)}")
    if not any(raw):
        return None
    return int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")


def _double(a: _Jacobian) -> _Jacobian:
    """``2 * a`` on ``y^2 = x^3 + 3`` (dbl-2009-l)."""
    x1, y1, z1 = a
    if z1 == 0 or y1 == 0:
        return _INFINITY
    p = _P
    aa = x1 * x1 % p
    bb = y1 * y1 % p
    cc = bb * bb % p
    d = 2 * ((x1 + bb) ** 2 - aa - cc) % p
    e = 3 * aa % p
    x3 = (e * e - 2 * d) % p
    return x3, (e * (d - x3) - 8 * cc) % p, 2 * y1 * z1 % p


def _add_affine(a: _Jacobian, x2: int, y2: int) -> _Jacobian:
    """``a + (x2, y2)`` for an affine ``(x2, y2)`` (madd-2007-bl), doubling and infinity included."""
    x1, y1, z1 = a
    if z1 == 0:
        return x2, y2, 1
    p = _P
    z1z1 = z1 * z1 % p
    h = (x2 * z1z1 - x1) % p
    r = 2 * (y2 * z1 * z1z1 - y1) % p
    if h == 0:
        return _double((x2, y2, 1)) if r == 0 else _INFINITY
    hh = h * h % p
    i = 4 * hh % p
    j = h * i % p
    v = x1 * i % p
    x3 = (r * r - j - 2 * v) % p
    y3 = (r * (v - x3) - 2 * y1 * j) % p
    return x3, y3, ((z1 + h) ** 2 - z1z1 - hh) % p


def _combine(
    parsed: tuple[tuple[int, int] | None, tuple[tuple[int, int] | None, ...]], values: Sequence[int]
) -> bytes:
    """``origin + sum(values[i] * steps[i])`` as ``x || y`` (64 zero bytes for infinity).

    Each value is taken modulo the scalar field and as a signed integer (a negative one adds
    the negated step ``|value|`` times); all the terms share one run of doublings, from the
    highest bit of the largest magnitude down (Straus)."""
    origin, steps = parsed
    terms: list[tuple[int, int, int]] = []
    for step, value in zip(steps, values, strict=True):
        value %= FIELD_MODULUS
        if value == 0 or step is None:
            continue
        x, y = step
        if value > FIELD_MODULUS // 2:  # a negative input: |value| times the negated step
            terms.append((FIELD_MODULUS - value, x, (_P - y) % _P))
        else:
            terms.append((value, x, y))
    total = _INFINITY
    for bit in range(max((t[0].bit_length() for t in terms), default=0) - 1, -1, -1):
        total = _double(total)
        for magnitude, x, y in terms:
            if magnitude >> bit & 1:
                total = _add_affine(total, x, y)
    if origin is not None:
        total = _add_affine(total, *origin)
    x3, y3, z3 = total
    if z3 == 0:
        return bytes(64)
    inverse = pow(z3, -1, _P)
    square = inverse * inverse % _P
    x = x3 * square % _P
    y = y3 * square * inverse % _P
    return x.to_bytes(32, "big") + y.to_bytes(32, "big")


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
