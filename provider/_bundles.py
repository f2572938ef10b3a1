"""The node's view of a model bundle (``tender.models``): its card and input commitment.

Kept in one place so the rest of the node does not depend on the bundle format.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tender.models import Bundle, ModelCard
from tender.models import input_commitment as _commitment


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

    Computed with the whole bundle: a polycommit model's commitment needs its vk and SRS
    (~15 ms, then cached per process), a hashed one's only the card."""
    return int(_commitment(Bundle(info.path, info.card), data))
