"""Real proofs through the real market on Anvil: the registered layout binds input and output.

For the polycommit default the intent carries ``keccak256`` of the input's KZG point and the
market compares it with ``keccak256(proof[0:64])`` before calling the verifier; the hashed
variant (``INPUT_HASHED``) puts the Poseidon hash at ``commitmentIndex`` as before.
"""

from __future__ import annotations

from typing import Any

import pytest

from tender.chain import INPUT_HASHED, INPUT_POLYCOMMIT, JobState, Registry
from tender.errors import ContractRevert
from tender.models import Bundle, input_commitment, prove

pytestmark = pytest.mark.slow

MODELS = ("mlp", "cnn")


@pytest.mark.parametrize("name", MODELS)
def test_market_settles_a_proof_of_the_committed_input(
    market: Any, bundles: dict[str, Bundle], samples: dict[str, list[dict[str, Any]]], name: str
) -> None:
    bundle = bundles[name]
    model_id = market.register(name, bundle)
    info = Registry(market.chain.w3, market.deployment.registry).model(model_id)
    assert (info.input_binding, info.commitment_index, info.output_offset, info.instance_count) == (
        INPUT_POLYCOMMIT,
        0,
        0,
        10,
    )
    x = samples[name][0]["input"]
    job = market.open_job(model_id, input_commitment(bundle, x))
    proof = prove(bundle, x)
    receipt = market.provider.deliver(job, proof.output_felts, proof.proof)
    assert receipt["status"] == 1
    assert market.provider.job(job).state is JobState.SETTLED
    (delivered,) = [e for e in market.provider.events_in(receipt) if e.name == "Delivered"]
    assert [int(v) for v in delivered.output] == proof.output_felts  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", MODELS)
def test_market_refuses_a_proof_of_another_input(
    market: Any, bundles: dict[str, Bundle], samples: dict[str, list[dict[str, Any]]], name: str
) -> None:
    """A valid proof (it verifies) of another input than the intent's: ``InputMismatch``."""
    bundle = bundles[name]
    model_id = market.register(name, bundle)
    job = market.open_job(model_id, input_commitment(bundle, samples[name][1]["input"]))
    other = prove(bundle, samples[name][2]["input"])
    with pytest.raises(ContractRevert) as caught:
        market.provider.deliver(job, other.output_felts, other.proof)
    assert caught.value.name == "InputMismatch"
    # the binding is the first point only: another input's point spliced into a proof fails too
    honest = prove(bundle, samples[name][1]["input"])
    spliced = other.proof[:64] + honest.proof[64:]
    with pytest.raises(ContractRevert) as caught:
        market.provider.deliver(job, honest.output_felts, spliced)
    assert caught.value.name == "InputMismatch"
    forged = honest.proof[:64] + other.proof[64:]  # the right point on another proof: the verifier says no
    with pytest.raises(ContractRevert) as caught:
        market.provider.deliver(job, other.output_felts, forged)
    assert caught.value.name == "ProofRejected"
    with pytest.raises(ContractRevert) as caught:  # a proof shorter than one point
        market.provider.deliver(job, honest.output_felts, honest.proof[:63])
    assert caught.value.name == "InputMismatch"
    market.provider.deliver(job, honest.output_felts, honest.proof)
    assert market.provider.job(job).state is JobState.SETTLED


def test_market_refuses_a_flipped_byte_and_other_weights(
    market: Any,
    bundles: dict[str, Bundle],
    perturbed_bundle: Bundle,
    samples: dict[str, list[dict[str, Any]]],
) -> None:
    bundle = bundles["mlp"]
    model_id = market.register("mlp", bundle)
    x = samples["mlp"][3]["input"]
    job = market.open_job(model_id, input_commitment(bundle, x))
    proof = prove(bundle, x)
    tampered = bytearray(proof.proof)
    tampered[len(tampered) // 2] ^= 0x01
    with pytest.raises(ContractRevert) as caught:
        market.provider.deliver(job, proof.output_felts, bytes(tampered))
    assert caught.value.name == "ProofRejected"
    # the perturbed model's proof of the same input carries the same input point, but not the weights
    foreign = prove(perturbed_bundle, x)
    assert foreign.input_commitment == proof.input_commitment
    with pytest.raises(ContractRevert) as caught:
        market.provider.deliver(job, foreign.output_felts, foreign.proof)
    assert caught.value.name == "ProofRejected"


def test_market_with_a_hashed_input_model(
    market: Any, hashed_bundle: Bundle, samples: dict[str, list[dict[str, Any]]]
) -> None:
    """``INPUT_HASHED`` end to end: the commitment is the instance at ``commitmentIndex``."""
    model_id = market.register("mlp-hashed", hashed_bundle)
    info = Registry(market.chain.w3, market.deployment.registry).model(model_id)
    assert (info.input_binding, info.commitment_index, info.output_offset, info.instance_count) == (
        INPUT_HASHED,
        0,
        1,
        11,
    )
    x, y = samples["mlp"][4]["input"], samples["mlp"][5]["input"]
    job = market.open_job(model_id, input_commitment(hashed_bundle.card, x))
    other = prove(hashed_bundle, y)
    with pytest.raises(ContractRevert) as caught:  # the verifier sees another commitment instance
        market.provider.deliver(job, other.output_felts, other.proof)
    assert caught.value.name == "ProofRejected"
    proof = prove(hashed_bundle, x)
    market.provider.deliver(job, proof.output_felts, proof.proof)
    assert market.provider.job(job).state is JobState.SETTLED
