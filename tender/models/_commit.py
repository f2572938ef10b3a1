"""The KZG commitment of a ``polycommit`` input, as the proof's first point carries it.

With EZKL's ``input_visibility = "polycommit"`` the quantized input sits in an unblinded advice
column; its KZG commitment (a BN254 G1 point) is the first point of every proof of that input:
``proof[0:64]``, x then y, 32 bytes big-endian each. Anyone with the bundle's verifying key,
settings and SRS computes the same point from the input alone (``ezkl.kzg_commit``: no witness,
no proof), and the intent carries ``uint256(keccak256(x || y))`` of it, which the market compares
with ``keccak256(proof[0:64])`` before it calls the verifier.

One ``kzg_commit`` reads the vk and SRS files and runs an MSM: ~12-16 ms for the sample models
(2 cores). Results are kept per process for the inputs seen last (a requester, provider and
auditor often commit the same input more than once).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tender.models._errors import BundleError
from tender.models._ezkl import ezkl

if TYPE_CHECKING:
    from tender.models._bundle import Bundle

#: Inputs whose commitments each process keeps.
CACHE_SIZE = 1024


def proof_bytes(value: Any) -> bytes:
    """EZKL returns the proof as ``0x`` hex from Python and as a byte list in proof files."""
    if isinstance(value, str):
        return bytes.fromhex(value.removeprefix("0x"))
    return bytes(value)


def point_bytes(point: Any) -> bytes:
    """An EZKL ``PyG1Affine`` (coordinates as little-endian hex) as ``x || y`` big-endian."""
    return bytes.fromhex(point.x)[::-1] + bytes.fromhex(point.y)[::-1]


def _commit(vk: str, settings: str, srs: str, felts: Sequence[str]) -> tuple[bytes, ...]:
    try:
        points = ezkl.kzg_commit(list(felts), vk, settings, srs)
    except RuntimeError as exc:
        raise BundleError(f"KZG commitment of the input failed: {exc}") from exc
    return tuple(point_bytes(p) for p in points)


@functools.lru_cache(maxsize=CACHE_SIZE)
def _cached(vk: str, vk_sha256: str, settings: str, srs: str, felts: tuple[str, ...]) -> tuple[bytes, ...]:
    return _commit(vk, settings, srs, felts)


def kzg_points(bundle: Bundle, felts: Sequence[str]) -> list[bytes]:
    """The KZG commitments of the quantized input's columns (``x || y`` big-endian each).

    One point for an input that fits one column (the only kind the market accepts). Cached
    per process for complete bundles (keyed by the vk's sha256 too); a bundle being built is
    computed afresh.
    """
    paths = (str(bundle.vk), str(bundle.settings), str(bundle.srs))
    card = bundle.card
    if card is None:  # a bundle still being built
        return list(_commit(*paths, felts))
    return list(_cached(paths[0], card.vk_sha256, paths[1], paths[2], tuple(felts)))


#: Random inputs on which a new commitment basis is checked against EZKL before it is kept.
BASIS_CHECKS = 3


def ensure_commit_basis(bundle: Bundle) -> Path | None:
    """Write the bundle's ``commit_basis.json`` (the light SDK's way to commit without EZKL,
    :mod:`tender.commit`) unless it is there; ``None`` for a model that does not use polycommit.

    The basis is ``C(0)`` and each ``C(e_i)`` from EZKL, kept only after the affine identity
    gives EZKL's own commitment on :data:`BASIS_CHECKS` random inputs (else
    :class:`BundleError`: the bundle's input column is not what the light SDK assumes).
    """
    import json
    import os
    import random

    from tender.commit import BASIS_FILE, CommitBasis, quantize_f32
    from tender.models._felt import felt_to_hex

    card = bundle.card
    if card is None or card.input_visibility != "polycommit" or (getattr(card, "batch", None) or 1) > 1:
        return None  # batch bundles: not for the light SDK yet (their circuit size changes the point)
    target = Path(bundle.path) / BASIS_FILE
    if target.is_file():
        return target
    paths = (str(bundle.vk), str(bundle.settings), str(bundle.srs))
    size = card.input_size
    (zero,) = _commit(*paths, [felt_to_hex(0)] * size)
    units = [_commit(*paths, [felt_to_hex(int(i == j)) for j in range(size)])[0] for i in range(size)]
    basis = CommitBasis.from_points(zero, units)
    rng = random.Random(size)
    for _ in range(BASIS_CHECKS):
        values = quantize_f32((rng.uniform(-2.0, 2.0) for _ in range(size)), card.input_scale)
        (expected,) = _commit(*paths, [felt_to_hex(v) for v in values])
        if basis.commit(values) != expected:
            raise BundleError(f"model {card.name}: the input commitment is not affine in the input column")
    partial = target.with_name(f".{BASIS_FILE}.{os.getpid()}.partial")
    partial.write_text(json.dumps(basis.to_json()))
    os.replace(partial, target)
    return target
