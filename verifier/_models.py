"""Which bundle computes a registered model, and re-executing it to judge a delivery.

The registry pins a model by its ONNX sha256 and EZKL settings hash; the agent and the
auditor look for a local bundle with the same two hashes (in the configured folders and
under the cache's ``models/``). Judging an optimistic output runs two checks:

1. onnxruntime on the input, compared with the dequantized output within the card's
   quantisation tolerance (``max_abs_error`` measured at build time, with a margin), and
2. the circuit's own witness for the input (EZKL ``gen_witness``, no proof): the exact field
   elements an honest provider delivers and can later prove. Any difference means the
   provider cannot prove its output, so a challenge is safe.
"""

from __future__ import annotations

import json
import tempfile
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ezkl

from tender.models import (
    Bundle,
    BundleError,
    ModelCard,
    dequantize,
    felt_from_hex,
    flatten_input,
    infer,
    input_commitment,
    witness_keys,
)
from tender.paths import cache_dir

#: Tolerance = max(margin * card.max_abs_error, floor_steps quantisation steps at the output scale).
TOLERANCE_MARGIN = 2.0
TOLERANCE_FLOOR_STEPS = 4


def _hex32(value: Any) -> str:
    raw = value if isinstance(value, bytes) else bytes.fromhex(str(value).removeprefix("0x"))
    return raw.hex()


class Catalogue:
    """Local bundles indexed by ``(onnx_sha256, settings_sha256)``.

    Args:
        folders: bundle folders, or folders holding bundle folders (searched one level deep).
        include_cache: also search ``<cache>/models``.
    """

    def __init__(self, folders: Iterable[Path] = (), *, include_cache: bool = True) -> None:
        self._folders = [Path(f) for f in folders]
        if include_cache:
            self._folders.append(cache_dir() / "models")
        self._index: dict[tuple[str, str], Bundle] | None = None
        self._lock = threading.Lock()

    def _scan(self) -> dict[tuple[str, str], Bundle]:
        index: dict[tuple[str, str], Bundle] = {}
        for folder in self._folders:
            candidates = [folder] if (folder / "card.json").is_file() else sorted(folder.glob("*/card.json"))
            for candidate in candidates:
                try:
                    bundle = Bundle.load(candidate)
                except BundleError:
                    continue
                index.setdefault((bundle.card.onnx_sha256, bundle.card.settings_sha256), bundle)
        return index

    def find(self, onnx_sha256: Any, settings_hash: Any) -> Bundle | None:
        """The bundle for a registry record's hashes (``bytes32`` or hex), or ``None``."""
        key = (_hex32(onnx_sha256), _hex32(settings_hash))
        with self._lock:
            if self._index is None or key not in self._index:
                self._index = self._scan()  # a bundle built since the last scan is picked up
            return self._index.get(key)

    def __len__(self) -> int:
        with self._lock:
            if self._index is None:
                self._index = self._scan()
            return len(self._index)


def tolerance(card: ModelCard) -> float:
    """How far an honest output may sit from onnxruntime's float output."""
    step = 2.0**-card.output_scale
    return max(TOLERANCE_MARGIN * (card.max_abs_error or 0.0), TOLERANCE_FLOOR_STEPS * step)


def witness_outputs(bundle: Bundle, data: Any) -> list[int]:
    """The circuit's output field elements for ``data`` (EZKL witness, no proof)."""
    values = flatten_input(data, bundle.card.input_size)
    layout = bundle.card.layout
    with tempfile.TemporaryDirectory(prefix="tender-witness-") as tmp:
        folder = Path(tmp)
        (folder / "input.json").write_text(json.dumps({"input_data": [values]}))
        witness = ezkl.gen_witness(
            str(folder / "input.json"),
            str(bundle.compiled),
            str(folder / "witness.json"),
            *witness_keys(bundle),
        )
    flat = [felt_from_hex(v) for v in _instances(witness)]
    return flat[layout.output_offset : layout.output_offset + layout.output_length]


def _instances(witness: dict[str, Any]) -> list[str]:
    """The public instances of a witness, in the order the proof exposes them."""
    out: list[str] = []
    inputs = witness.get("processed_inputs") or {}
    if isinstance(inputs, dict) and inputs.get("poseidon_hash"):
        out.extend(inputs["poseidon_hash"])
    for tensor in witness.get("outputs", []):
        out.extend(tensor)
    return out


@dataclass(frozen=True, slots=True)
class Judgement:
    """What re-executing a job said about its delivered output.

    Attributes:
        wrong: the output is not what the circuit computes for the input (challenge it).
        max_diff: largest |delivered - onnxruntime| over the outputs.
        tolerance: the allowed difference for this model.
        exact: whether the delivered felts equal the circuit's witness (``None``: not checked).
        reason: a sentence for logs.
    """

    wrong: bool
    max_diff: float
    tolerance: float
    exact: bool | None
    reason: str


def judge(bundle: Bundle, data: Any, output: Sequence[int], *, exact: bool = True) -> Judgement:
    """Judge a delivered output (field elements) for ``data`` against the model."""
    card = bundle.card
    tol = tolerance(card)
    if len(output) != card.layout.output_length:
        return Judgement(
            True,
            float("inf"),
            tol,
            False,
            f"{len(output)} outputs, the model has {card.layout.output_length}",
        )
    delivered = [dequantize(int(v), card.output_scale) for v in output]
    expected = infer(bundle, data)
    diff = max(abs(a - b) for a, b in zip(delivered, expected, strict=True))
    if not exact:
        wrong = diff > tol
        return Judgement(
            wrong, diff, tol, None, f"max |delivered - onnxruntime| = {diff:.4g} (tolerance {tol:.4g})"
        )
    circuit = witness_outputs(bundle, data)
    same = [int(v) for v in output] == circuit
    if same:
        reason = f"matches the circuit (max diff to onnxruntime {diff:.4g})"
    elif diff > tol:
        reason = f"off by {diff:.4g} from onnxruntime (tolerance {tol:.4g}) and not the circuit's output"
    else:
        reason = (
            f"within tolerance of onnxruntime ({diff:.4g}) but not the circuit's output: cannot be proven"
        )
    return Judgement(not same, diff, tol, same, reason)


def commitment_of(bundle: Bundle, data: Any) -> int:
    """The input commitment of ``data`` for this model (``tender.models.input_commitment``;
    a polycommit model's needs the bundle's vk and SRS, not only its card)."""
    return input_commitment(bundle, data)
