"""Batch bundles (issue #17): one real EZKL proof over 4 jobs of the sample MLP, each job's
input commitment and outputs in its own slot, checked against onnxruntime and on Anvil."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from web3 import Web3

from tender.models import (
    BatchProof,
    Bundle,
    BundleError,
    InputError,
    build,
    cli_group,
    deploy_verifier,
    infer,
    input_commitment,
    job_of,
    market_batch_instances,
    prove,
    prove_batch,
    registry_entry,
    verify_batch,
)
from tender.models._batch import job_slices
from tender.paths import ROOT, SAMPLE_MODELS

pytestmark = pytest.mark.slow

N = 4
MLP = SAMPLE_MODELS / "mlp"


@pytest.fixture(scope="module")
def batch_bundle() -> Bundle:
    return build(MLP / "model.onnx", MLP / "calibration.json", batch=N)


@pytest.fixture(scope="module")
def inputs(samples: dict[str, list[dict[str, Any]]]) -> list[list[float]]:
    return [list(map(float, s["input"])) for s in samples["mlp"]]


@pytest.fixture(scope="module")
def batch_proof(batch_bundle: Bundle, inputs: list[list[float]]) -> BatchProof:
    return prove_batch(batch_bundle, inputs[:N])


def test_batch_bundle_card(batch_bundle: Bundle, bundles: dict[str, Bundle]) -> None:
    card = batch_bundle.card
    assert card.name == "mlp-batch4"
    assert card.batch == N
    assert card.input_visibility == "polycommit"
    assert card.input_shape == bundles["mlp"].card.input_shape  # one job's shapes
    assert card.output_shape == bundles["mlp"].card.output_shape
    assert (card.layout.output_offset, card.layout.output_length, card.layout.instance_count) == (0, 10, 40)
    assert card.batch_layout() == {
        "batchSize": 4,
        "inputBinding": 1,
        "pointStride": 64,
        "commitmentIndex": 0,
        "outputOffset": 0,
        "outputLength": 10,
        "outputStride": 10,
        "instanceCount": 40,
    }
    assert [(s.point, s.outputs) for s in job_slices(card)] == [
        ((64 * i, 64 * i + 64), (10 * i, 10 * i + 10)) for i in range(N)
    ]
    assert card.job_onnx_sha256 == bundles["mlp"].card.onnx_sha256  # job.onnx is the sample model
    assert card.onnx_sha256 != card.job_onnx_sha256  # model.onnx: the batched graph
    assert card.circuit_agreement == 1.0
    # other cache key and folder than the single-job bundle; single cards do not show the field
    assert card.build_key != bundles["mlp"].card.build_key
    assert "batch" not in json.loads((bundles["mlp"].path / "card.json").read_text())
    assert json.loads((batch_bundle.path / "card.json").read_text())["batch"] == N


def test_each_slot_holds_its_own_job(
    batch_bundle: Bundle, batch_proof: BatchProof, inputs: list[list[float]]
) -> None:
    assert len(batch_proof.jobs) == N
    assert len(batch_proof.instances) == 40
    for job, x in zip(batch_proof.jobs, inputs[:N], strict=True):
        # the commitment a requester computes alone, from its own input, is the slot's point
        assert job.input_commitment == input_commitment(batch_bundle, x)
        reference = infer(batch_bundle, x)  # onnxruntime on job.onnx, this input only
        assert max(abs(a - b) for a, b in zip(job.output, reference, strict=True)) < 0.2
        assert max(range(10), key=lambda i: job.output[i]) == max(range(10), key=lambda i: reference[i])
        read = job_of(batch_bundle.card, batch_proof.proof, batch_proof.instances, job.index)
        assert read == job
    commitments = [input_commitment(batch_bundle, x) for x in inputs[:N]]
    assert len(set(commitments)) == N
    assert verify_batch(batch_bundle, batch_proof, commitments) == [True] * N
    outputs = [job.output_felts for job in batch_proof.jobs]
    assert market_batch_instances(batch_bundle.card, commitments, outputs) == batch_proof.instances


def test_a_swapped_input_fails_only_its_own_job(
    batch_bundle: Bundle, batch_proof: BatchProof, inputs: list[list[float]]
) -> None:
    commitments = [input_commitment(batch_bundle, x) for x in inputs[:N]]
    swapped = prove_batch(batch_bundle, [*inputs[:2], inputs[5], inputs[3]])  # job 2 proved on another input
    assert verify_batch(batch_bundle, swapped, commitments) == [True, True, False, True]
    assert swapped.jobs[2].input_commitment == input_commitment(batch_bundle, inputs[5])
    # the jobs in other slots keep their commitments and outputs
    for i in (0, 1, 3):
        assert swapped.jobs[i].input_commitment == batch_proof.jobs[i].input_commitment
        assert swapped.jobs[i].output_felts == batch_proof.jobs[i].output_felts
    # two jobs exchanged: both fail their own check though the proof itself is valid
    exchanged = prove_batch(batch_bundle, [inputs[1], inputs[0], *inputs[2:N]])
    assert verify_batch(batch_bundle, exchanged, commitments) == [False, False, True, True]
    assert verify_batch(batch_bundle, exchanged, [None] * N) == [True] * N
    # an output moved into another slot breaks the proof for every job
    tampered = BatchProof(
        batch_proof.model,
        batch_proof.onnx_sha256,
        batch_proof.proof,
        batch_proof.instances[10:20] + batch_proof.instances[:10] + batch_proof.instances[20:],
        batch_proof.jobs,
        batch_proof.prove_s,
    )
    assert verify_batch(batch_bundle, tampered, commitments) == [False] * N


def test_a_short_batch_is_padded(batch_bundle: Bundle, inputs: list[list[float]]) -> None:
    proof = prove_batch(batch_bundle, inputs[:1])
    assert [job.index for job in proof.jobs] == [0]
    assert verify_batch(batch_bundle, proof, [input_commitment(batch_bundle, inputs[0])]) == [True]
    with pytest.raises(InputError, match="1 to 4 inputs"):
        prove_batch(batch_bundle, inputs[:5])
    with pytest.raises(InputError):
        prove_batch(batch_bundle, [inputs[0][:10]])


def test_batch_bundles_refuse_single_job_use(
    batch_bundle: Bundle, bundles: dict[str, Bundle], inputs: list[list[float]]
) -> None:
    with pytest.raises(BundleError, match="prove_batch"):
        prove(batch_bundle, inputs[0])
    with pytest.raises(BundleError, match="prove\\(\\)"):
        prove_batch(bundles["mlp"], inputs[:1])
    with pytest.raises(BundleError, match="market_batch_instances"):
        batch_bundle.card.market_instances(0, [0] * 10)
    with pytest.raises(BundleError, match="polycommit or hashed, not 'public'"):
        build(MLP / "model.onnx", MLP / "calibration.json", batch=N, input_visibility="public")
    with pytest.raises(BundleError, match="batch must be"):
        build(MLP / "model.onnx", MLP / "calibration.json", batch=0)


def test_batch_proof_verifies_on_chain(
    chain: Any, batch_bundle: Bundle, batch_proof: BatchProof, gas_report: dict[str, int]
) -> None:
    address = deploy_verifier(chain.w3, chain.sender, batch_bundle)
    verifier = chain.w3.eth.contract(
        address=Web3.to_checksum_address(address), abi=batch_bundle.verifier()["abi"]
    )
    call = verifier.functions.verifyProof(*batch_proof.calldata())
    assert call.call() is True
    gas_report["mlp-batch4 (per query)"] = int(call.estimate_gas()) // N
    flipped = bytearray(batch_proof.proof)
    flipped[64 * 2 + 5] ^= 1  # job 2's point
    with pytest.raises(Exception):  # noqa: B017,PT011  # the verifier reverts on a bad proof
        assert verifier.functions.verifyProof(bytes(flipped), batch_proof.instances).call() is not True


def test_cli_builds_a_batch(batch_bundle: Bundle, tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["build", str(MLP / "model.onnx"), "--calibration", str(MLP / "calibration.json"), "--batch", "4"]
    built = runner.invoke(cli_group, args, env={"COLUMNS": "200"})
    assert built.exit_code == 0, built.output
    assert "4 jobs per proof" in built.output
    assert str(batch_bundle.path) in built.output.replace("\n", "")
    refused = subprocess.run(
        [
            sys.executable,
            "-c",
            "from tender.cli import main; main()",
            "model",
            *args,
            "--input-visibility",
            "public",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert refused.returncode == 2, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert "polycommit or hashed" in refused.stderr


def test_hashed_batch_puts_one_hash_per_job_first(
    batch_bundle: Bundle, inputs: list[list[float]], chain: Any
) -> None:
    hashed = build(MLP / "model.onnx", MLP / "calibration.json", batch=N, input_visibility="hashed")
    card = hashed.card
    assert card.batch_layout() == {
        "batchSize": 4,
        "inputBinding": 0,
        "pointStride": 0,
        "commitmentIndex": 0,
        "outputOffset": 4,
        "outputLength": 10,
        "outputStride": 10,
        "instanceCount": 44,
    }
    proof = prove_batch(hashed, inputs[:N])
    commitments = [input_commitment(card, x) for x in inputs[:N]]  # Poseidon: the card is enough
    assert proof.instances[:N] == commitments
    assert [job.input_commitment for job in proof.jobs] == commitments
    assert verify_batch(hashed, proof, commitments) == [True] * N
    for job, x in zip(proof.jobs, inputs[:N], strict=True):
        assert max(abs(a - b) for a, b in zip(job.output, infer(hashed, x), strict=True)) < 0.2
    swapped = prove_batch(hashed, [inputs[0], inputs[6], *inputs[2:N]])
    assert verify_batch(hashed, swapped, commitments) == [True, False, True, True]
    # the same jobs' outputs as the polycommit batch proves
    poly = prove_batch(batch_bundle, inputs[:N])
    assert [j.output_felts for j in proof.jobs] == [j.output_felts for j in poly.jobs]
    address = deploy_verifier(chain.w3, chain.sender, hashed)
    verifier = chain.w3.eth.contract(address=Web3.to_checksum_address(address), abi=hashed.verifier()["abi"])
    assert verifier.functions.verifyProof(*proof.calldata()).call() is True
    # a market builds the instances from the intents' commitments and the delivered outputs
    built = market_batch_instances(card, commitments, [job.output_felts for job in proof.jobs])
    assert built == proof.instances
    assert verifier.functions.verifyProof(proof.proof, built).call() is True
    # the same proof offered for job 1's intent with another input: the verifier refuses it
    other = market_batch_instances(
        card, [*commitments[:1], 12345, *commitments[2:]], [j.output_felts for j in proof.jobs]
    )
    with pytest.raises(Exception):  # noqa: B017,PT011  # EZKL's verifier reverts
        assert verifier.functions.verifyProof(proof.proof, other).call() is not True


def test_registry_entry_of_a_batch_bundle(batch_bundle: Bundle) -> None:
    """A batch bundle registers as its own model, its layout the batch's (``deliverBatch``)."""
    entry = registry_entry(batch_bundle, verifier="0x" + "11" * 20, owner="0x" + "22" * 20, chain_id=31337)
    layout = batch_bundle.card.batch_layout()
    assert entry["batchSize"] == N
    for key in ("inputBinding", "commitmentIndex", "outputOffset", "outputLength", "instanceCount"):
        assert entry[key] == layout[key], key
    assert list(entry)[-2:] == ["batchSize", "owner"]  # the struct's order


def test_deliver_batch_settles_a_real_batch_proof(
    market: Any, batch_bundle: Bundle, batch_proof: BatchProof, inputs: list[list[float]]
) -> None:
    """Four jobs awarded separately (each its own signed quote) settle with one real EZKL proof on
    Anvil: each checked and paid on its own slot; job 3, whose intent committed to another input than
    slot 3 holds, is skipped and stays awarded; outputs moved between slots fail the proof."""
    from tender.anvil import DEV_KEYS
    from tender.chain import BatchSkip, JobState, QuoteMarket, Registry, Token
    from tender.errors import ContractRevert
    from tender.intents import AuctionType, Intent, NonceSequence, ProofMode
    from tender.quotes import Quote, sign_quote

    w3 = market.chain.w3
    model_id = market.register("mlp-batch4", batch_bundle)
    assert Registry(w3, market.deployment.registry).model(model_id).batch_size == N
    address = market.deployment.market("quote")
    requester = QuoteMarket(w3, address, sender=market.requester.sender)
    provider = requester.using(market.provider.sender)
    Token(w3, market.deployment.token, sender=market.requester.sender).approve(address, 2**256 - 1)
    committed = [*inputs[:3], inputs[6]]  # job 3 committed to input 6; slot 3 proves input 3
    nonces = NonceSequence()
    jobs, terms = [], []
    for x in committed:
        now = int(w3.eth.get_block("latest")["timestamp"])
        intent = Intent(
            requester=requester.sender.address,
            model_id=model_id,
            input_commitment=input_commitment(batch_bundle, x),
            max_price=10**18,
            start_price=0,
            auction_type=AuctionType.QUOTE,
            auction_window=60,
            deadline=now + 3_600,
            proof_mode=ProofMode.ZK,
            price_weight_bps=5_000,
            nonce=nonces.next(),
            expiry=now + 600,
        )
        job = requester.job_id(intent)
        quote = Quote(
            job_id=job, provider=market.provider_address, price=10**17, latency=600, expiry=now + 30
        )
        signature = sign_quote(quote, DEV_KEYS[5], chain_id=requester.chain_id, market=address)
        jobs.append(job)
        terms.append(requester.terms_in(requester.open_awarded(intent, quote, signature)))
    outputs = [list(job.output_felts) for job in batch_proof.jobs]
    moved = [outputs[1], outputs[0], *outputs[2:]]
    with pytest.raises(ContractRevert) as caught:
        provider.deliver_batch(model_id, jobs, terms, moved, batch_proof.proof)
    assert caught.value.name == "BatchProofRejected"
    owed = provider.owed(market.provider_address)
    receipt = provider.deliver_batch(model_id, jobs, terms, outputs, batch_proof.proof)
    assert provider.batch_outcome(receipt) == ([0, 1, 2], {3: BatchSkip.INPUT_MISMATCH})
    assert [provider.job_state(j) for j in jobs] == [JobState.SETTLED] * 3 + [JobState.AWARDED]
    assert provider.owed(market.provider_address) - owed == 3 * 10**17
    delivered = [e for e in provider.events_in(receipt) if e.name == "Delivered"]
    assert [[int(v) for v in e.output] for e in delivered] == outputs[:3]  # type: ignore[attr-defined]
    with pytest.raises(ContractRevert) as caught:  # a replay settles nothing
        provider.deliver_batch(model_id, jobs, terms, outputs, batch_proof.proof)
    assert caught.value.name == "NothingSettled"


def test_cli_registers_a_batch_bundle(
    batch_bundle: Bundle, chain: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``tender model register`` of a batch bundle: the record carries ``batchSize`` and the batch layout."""
    from tender.anvil import DEV_KEYS
    from tender.chain import Registry, deploy_artifact
    from tender.models._register import registered_models

    registry, _ = deploy_artifact(chain.sender, "ModelRegistry")
    monkeypatch.setenv("TENDER_PRIVATE_KEY", DEV_KEYS[2])
    args = ["register", str(batch_bundle.path), "--rpc", chain.anvil.rpc_url, "--registry", registry]
    registered = CliRunner().invoke(cli_group, args)
    assert registered.exit_code == 0, registered.output
    ((model_id, info),) = registered_models(chain.w3, registry)
    assert Registry(chain.w3, registry).model(model_id) == info
    layout = batch_bundle.card.batch_layout()
    assert (info.batch_size, info.output_offset, info.output_length, info.instance_count) == (
        N,
        layout["outputOffset"],
        layout["outputLength"],
        layout["instanceCount"],
    )
