"""Inference, input commitments, proofs and their verification.

Every function takes a :class:`Bundle` or a bundle path and keeps no state besides a
per-process onnxruntime session cache, so they run unchanged in a process pool. Start the
pool's workers with ``spawn`` (or ``forkserver``): EZKL's native thread pools do not survive
``fork()`` in a process that has already proved, and a forked worker can hang::

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        proofs = list(pool.map(prove, [bundle.path] * len(inputs), inputs))
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tender.chain._structs import polycommit_commitment
from tender.commit import point_commitment
from tender.models import _runtime
from tender.models._bundle import Bundle, ModelCard
from tender.models._commit import kzg_points, proof_bytes
from tender.models._errors import BundleError, ProofError
from tender.models._ezkl import ezkl
from tender.models._felt import dequantize, felt_from_hex, felt_to_hex, flatten_input, poseidon, quantize

BundleLike = Bundle | str | Path


def _bundle(bundle: BundleLike) -> Bundle:
    return bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)


def _card(source: ModelCard | BundleLike) -> ModelCard:
    return source if isinstance(source, ModelCard) else _bundle(source).card


@dataclass(frozen=True)
class Proof:
    """One proof of one inference.

    Attributes:
        model: the model's name.
        onnx_sha256: the ONNX the proof is for (from the card).
        output: the outputs as floats (dequantized from the instances).
        output_felts: the outputs as field elements, as the verifier and the market see them.
        instances: the whole public instance vector (``uint256[]`` for ``verifyProof``).
        proof: the proof bytes (``bytes`` for ``verifyProof``).
        prove_s: seconds spent on witness generation and proving.
        input_commitment: what the intent carries for the proved input: the Poseidon hash at
            the commitment index (hashed), ``keccak256(proof[0:64])`` (polycommit), ``None``
            (public inputs).
    """

    model: str
    onnx_sha256: str
    output: list[float]
    output_felts: list[int]
    instances: list[int]
    proof: bytes = field(repr=False)
    prove_s: float
    input_commitment: int | None

    @classmethod
    def of(
        cls,
        card: ModelCard,
        output_felts: list[int],
        instances: list[int],
        proof: bytes,
        *,
        input_commitment: int | None,
        prove_s: float = 0.0,
    ) -> Proof:
        """The proof of ``card``'s model whose outputs are ``output_felts`` (dequantized here)."""
        return cls(
            model=card.name,
            onnx_sha256=card.onnx_sha256,
            output=[dequantize(v, card.output_scale) for v in output_felts],
            output_felts=output_felts,
            instances=instances,
            proof=proof,
            prove_s=prove_s,
            input_commitment=input_commitment,
        )

    @property
    def proof_hex(self) -> str:
        return "0x" + self.proof.hex()

    def calldata(self) -> tuple[bytes, list[int]]:
        """The arguments of ``verifyProof(bytes proof, uint256[] instances)``."""
        return self.proof, list(self.instances)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (big numbers as ``0x`` hex strings)."""
        return {
            "model": self.model,
            "onnx_sha256": self.onnx_sha256,
            "output": self.output,
            "output_felts": [hex(v) for v in self.output_felts],
            "instances": [hex(v) for v in self.instances],
            "proof": self.proof_hex,
            "prove_s": self.prove_s,
            "input_commitment": None if self.input_commitment is None else hex(self.input_commitment),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Proof:
        """Read what :meth:`to_dict` wrote.

        Raises:
            ProofError: a field is missing or malformed.
        """
        try:
            commitment = data.get("input_commitment")
            return cls(
                model=str(data["model"]),
                onnx_sha256=str(data["onnx_sha256"]),
                output=[float(v) for v in data["output"]],
                output_felts=[int(v, 16) for v in data["output_felts"]],
                instances=[int(v, 16) for v in data["instances"]],
                proof=bytes.fromhex(str(data["proof"]).removeprefix("0x")),
                prove_s=float(data.get("prove_s", 0.0)),
                input_commitment=None if commitment is None else int(commitment, 16),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProofError(f"not a Tender proof: {exc}") from exc

    def save(self, path: str | Path) -> Path:
        """Write the proof as JSON."""
        target = Path(path)
        target.write_text(json.dumps(self.to_dict(), indent=1))
        return target

    @classmethod
    def load(cls, path: str | Path) -> Proof:
        """Read a proof written by :meth:`save`."""
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise ProofError(f"cannot read proof {path}: {exc}") from exc


def input_commitment(source: ModelCard | BundleLike, data: Any) -> int:
    """The ``uint256`` a requester puts in its intent's ``inputCommitment`` for ``data``.

    The input is quantized exactly as EZKL quantizes it (the card's input scale), then

    - ``polycommit`` bundles (the default): committed with KZG under the bundle's verifying
      key, settings and SRS (``ezkl.kzg_commit``, ~15 ms, cached per process); the result is
      ``uint256(keccak256(x || y))`` of that point, which equals ``keccak256(proof[0:64])`` of
      any proof of this input. This needs the bundle's files: a card alone is refused;
    - ``hashed`` bundles: EZKL's Poseidon hash, which equals the instance at
      ``layout.commitment_index`` of any proof of this input (a card is enough).

    Args:
        source: a bundle or bundle path (a model card only for hashed models).
        data: one input (nested lists or an array with ``card.input_size`` values).

    Raises:
        BundleError: the model takes a public input, or a card was given for a polycommit model.
        InputError: the input has the wrong size.
    """
    card = _card(source)
    if card.input_visibility == "hashed":
        return poseidon(quantize(flatten_input(data, card.input_size), card.input_scale))
    if card.input_visibility != "polycommit":
        raise BundleError(f"model {card.name} has public inputs: there is no input commitment")
    if isinstance(source, ModelCard):
        raise BundleError(
            f"model {card.name} commits to its input with KZG (polycommit): the commitment needs the "
            "bundle's verifying key and SRS, pass the bundle or its path instead of the card"
        )
    felts = quantize(flatten_input(data, card.input_size), card.input_scale)
    points = kzg_points(_bundle(source), felts)
    if len(points) != 1:
        raise BundleError(f"model {card.name}'s input spans {len(points)} columns; the market binds one")
    return point_commitment(points[0])


def infer(bundle: BundleLike, data: Any, *, gpu: bool = False) -> list[float]:
    """Run the bundle's ONNX on one input with onnxruntime (no proof; for debugging).

    For micro-batches call with an array whose first axis is the batch: the ONNX files
    Tender builds keep a dynamic batch axis. Returns the flat outputs of one input.
    """
    b = _bundle(bundle)
    values = flatten_input(data, b.card.input_size)
    return [float(v) for v in _runtime.run_one(b.job_onnx, values, b.card.input_shape, gpu=gpu)]


def infer_batch(bundle: BundleLike, batch: Any, *, gpu: bool = False) -> np.ndarray[Any, Any]:
    """Run a batch (first axis) with onnxruntime; returns ``(batch, outputs)``."""
    b = _bundle(bundle)
    array = np.asarray(batch, dtype=np.float32).reshape((-1, *b.card.input_shape[1:]))
    return _runtime.run(b.job_onnx, array, gpu=gpu).reshape(array.shape[0], -1)


def prove(bundle: BundleLike, data: Any) -> Proof:
    """Prove one inference.

    Args:
        bundle: a bundle or a bundle path (paths keep process-pool arguments small).
        data: one input with ``card.input_size`` values.

    Raises:
        ProofError: EZKL could not build the witness or the proof.
        InputError: the input has the wrong size.
    """
    b = _bundle(bundle)
    card = b.card
    if card.batch > 1:
        raise BundleError(f"model {card.name} proves {card.batch} jobs per proof: use prove_batch()")
    values = flatten_input(data, card.input_size)
    instances, data_bytes, elapsed = run_prover(b, [values], what=card.name)
    layout = card.layout
    outputs = instances[layout.output_offset : layout.output_offset + layout.output_length]
    return Proof.of(
        card,
        outputs,
        instances,
        data_bytes,
        prove_s=elapsed,
        input_commitment=proof_commitment(card, data_bytes, instances),
    )


def run_prover(b: Bundle, input_data: list[list[float]], *, what: str) -> tuple[list[int], bytes, float]:
    """Witness and proof of ``input_data`` (EZKL's ``input_data``, one row per input) with ``b``.

    Returns:
        (the public instances, the proof bytes, the seconds spent, rounded to 0.1 ms).

    Raises:
        ProofError: EZKL could not build the witness or the proof (``what`` names it).
    """
    with tempfile.TemporaryDirectory(prefix="tender-prove-") as tmp:
        scratch = Path(tmp)
        (scratch / "input.json").write_text(json.dumps({"input_data": input_data}))
        started = time.perf_counter()
        try:
            ezkl.gen_witness(
                str(scratch / "input.json"), str(b.compiled), str(scratch / "witness.json"), *witness_keys(b)
            )
            raw = ezkl.prove(
                str(scratch / "witness.json"), str(b.compiled), str(b.pk), None, srs_path=str(b.srs)
            )
        except RuntimeError as exc:
            raise ProofError(f"proving {what} failed: {exc}") from exc
        elapsed = time.perf_counter() - started
    instances = [felt_from_hex(v) for v in raw["instances"][0]]
    return instances, proof_bytes(raw["proof"]), round(elapsed, 4)


#: EZKL's warning (through Python logging) for a witness made without the SRS
_NO_SRS_WARNING = "SRS for poly commit does not exist"


class _WitnessWithoutKeys(logging.Filter):
    """Drops EZKL's warning that a witness is made without the SRS: :func:`output_felts`
    makes it so on purpose (see there)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(_NO_SRS_WARNING)


logging.getLogger("ezkl.execute").addFilter(_WitnessWithoutKeys())


def output_felts(bundle: BundleLike, data: Any) -> list[int]:
    """The outputs of one input as field elements, exactly as a proof of it will carry them
    (EZKL's witness, without the proof: milliseconds, not seconds). A provider commits to these
    before it proves (the quote market's result commitment).

    For a batch bundle (``card.batch`` N > 1): the outputs a batch proof's slot will carry for
    this input (the witness with the input in slot 0 and zeros in the others; every slot is the
    same circuit over its own input, so the slot does not change them).

    The witness is made without the verifying key and SRS (:func:`witness_keys`): with them
    EZKL also commits to a polycommit input (KZG), which the outputs do not depend on and which
    costs twice the rest (~20 ms against ~8 ms for the sample models). A provider makes one
    for every job it quotes on the quote market, while the round is open.

    Raises:
        ProofError: EZKL could not build the witness.
        InputError: the input has the wrong size.
    """
    b = _bundle(bundle)
    values = flatten_input(data, b.card.input_size)
    slots = max(1, b.card.batch)
    rows = [values] + [[0.0] * b.card.input_size] * (slots - 1)
    with tempfile.TemporaryDirectory(prefix="tender-witness-") as tmp:
        scratch = Path(tmp)
        (scratch / "input.json").write_text(json.dumps({"input_data": rows}))
        try:
            witness = ezkl.gen_witness(
                str(scratch / "input.json"), str(b.compiled), str(scratch / "witness.json"), None, None
            )
        except RuntimeError as exc:
            raise ProofError(f"witness of {b.card.name} failed: {exc}") from exc
    outputs = witness["outputs"][: len(witness["outputs"]) // slots]
    return [felt_from_hex(f) for output in outputs for f in output]


def witness_keys(bundle: Bundle) -> tuple[str | None, str | None]:
    """``(vk_path, srs_path)`` for ``ezkl.gen_witness``: a polycommit witness without them still
    works (without the input's KZG commitment, which a proof needs) but EZKL logs a warning
    (they cost ~8-15 ms: :func:`output_felts` goes without them)."""
    if bundle.card.input_visibility != "polycommit":
        return None, None
    return str(bundle.vk), str(bundle.srs)


def proof_commitment(card: ModelCard, proof: bytes, instances: list[int]) -> int | None:
    """The input commitment a proof carries: ``keccak256(proof[0:64])`` (polycommit), the
    instance at the commitment index (hashed), ``None`` (public input or a malformed proof)."""
    if card.input_visibility == "polycommit":
        return polycommit_commitment(proof)
    index = card.layout.commitment_index
    if card.input_visibility == "hashed" and 0 <= index < len(instances):
        return instances[index]
    return None


def ezkl_proof_json(proof: Proof) -> dict[str, Any]:
    """The proof in the JSON form ``ezkl.verify`` reads."""
    return {"instances": [[felt_to_hex(v) for v in proof.instances]], "proof": list(proof.proof)}


def verify(bundle: BundleLike, proof: Proof) -> bool:
    """Verify a proof off-chain against the bundle's verifying key.

    When ``proof.input_commitment`` is set it must also be the commitment the proof carries
    (:func:`proof_commitment`): for a polycommit model that is the market's input check, so a
    valid proof of another input than the one committed to is refused here as on chain.

    Returns:
        ``True`` when the proof is valid for these instances and this model (and its input
        commitment); ``False`` for any invalid proof (including malformed bytes).
    """
    b = _bundle(bundle)
    expected = proof.input_commitment
    if expected is not None and proof_commitment(b.card, proof.proof, proof.instances) != int(expected):
        return False
    with tempfile.TemporaryDirectory(prefix="tender-verify-") as tmp:
        path = Path(tmp) / "proof.json"
        path.write_text(json.dumps(ezkl_proof_json(proof)))
        try:
            return bool(ezkl.verify(str(path), str(b.settings), str(b.vk), srs_path=str(b.srs)))
        except RuntimeError:
            return False


def verifier_calldata(proof: Proof) -> tuple[bytes, list[int]]:
    """``(proof_bytes, instances)`` for EZKL's ``verifyProof(bytes, uint256[])``."""
    return proof.calldata()
