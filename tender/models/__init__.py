"""Model bundles: build an EZKL circuit for an ONNX model, prove inferences, verify on chain.

A *bundle* is one folder with the model, its circuit, keys, SRS, Solidity verifier and a
*model card* (``card.json``) of hashes, shapes, scales and the proof's instance layout::

    from tender.models import build, input_commitment, prove, verify

    bundle = build("models/mlp/model.onnx", "models/mlp/calibration.json")   # cached
    x = [0.0] * 64
    commitment = input_commitment(bundle, x)      # what a requester signs into its intent
    proof = prove(bundle, x)                      # outputs, instances, proof bytes
    assert verify(bundle, proof) and proof.input_commitment == commitment
    proof_bytes, instances = proof.calldata()     # verifyProof(bytes, uint256[])

Bundles bind the input with ``polycommit`` by default: the commitment is
``keccak256(proof[0:64])``, the KZG commitment of the input column, which a requester computes
with the bundle's vk and SRS (so ``input_commitment`` needs the bundle, not only its card);
``build(..., input_visibility="hashed")`` makes the Poseidon-instance variant instead.
``build(..., batch=N)`` makes one circuit over N jobs (``prove_batch``: job i's commitment is the
proof's point i, its outputs the i-th slice of the instances; docs/MODELS.md "Batched settlement").
The circuit's scale is chosen for accuracy within a size budget (``Recipe``: ``target``,
``scale``, ``max_logrows``, ``task``; docs/MODELS.md); models that cannot be carried are
refused up front (``UnsupportedModel``, ``CircuitTooLarge``). Bundles built with ``srs="dev"`` use a locally generated SRS: insecure, development only.
"""

from __future__ import annotations

from tender.chain._structs import INPUT_HASHED, INPUT_POLYCOMMIT
from tender.errors import ModelError
from tender.models._batch import (
    BatchProof,
    JobProof,
    job_of,
    market_batch_instances,
    prove_batch,
    verify_batch,
)
from tender.models._build import DEFAULT_INPUT_VISIBILITY, RECIPE, build, build_key
from tender.models._bundle import INSECURE_SRS_WARNING, Bundle, InstanceLayout, ModelCard
from tender.models._cli import cli_group
from tender.models._commit import ensure_commit_basis
from tender.models._errors import (
    BundleError,
    CircuitTooLarge,
    InputError,
    InsecureSrsError,
    ModelHashMismatch,
    ProofError,
    SolcError,
    SrsError,
    UnsupportedModel,
)
from tender.models._felt import FIELD_MODULUS, dequantize, felt_from_hex, flatten_input, quantize
from tender.models._kind import KINDS, ModelKind, model_kind
from tender.models._prove import (
    Proof,
    infer,
    infer_batch,
    input_commitment,
    output_felts,
    proof_commitment,
    prove,
    verifier_calldata,
    verify,
    witness_keys,
)
from tender.models._recipe import DEFAULT_MAX_LOGROWS, SCALES, Recipe
from tender.models._register import (
    LOCAL_CHAIN_IDS,
    Registration,
    check_onnx,
    check_srs,
    deploy_verifier,
    register_model,
    registered_models,
    registry_entry,
)
from tender.models._solc import compile_solidity

__all__ = [
    "DEFAULT_INPUT_VISIBILITY",
    "DEFAULT_MAX_LOGROWS",
    "FIELD_MODULUS",
    "INPUT_HASHED",
    "INPUT_POLYCOMMIT",
    "INSECURE_SRS_WARNING",
    "KINDS",
    "LOCAL_CHAIN_IDS",
    "RECIPE",
    "SCALES",
    "BatchProof",
    "Bundle",
    "BundleError",
    "CircuitTooLarge",
    "InputError",
    "InsecureSrsError",
    "InstanceLayout",
    "JobProof",
    "ModelCard",
    "ModelError",
    "ModelHashMismatch",
    "ModelKind",
    "Proof",
    "ProofError",
    "Recipe",
    "Registration",
    "SolcError",
    "SrsError",
    "UnsupportedModel",
    "build",
    "build_key",
    "check_onnx",
    "check_srs",
    "cli_group",
    "compile_solidity",
    "deploy_verifier",
    "dequantize",
    "ensure_commit_basis",
    "felt_from_hex",
    "flatten_input",
    "infer",
    "infer_batch",
    "input_commitment",
    "job_of",
    "market_batch_instances",
    "model_kind",
    "output_felts",
    "proof_commitment",
    "prove",
    "prove_batch",
    "quantize",
    "register_model",
    "registered_models",
    "registry_entry",
    "verifier_calldata",
    "verify",
    "verify_batch",
    "witness_keys",
]
