"""EZKL verifiers on a real Anvil: valid proofs pass, tampered or foreign proofs do not."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3
from web3.exceptions import ContractLogicError, Web3RPCError

from tender.anvil import DEV_KEYS, Anvil
from tender.chain import TxSender
from tender.models import (
    INPUT_HASHED,
    INPUT_POLYCOMMIT,
    Bundle,
    InsecureSrsError,
    ModelHashMismatch,
    Proof,
    deploy_verifier,
    prove,
    registry_entry,
)

pytestmark = pytest.mark.slow

MODELS = ("mlp", "cnn")


def accepts(chain: Any, bundle: Bundle, verifier: str, proof: Proof) -> bool:
    """eth_call verifyProof: true only for a valid proof (EZKL's verifier reverts otherwise)."""
    contract = chain.w3.eth.contract(address=Web3.to_checksum_address(verifier), abi=bundle.verifier()["abi"])
    proof_bytes, instances = proof.calldata()
    try:
        return bool(contract.functions.verifyProof(proof_bytes, instances).call())
    except (ContractLogicError, Web3RPCError, ValueError):
        return False


@pytest.mark.parametrize("name", MODELS)
def test_proof_verifies_on_chain(
    chain: Any,
    bundles: dict[str, Bundle],
    verifiers: dict[str, str],
    samples: dict[str, list[dict[str, Any]]],
    gas_report: dict[str, int],
    name: str,
) -> None:
    bundle = bundles[name]
    proof = prove(bundle, samples[name][0]["input"])
    assert accepts(chain, bundle, verifiers[name], proof)
    contract = chain.w3.eth.contract(
        address=Web3.to_checksum_address(verifiers[name]), abi=bundle.verifier()["abi"]
    )
    receipt = chain.sender.send(contract.functions.verifyProof(*proof.calldata()))
    assert receipt["status"] == 1
    gas_report[name] = int(receipt["gasUsed"])
    assert gas_report[name] < 450_000  # issue #6: polycommit inputs (~426k), hashed ones cost ~540k


@pytest.mark.parametrize("name", MODELS)
def test_flipped_byte_is_refused_on_chain(
    chain: Any,
    bundles: dict[str, Bundle],
    verifiers: dict[str, str],
    samples: dict[str, list[dict[str, Any]]],
    name: str,
) -> None:
    bundle = bundles[name]
    proof = prove(bundle, samples[name][0]["input"])
    for position in (5, len(proof.proof) // 2, len(proof.proof) - 3):
        tampered = bytearray(proof.proof)
        tampered[position] ^= 0x01
        assert not accepts(chain, bundle, verifiers[name], dataclasses.replace(proof, proof=bytes(tampered)))


def test_changed_output_is_refused_on_chain(
    chain: Any,
    bundles: dict[str, Bundle],
    verifiers: dict[str, str],
    samples: dict[str, list[dict[str, Any]]],
) -> None:
    bundle = bundles["mlp"]
    proof = prove(bundle, samples["mlp"][0]["input"])
    layout = bundle.card.layout
    for index in (layout.output_offset, layout.output_offset + 3):
        instances = list(proof.instances)
        instances[index] += 1
        assert not accepts(chain, bundle, verifiers["mlp"], dataclasses.replace(proof, instances=instances))
    assert not accepts(
        chain, bundle, verifiers["mlp"], dataclasses.replace(proof, instances=proof.instances[:-1])
    )
    # an input instance in front (the hashed layout) is refused by a polycommit verifier
    assert not accepts(
        chain, bundle, verifiers["mlp"], dataclasses.replace(proof, instances=[0, *proof.instances])
    )


def test_hashed_bundle_on_chain(
    chain: Any, hashed_bundle: Bundle, samples: dict[str, list[dict[str, Any]]], gas_report: dict[str, int]
) -> None:
    """The Poseidon variant: valid proofs pass, a changed commitment instance does not."""
    verifier = deploy_verifier(chain.w3, chain.sender, hashed_bundle)
    proof = prove(hashed_bundle, samples["mlp"][0]["input"])
    assert accepts(chain, hashed_bundle, verifier, proof)
    instances = list(proof.instances)
    instances[hashed_bundle.card.layout.commitment_index] += 1
    assert not accepts(chain, hashed_bundle, verifier, dataclasses.replace(proof, instances=instances))
    contract = chain.w3.eth.contract(
        address=Web3.to_checksum_address(verifier), abi=hashed_bundle.verifier()["abi"]
    )
    receipt = chain.sender.send(contract.functions.verifyProof(*proof.calldata()))
    gas_report["mlp (hashed input)"] = int(receipt["gasUsed"])


def test_proof_for_other_weights_is_refused_on_chain(
    chain: Any,
    bundles: dict[str, Bundle],
    verifiers: dict[str, str],
    perturbed_bundle: Bundle,
    samples: dict[str, list[dict[str, Any]]],
) -> None:
    proof = prove(perturbed_bundle, samples["mlp"][0]["input"])
    own_verifier = deploy_verifier(chain.w3, chain.sender, perturbed_bundle)
    assert accepts(chain, perturbed_bundle, own_verifier, proof)
    assert not accepts(chain, bundles["mlp"], verifiers["mlp"], proof)
    # the honest model's proof of the same input is not valid for the perturbed verifier either
    honest = prove(bundles["mlp"], samples["mlp"][0]["input"])
    assert honest.input_commitment == proof.input_commitment
    assert not accepts(chain, perturbed_bundle, own_verifier, honest)


def test_deployed_code_is_the_cards(
    chain: Any, bundles: dict[str, Bundle], verifiers: dict[str, str]
) -> None:
    for name, address in verifiers.items():
        code = bytes(chain.w3.eth.get_code(Web3.to_checksum_address(address)))
        assert Web3.keccak(code).to_0x_hex() == bundles[name].card.verifier_runtime_keccak256


def test_registry_entry_fields(
    chain: Any, bundles: dict[str, Bundle], hashed_bundle: Bundle, verifiers: dict[str, str]
) -> None:
    bundle = bundles["mlp"]
    entry = registry_entry(bundle, verifier=verifiers["mlp"], owner=chain.sender.address, chain_id=31337)
    assert list(entry) == [
        "onnxSha256",
        "settingsHash",
        "verifier",
        "inputBinding",
        "commitmentIndex",
        "outputOffset",
        "outputLength",
        "instanceCount",
        "proofModes",
        "auditRateBps",
        "batchSize",
        "owner",
    ]
    assert entry["batchSize"] == 1
    assert bytes(entry["onnxSha256"]).hex() == bundle.card.onnx_sha256
    assert bytes(entry["settingsHash"]).hex() == bundle.card.settings_sha256
    fields = ("inputBinding", "commitmentIndex", "outputOffset", "outputLength", "instanceCount")
    assert tuple(entry[f] for f in fields) == (INPUT_POLYCOMMIT, 0, 0, 10, 10)
    assert entry["proofModes"] == 3
    hashed = registry_entry(
        hashed_bundle, verifier=verifiers["mlp"], owner=chain.sender.address, chain_id=31337
    )
    assert tuple(hashed[f] for f in fields) == (INPUT_HASHED, 0, 1, 10, 11)


def test_registration_refuses_another_onnx(
    bundles: dict[str, Bundle], perturbed_onnx: Path, verifiers: dict[str, str]
) -> None:
    with pytest.raises(ModelHashMismatch) as caught:
        registry_entry(
            bundles["mlp"],
            verifier=verifiers["mlp"],
            owner=verifiers["mlp"],
            chain_id=31337,
            onnx_path=perturbed_onnx,
        )
    assert caught.value.expected == bundles["mlp"].card.onnx_sha256


def test_dev_srs_is_refused_on_a_non_local_chain(
    bundles: dict[str, Bundle], verifiers: dict[str, str]
) -> None:
    bundle = bundles["mlp"]
    owner = verifiers["mlp"]
    with pytest.raises(InsecureSrsError):
        registry_entry(bundle, verifier=owner, owner=owner, chain_id=8453)
    entry = registry_entry(bundle, verifier=owner, owner=owner, chain_id=8453, allow_insecure_srs=True)
    assert entry["instanceCount"] == 10
    registry_entry(bundle, verifier=owner, owner=owner, chain_id=1337)
    with Anvil(chain_id=8453) as other:
        w3 = Web3(Web3.HTTPProvider(other.rpc_url))
        sender = TxSender(w3, DEV_KEYS[1])
        with pytest.raises(InsecureSrsError):
            deploy_verifier(w3, sender, bundle)
        assert w3.eth.get_transaction_count(sender.address) == 0
        assert deploy_verifier(w3, sender, bundle, allow_insecure_srs=True)


def test_register_model_in_the_registry(
    chain: Any, bundles: dict[str, Bundle], verifiers: dict[str, str]
) -> None:
    from tender.chain import Registry, deploy_artifact
    from tender.models import register_model, registered_models

    registry_address, _ = deploy_artifact(chain.sender, "ModelRegistry")
    bundle = bundles["mlp"]
    first = register_model(chain.w3, chain.sender, registry_address, bundle, verifier=verifiers["mlp"])
    assert first.tx_hash is not None
    again = register_model(chain.w3, chain.sender, registry_address, bundle, verifier=verifiers["mlp"])
    assert again.tx_hash is None
    assert again.model_id == first.model_id
    info = Registry(chain.w3, registry_address).model(first.model_id)
    assert info.onnx_sha256.hex() == bundle.card.onnx_sha256
    assert info.verifier == verifiers["mlp"]
    assert (
        info.input_binding,
        info.commitment_index,
        info.output_offset,
        info.output_length,
        info.instance_count,
    ) == (INPUT_POLYCOMMIT, 0, 0, 10, 10)
    listed = registered_models(chain.w3, registry_address)
    assert [model_id for model_id, _ in listed] == [first.model_id]
