"""Batched circuits: one proof over ``N`` jobs of the same model (issue #17).

A batch bundle's circuit is an ONNX graph with ``N`` copies of the model's nodes side by side,
sharing its weights (initializers): inputs ``input__0 .. input__{N-1}``, outputs in job order.
EZKL binds every input tensor on its own (measured with EZKL 23, docs/MODELS.md "Batched
settlement"), so each job has its own commitment and its own slice of outputs
(``L = card.layout.output_length``):

- ``polycommit``: every input gets its own unblinded advice column, whose KZG commitment is
  the proof's point ``i``; the instances are the outputs::

      proof[64*i : 64*i + 64]          job i's input KZG point (x || y, big-endian)
      instances[i*L : i*L + L]         job i's outputs

- ``hashed``: one Poseidon hash per input, the hashes first, then the outputs::

      instances[i]                     Poseidon(job i's quantized input)
      instances[N + i*L : N + i*L + L] job i's outputs

Job ``i``'s commitment depends on job ``i``'s input only: the point is ``kzg_commit`` of that
input alone (:func:`tender.models.input_commitment` with the batch bundle), the hash its
Poseidon hash. So a requester commits to its input alone, the market checks job ``i``'s
commitment against its intent and reads its outputs from its slice, and a job's payment depends
on its own slice only. A KZG point depends on the input, the SRS and the circuit's size
(``2**logrows``), not on the circuit otherwise: an input committed for the batch-4 bundle (k 14)
has another point under the single (k 12) or batch-16 (k 16) bundle; a Poseidon hash is the
same for every bundle of the model.

A batch proved with fewer than ``N`` jobs is padded with zero inputs; the padding slots are
nobody's job.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from tender.commit import point_commitment
from tender.models._commit import proof_bytes
from tender.models._errors import BundleError, InputError, ProofError
from tender.models._ezkl import ezkl
from tender.models._felt import dequantize, felt_from_hex, felt_to_hex, flatten_input

if TYPE_CHECKING:
    from tender.models._bundle import Bundle, ModelCard

#: Bytes of one G1 point in the proof (x || y, 32 bytes each).
POINT_BYTES = 64

#: The largest batch ``build`` accepts (the verifier's MSM grows by one point per job).
MAX_BATCH = 64

#: The per-job model inside a batch bundle (``model.onnx`` is the batched graph).
JOB_ONNX = "job.onnx"


def input_name(index: int) -> str:
    """The batched graph's input tensor of job ``index``."""
    return f"input__{index}"


def batch_graph(onnx_src: Path, dst: Path, n: int) -> None:
    """Write ``n`` copies of ``onnx_src``'s graph side by side, sharing its weights.

    Every node and tensor name gets a ``__{i}`` suffix except the initializers; the inputs and
    outputs get a fixed batch dimension 1 (as EZKL runs a single model).
    """
    import onnx
    from onnx import helper

    model = onnx.load(str(onnx_src))
    graph = model.graph
    weights = {t.name for t in graph.initializer}
    nodes: list[Any] = []
    inputs: list[Any] = []
    outputs: list[Any] = []
    for i in range(n):

        def rename(name: str, i: int = i) -> str:
            return name if not name or name in weights else f"{name}__{i}"

        for node in graph.node:
            copy = onnx.NodeProto()
            copy.CopyFrom(node)
            copy.name = f"{node.name}__{i}"
            del copy.input[:]
            copy.input.extend(rename(s) for s in node.input)
            del copy.output[:]
            copy.output.extend(rename(s) for s in node.output)
            nodes.append(copy)
        for source, target in ((graph.input, inputs), (graph.output, outputs)):
            for value in source:
                if value.name in weights:
                    continue
                copy = onnx.ValueInfoProto()
                copy.CopyFrom(value)
                copy.name = rename(value.name)
                dims = copy.type.tensor_type.shape.dim
                if dims and not dims[0].HasField("dim_value"):
                    dims[0].Clear()
                    dims[0].dim_value = 1
                target.append(copy)
    batched = helper.make_graph(
        nodes, f"{graph.name or 'model'}_batch{n}", inputs, outputs, list(graph.initializer)
    )
    out = helper.make_model(batched, opset_imports=model.opset_import)
    out.ir_version = model.ir_version
    onnx.checker.check_model(out)
    onnx.save(out, str(dst))


def batch_calibration(samples: np.ndarray[Any, Any], dst: Path, n: int) -> None:
    """EZKL's multi-input JSON: every input of the batch calibrated on all the samples."""
    flat = [float(v) for v in samples.reshape(-1)]
    dst.write_text(json.dumps({"input_data": [flat] * n}))


@dataclass(frozen=True)
class JobSlice:
    """Where job ``index`` of a batch proof sits.

    Attributes:
        index: the job's slot in the batch.
        point: byte range of its input's KZG point in the proof (``[start, end)``; polycommit),
            ``None`` for hashed inputs.
        commitment: index of its input's Poseidon hash in the instances (hashed), ``None`` for
            polycommit inputs.
        outputs: range of its outputs in the instances (``[start, end)``).
    """

    index: int
    point: tuple[int, int] | None
    commitment: int | None
    outputs: tuple[int, int]


def job_slices(card: ModelCard) -> list[JobSlice]:
    """The slices of every slot of a batch card (one for a single-job card)."""
    length = card.layout.output_length
    offset = card.layout.output_offset
    hashed = card.input_visibility == "hashed"
    return [
        JobSlice(
            index=i,
            point=None if hashed else (POINT_BYTES * i, POINT_BYTES * (i + 1)),
            commitment=card.layout.commitment_index + i if hashed else None,
            outputs=(offset + length * i, offset + length * (i + 1)),
        )
        for i in range(card.batch)
    ]


@dataclass(frozen=True)
class JobProof:
    """One job's part of a batch proof.

    Attributes:
        index: its slot.
        input_commitment: what its intent must carry: ``keccak256(proof[64i : 64i+64])``
            (polycommit) or ``instances[i]`` (hashed).
        output: its outputs as floats.
        output_felts: its outputs as field elements (``instances[i*L : i*L+L]``).
    """

    index: int
    input_commitment: int
    output: list[float]
    output_felts: list[int]


@dataclass(frozen=True)
class BatchProof:
    """One proof of up to ``N`` inferences.

    Attributes:
        model: the batch bundle's name.
        onnx_sha256: the batched graph the proof is for (from the card).
        proof: the proof bytes (``verifyProof``'s ``bytes``).
        instances: the hashes (hashed inputs) then every slot's outputs, in slot order
            (``verifyProof``'s ``uint256[]``).
        jobs: the jobs proved (padding slots excluded), in slot order.
        prove_s: seconds spent on witness generation and proving.
    """

    model: str
    onnx_sha256: str
    proof: bytes = field(repr=False)
    instances: list[int]
    jobs: list[JobProof]
    prove_s: float

    def calldata(self) -> tuple[bytes, list[int]]:
        """The arguments of ``verifyProof(bytes proof, uint256[] instances)``."""
        return self.proof, list(self.instances)


def _batch_card(bundle: Bundle) -> ModelCard:
    card = bundle.card
    if card.batch < 2:
        raise BundleError(f"model {card.name} proves one job per proof: use prove(), not prove_batch()")
    return card


def prove_batch(bundle: Bundle | str | Path, inputs: Sequence[Any]) -> BatchProof:
    """Prove up to ``card.batch`` jobs' inputs in one proof.

    Args:
        bundle: a batch bundle (``build(..., batch=N)``) or its path.
        inputs: one input per job (``card.input_size`` values each), at most ``N``; missing
            slots are padded with zeros.

    Raises:
        BundleError: the bundle is not a batch bundle.
        InputError: too many inputs, or one of the wrong size.
        ProofError: EZKL could not build the witness or the proof.
    """
    from tender.models._bundle import Bundle

    b = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
    card = _batch_card(b)
    if not 1 <= len(inputs) <= card.batch:
        raise InputError(f"a batch of model {card.name} holds 1 to {card.batch} inputs, not {len(inputs)}")
    values = [flatten_input(x, card.input_size) for x in inputs]
    padded = values + [[0.0] * card.input_size] * (card.batch - len(values))
    from tender.models._prove import run_prover

    instances, data, elapsed = run_prover(b, padded, what=f"a batch of {card.name}")
    jobs = [_job(card, data, instances, s) for s in job_slices(card)[: len(values)]]
    return BatchProof(card.name, card.onnx_sha256, data, instances, jobs, elapsed)


def _job(card: ModelCard, proof: bytes, instances: list[int], slot: JobSlice) -> JobProof:
    felts = instances[slot.outputs[0] : slot.outputs[1]]
    if slot.point is not None:
        commitment = point_commitment(proof[slot.point[0] : slot.point[1]])
    else:
        commitment = instances[cast(int, slot.commitment)]
    return JobProof(
        index=slot.index,
        input_commitment=commitment,
        output=[dequantize(v, card.output_scale) for v in felts],
        output_felts=felts,
    )


def job_of(card: ModelCard, proof: bytes, instances: Sequence[int], index: int) -> JobProof:
    """Job ``index``'s commitment and outputs as a market reads them from a batch proof.

    Raises:
        ProofError: no such slot, or the proof or instances are too short for it.
    """
    if not 0 <= index < card.batch:
        raise ProofError(f"model {card.name} has batch slots 0..{card.batch - 1}, not {index}")
    slot = job_slices(card)[index]
    if (slot.point is not None and len(proof) < slot.point[1]) or len(
        instances
    ) != card.layout.instance_count:
        raise ProofError(f"the proof or instances are too short for slot {index} of model {card.name}")
    return _job(card, proof, list(instances), slot)


def verify_batch(
    bundle: Bundle | str | Path, proof: BatchProof, commitments: Sequence[int | None]
) -> list[bool]:
    """Check a batch proof job by job, as a market settling each job would.

    Job ``i`` is accepted when the proof verifies and job ``i``'s commitment (its point's
    keccak256, or its Poseidon instance) is ``commitments[i]`` (its intent's input commitment;
    ``None``: an empty slot, not checked).

    Returns:
        One flag per commitment; all ``False`` when the proof itself is invalid.
    """
    from tender.models._bundle import Bundle

    b = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
    card = _batch_card(b)
    if len(commitments) > card.batch:
        raise InputError(f"a batch of model {card.name} has {card.batch} slots, not {len(commitments)}")
    with tempfile.TemporaryDirectory(prefix="tender-verify-batch-") as tmp:
        path = Path(tmp) / "proof.json"
        path.write_text(
            json.dumps({"instances": [[felt_to_hex(v) for v in proof.instances]], "proof": list(proof.proof)})
        )
        try:
            valid = bool(ezkl.verify(str(path), str(b.settings), str(b.vk), srs_path=str(b.srs)))
        except RuntimeError:
            valid = False
    flags = []
    for index, expected in enumerate(commitments):
        if not valid or expected is None:
            flags.append(valid)
            continue
        try:
            flags.append(job_of(card, proof.proof, proof.instances, index).input_commitment == int(expected))
        except ProofError:
            flags.append(False)
    return flags


def self_check(
    bundle: Bundle, samples: np.ndarray[Any, Any], input_shape: tuple[int, ...], input_scale: int, log: Path
) -> list[tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]]:
    """The build's check of a batch bundle (the batch form of ``_build._check``).

    The calibration samples are run through the circuit ``N`` at a time (witness); the first
    batch is proved and verified, and every slot must hold its own job: its outputs at
    ``instances[i*L : i*L+L]`` (after the hashes, if hashed) equal to the witness's outputs of
    input ``i``, and its commitment equal to the one computed from input ``i`` alone:
    ``proof[64i : 64i+64]`` its KZG point (polycommit), ``instances[i]`` its Poseidon hash.

    Returns:
        (circuit outputs, onnxruntime outputs of the per-job model) for every sample.

    Raises:
        BundleError: the proof does not verify or a slot is not where the layout says.
    """
    from tender.models import _runtime
    from tender.models._commit import kzg_points
    from tender.models._ezkl import self_check_proof
    from tender.models._felt import poseidon, quantize

    settings = json.loads(bundle.settings.read_text())
    n = len(settings["model_input_scales"])
    hashed = "Hashed" in json.dumps(settings["run_args"]["input_visibility"])
    keys = (None, None) if hashed else (str(bundle.vk), str(bundle.srs))
    scratch = bundle.path / "check"
    scratch.mkdir()
    pairs: list[tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]] = []
    output_scale = int(settings["model_output_scales"][0])
    for start in range(0, len(samples), n):
        chunk = [[float(v) for v in samples[(start + i) % len(samples)]] for i in range(n)]
        (scratch / "input.json").write_text(json.dumps({"input_data": chunk}))
        witness = ezkl.gen_witness(
            str(scratch / "input.json"), str(bundle.compiled), str(scratch / "witness.json"), *keys
        )
        per_output = [[felt_from_hex(f) for f in output] for output in witness["outputs"]]
        heads = len(per_output) // n
        job_outputs = [
            [v for output in per_output[i * heads : (i + 1) * heads] for v in output] for i in range(n)
        ]
        for i, values in enumerate(chunk[: len(samples) - start]):
            circuit = np.asarray([dequantize(v, output_scale) for v in job_outputs[i]])
            pairs.append((circuit, _runtime.run_all(bundle.path / JOB_ONNX, values, input_shape)))
        if start:
            continue
        proof, ok = self_check_proof(scratch, bundle, log)
        if not ok:
            raise BundleError("self-check failed: the batch proof of calibration samples does not verify")
        instances = [felt_from_hex(f) for f in proof["instances"][0]]
        data = proof_bytes(proof["proof"])
        length = len(job_outputs[0])
        before = n if hashed else 0
        if len(instances) != before + n * length:
            raise BundleError(
                f"self-check failed: the batch proof has {len(instances)} instances, not {before} + {n}x{length}"
            )
        for i, values in enumerate(chunk):
            start_i = before + i * length
            if instances[start_i : start_i + length] != job_outputs[i]:
                raise BundleError(f"self-check failed: job {i}'s outputs are not at instances {start_i}..")
            if hashed:
                if instances[i] != poseidon(quantize(values, input_scale)):
                    raise BundleError(f"self-check failed: instance {i} is not job {i}'s input hash")
                continue
            points = kzg_points(bundle, quantize(values, input_scale))
            if len(points) != 1:
                raise BundleError(f"the input spans {len(points)} polycommit columns; the market binds one")
            if data[POINT_BYTES * i : POINT_BYTES * (i + 1)] != points[0]:
                raise BundleError(
                    f"self-check failed: the proof's point {i} is not job {i}'s input commitment computed alone"
                )
    import shutil

    shutil.rmtree(scratch)
    return pairs


def market_batch_instances(
    card: ModelCard, commitments: Sequence[int], outputs: Sequence[Sequence[int]]
) -> list[int]:
    """The instance vector a market builds for a batch delivery (the reference for a
    ``deliverBatch``): slot ``i`` gets job ``i``'s outputs at ``outputOffset + outputStride*i``
    and, for hashed inputs, job ``i``'s intent commitment at ``commitmentIndex + i``. A
    polycommit market checks ``keccak256(proof[64i : 64i+64])`` against ``commitments[i]``
    instead (:func:`job_of`); the commitments are unused here then.

    Args:
        card: a batch card.
        commitments: one per slot (its job's intent commitment; a padding slot's own).
        outputs: one field-element list per slot (``outputLength`` each).

    Raises:
        BundleError: not one commitment and one output of the right length per slot.
    """
    layout = card.batch_layout()
    n = layout["batchSize"]
    if len(commitments) != n or len(outputs) != n:
        raise BundleError(
            f"a batch of model {card.name} has {n} slots: got {len(commitments)} commitments, "
            f"{len(outputs)} outputs"
        )
    instances = [0] * layout["instanceCount"]
    for i, (commitment, output) in enumerate(zip(commitments, outputs, strict=True)):
        if len(output) != layout["outputLength"]:
            raise BundleError(f"slot {i}'s output has {len(output)} elements, not {layout['outputLength']}")
        if card.input_visibility == "hashed":
            instances[layout["commitmentIndex"] + i] = int(commitment)
        start = layout["outputOffset"] + layout["outputStride"] * i
        instances[start : start + len(output)] = [int(v) for v in output]
    return instances
