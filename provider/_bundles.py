"""The node's view of a model bundle (``tender.models``): its card and input commitment.

Kept in one place so the rest of the node does not depend on the bundle format.
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tender.commit import BASIS_FILE, CommitBasis, point_commitment
from tender.errors import ModelError
from tender.logs import log
from tender.models import FIELD_MODULUS, Bundle, ModelCard, felt_from_hex, flatten_input, quantize
from tender.models import input_commitment as _commitment

logger = logging.getLogger("provider.bundles")


def _signed(felt: str) -> int:
    """An EZKL felt string as the signed integer it encodes (above ``P/2``: negative)."""
    value = felt_from_hex(felt) % FIELD_MODULUS
    return value - FIELD_MODULUS if value > FIELD_MODULUS // 2 else value


@dataclass(frozen=True, slots=True)
class BundleInfo:
    """A loaded bundle: where it is and its card."""

    path: Path
    card: ModelCard

    @property
    def onnx_sha256(self) -> str:
        return self.card.onnx_sha256.lower().removeprefix("0x")

    @property
    def settings_sha256(self) -> str:
        return self.card.settings_sha256.lower().removeprefix("0x")


def load_bundle_info(path: Path) -> BundleInfo:
    """Open the bundle at ``path`` (raises :class:`tender.models.BundleError`)."""
    bundle = Bundle.load(path)
    return BundleInfo(path=bundle.path, card=bundle.card)


def input_commitment(info: BundleInfo, data: Any) -> int:
    """The commitment an intent must carry for ``data`` (``tender.models.input_commitment``).

    A polycommit model's commitment is affine in the input: with the bundle's commitment basis
    (``commit_basis.json``, see :mod:`tender.commit`), once this process has checked it against
    EZKL (:func:`checked_basis`), it is ~1-2 ms of integer arithmetic on EZKL's quantized input.
    Else it is computed with the whole bundle: EZKL reads the vk and SRS and commits (~10-30 ms
    on a loaded machine, which the quote path would wait for), a hashed model's only the card."""
    basis = checked_basis(info)
    if basis is None:
        return int(_commitment(Bundle(info.path, info.card), data))
    card = info.card
    felts = quantize(flatten_input(data, card.input_size), card.input_scale)
    return point_commitment(basis.commit([_signed(f) for f in felts]))


#: each bundle's commitment basis as checked in this process (``None``: none, or it failed the
#: check: EZKL commits), by bundle path and verifying key
_BASES: dict[tuple[str, str], CommitBasis | None] = {}
_BASES_LOCK = threading.Lock()


def commits_fast(info: BundleInfo) -> bool:
    """Whether :func:`input_commitment` takes the checked basis for this bundle now (no EZKL:
    cheap enough for the event loop)."""
    return _BASES.get((str(info.path), info.card.vk_sha256)) is not None


def checked_basis(info: BundleInfo) -> CommitBasis | None:
    """The bundle's commitment basis, once it gave EZKL's commitment on a random input here
    (decided once a process: ~15 ms); ``None`` for a model without one (hashed inputs, batch
    bundles, a bundle built without it) or whose basis does not match EZKL (logged)."""
    key = (str(info.path), info.card.vk_sha256)
    if key in _BASES:
        return _BASES[key]
    with _BASES_LOCK:  # one check a bundle, whichever thread asks first
        if key in _BASES:
            return _BASES[key]
        basis = _check_basis(info)
        _BASES[key] = basis
        return basis


def _check_basis(info: BundleInfo) -> CommitBasis | None:
    card = info.card
    if card.input_visibility != "polycommit" or card.batch > 1 or not (info.path / BASIS_FILE).is_file():
        return None
    try:
        basis = CommitBasis.load(info.path)
    except ModelError as exc:
        log(logger, "bundle.basis_unreadable", level=logging.WARNING, model=card.name, error=str(exc))
        return None
    rng = random.SystemRandom()
    values = [rng.uniform(-2.0, 2.0) for _ in range(card.input_size)]
    felts = quantize(values, card.input_scale)
    try:
        fast = point_commitment(basis.commit([_signed(f) for f in felts]))
    except ModelError as exc:
        log(logger, "bundle.basis_unreadable", level=logging.WARNING, model=card.name, error=str(exc))
        return None
    if fast != int(_commitment(Bundle(info.path, card), values)):
        log(logger, "bundle.basis_mismatch", level=logging.WARNING, model=card.name, path=str(info.path))
        return None
    return basis
