"""The requester's view of a model: its bundle (card, verifying key, SRS), input commitment,
input URI and local proof check. Everything model-specific goes through ``tender.models``."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tender.errors import ModelError
from tender.intents import decode_input_uri  # its home; re-exported for the SDK

__all__ = [
    "ModelHandle",
    "cached_bundles",
    "decode_input_uri",
    "encode_input_uri",
    "instances",
    "resolve_model",
]


def encode_input_uri(data: Any) -> bytes:
    """The intent's ``inputLocation`` for ``data``: the input itself, as compact JSON.

    ``MarketStructs.Intent.inputLocation`` holds a URI or, for small inputs, the bytes
    themselves; providers and verifier agents accept both. The sample models' inputs are a few
    hundred bytes, so they travel inline and need no storage service.
    """
    return json.dumps(data, separators=(",", ":")).encode()


def _hex32(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        raw = bytes(value)
    else:
        raw = bytes.fromhex(str(value).removeprefix("0x"))
    if len(raw) != 32:
        raise ModelError(f"a model id is 32 bytes, got {len(raw)}")
    return raw


def instances(card: Any, commitment: int, output: list[int]) -> list[int]:
    """The public instance vector the market builds for a job: the delivered output placed as
    the card's instance layout says, after the input commitment for a hashed input (a
    polycommit input has no instance: the proof's first point binds it, see ``verify``)."""
    from tender.chain import INPUT_HASHED, INPUT_POLYCOMMIT, market_instances

    layout = card.layout
    if len(output) != layout.output_length:
        raise ModelError(f"output has {len(output)} elements, the model's layout {layout.output_length}")
    polycommit = getattr(card, "input_visibility", "hashed") == "polycommit"
    return market_instances(
        input_binding=INPUT_POLYCOMMIT if polycommit else INPUT_HASHED,
        commitment_index=layout.commitment_index,
        output_offset=layout.output_offset,
        instance_count=layout.instance_count,
        commitment=commitment,
        output=output,
    )


@dataclass(frozen=True)
class ModelHandle:
    """A model the client can buy: its name, registry id, and bundle (for commitments, proofs)."""

    name: str
    model_id: bytes
    bundle: Any  # tender.models.Bundle

    @property
    def card(self) -> Any:
        return self.bundle.card

    def commitment(self, data: Any) -> int:
        """The input commitment the intent carries (``tender.models.input_commitment``): for a
        polycommit model it needs the bundle's vk and SRS, which the handle holds."""
        if isinstance(self.bundle, LightBundle):
            from tender.commit import light_input_commitment

            return light_input_commitment(self.bundle.path, data)
        from tender import models

        return int(models.input_commitment(self.bundle, data))

    @property
    def can_verify(self) -> bool:
        """Whether proofs can be checked here (the ``zk`` extra); else the market's verifier did."""
        return not isinstance(self.bundle, LightBundle)

    def verify(self, proof: bytes, *, output: list[int], commitment: int) -> bool:
        """Check ``proof`` with the bundle's verifying key, for exactly this input commitment
        and output (the instance vector the market checked on-chain; for a polycommit model
        also ``keccak256(proof[0:64]) == commitment``, the market's input check)."""
        from tender import models

        card = self.card
        wrapped = models.Proof(
            model=card.name,
            onnx_sha256=card.onnx_sha256,
            output=[],
            output_felts=list(output),
            instances=instances(card, commitment, output),
            proof=proof,
            prove_s=0.0,
            input_commitment=commitment,
        )
        return bool(models.verify(self.bundle, wrapped))

    def dequantize(self, output: list[int]) -> list[float] | None:
        """The output as numbers (the card's output scale)."""
        from tender.commit import FIELD_MODULUS

        try:
            scale = 2 ** int(self.card.output_scale)
            signed = [int(v) % FIELD_MODULUS for v in output]
            return [(v - FIELD_MODULUS if v > FIELD_MODULUS // 2 else v) / scale for v in signed]
        except (ValueError, TypeError, ModelError):
            return None


def load_bundle(path: Path) -> Any:
    """The bundle in ``path``: a :class:`tender.models.Bundle` with the ``zk`` extra installed, else
    a :class:`LightBundle` (its card and commitment basis: enough to commit to inputs and read
    outputs; proofs are then checked by the market's verifier only)."""
    from tender.extras import missing

    if missing("zk"):
        return LightBundle.load(path)
    from tender import models

    return models.Bundle.load(path)


@dataclass(frozen=True)
class LightBundle:
    """A bundle as the light SDK sees it: the folder and its card (attributes as in ``card.json``)."""

    path: Path
    card: Any

    @classmethod
    def load(cls, path: Path) -> LightBundle:
        try:
            data = json.loads((Path(path) / "card.json").read_text())
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path} holds no readable model card: {exc}") from exc

        def namespace(value: Any) -> Any:
            if isinstance(value, dict):
                return SimpleNamespace(**{k: namespace(v) for k, v in value.items()})
            return value

        card = namespace(data)
        card.input_size = math.prod(int(n) for n in data.get("input_shape") or [0])
        return cls(Path(path), card)


def cached_bundles(name: str, *, cache: Path | None = None) -> list[tuple[Path, tuple[bytes, bytes]]]:
    """The bundles named ``name`` in the local cache (``<cache>/models/*/card.json``), each with
    its ``(onnx sha256, settings hash)``: what the registry records for it."""
    from tender.paths import cache_dir

    root = (cache or cache_dir()) / "models"
    found = []
    for card_path in sorted(root.glob("*/card.json")) if root.is_dir() else []:
        try:
            card = json.loads(card_path.read_text())
            if card.get("name") != name:
                continue
            hashes = (bytes.fromhex(card["onnx_sha256"]), bytes.fromhex(card["settings_sha256"]))
        except (OSError, ValueError, KeyError, AttributeError):
            continue  # a half-written or foreign folder is not a bundle
        found.append((card_path.parent, hashes))
    return found


def resolve_model(
    model: str | bytes,
    *,
    bundles: dict[str, Path] | None = None,
    model_ids: dict[str, str] | None = None,
) -> ModelHandle:
    """Find a model by name: its bundle folder and registry id.

    Args:
        model: a model name (``"mlp"``) or a bundle folder.
        bundles: bundle folder by model name.
        model_ids: registry model id (``0x``-hex) by model name; default: the card's
            ``model_id`` when it has one.
    """
    if isinstance(model, bytes):
        raise ModelError("pass the model by name (with bundles= and model_ids=), not by raw id")
    bundles, model_ids = bundles or {}, model_ids or {}
    path = Path(bundles[model]) if model in bundles else Path(model)
    if not path.exists():
        raise ModelError(f"model {model!r}: no bundle folder known (pass bundles={{name: path}})")
    bundle = load_bundle(path)
    name = str(bundle.card.name)
    raw_id = model_ids.get(model) or model_ids.get(name) or getattr(bundle.card, "model_id", None)
    if raw_id is None:
        raise ModelError(f"model {name!r}: its registry id is unknown (pass model_ids={{name: id}})")
    return ModelHandle(name=name, model_id=_hex32(raw_id), bundle=bundle)
