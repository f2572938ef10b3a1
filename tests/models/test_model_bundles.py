"""Bundles, commitments and off-chain proofs with real EZKL and onnxruntime."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import pickle
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from eth_utils import keccak

from tender.models import (
    DEFAULT_INPUT_VISIBILITY,
    INPUT_HASHED,
    INPUT_POLYCOMMIT,
    Bundle,
    BundleError,
    InputError,
    InstanceLayout,
    Proof,
    SrsError,
    build,
    infer,
    infer_batch,
    input_commitment,
    prove,
    verify,
)
from tender.models._bundle import sha256_file
from tender.models._ezkl import dev_srs, ezkl
from tender.models._felt import quantize
from tender.paths import SAMPLE_MODELS

pytestmark = pytest.mark.slow

MODELS = ("mlp", "cnn")


def test_build_reuses_the_cache(
    bundles: dict[str, Bundle], hashed_bundle: Bundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_rebuild(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cached bundle was built again")

    monkeypatch.setattr("tender.models._build._in_child", no_rebuild)
    again = build(SAMPLE_MODELS / "mlp" / "model.onnx", SAMPLE_MODELS / "mlp" / "calibration.json")
    assert again == bundles["mlp"]
    # the input visibility is part of the cache key
    assert hashed_bundle.path != bundles["mlp"].path
    assert hashed_bundle.card.build_key != bundles["mlp"].card.build_key
    with pytest.raises(BundleError, match="input_visibility"):
        build(
            SAMPLE_MODELS / "mlp" / "model.onnx",
            SAMPLE_MODELS / "mlp" / "calibration.json",
            input_visibility="private",
        )  # type: ignore[arg-type]


@pytest.mark.parametrize("name", MODELS)
def test_card_describes_the_bundle(bundles: dict[str, Bundle], name: str) -> None:
    bundle = bundles[name]
    card = bundle.card
    meta = json.loads((SAMPLE_MODELS / name / "meta.json").read_text())
    assert card.onnx_sha256 == sha256_file(SAMPLE_MODELS / name / "model.onnx") == meta["onnx_sha256"]
    assert card.settings_sha256 == sha256_file(bundle.settings)
    assert card.vk_sha256 == sha256_file(bundle.vk)
    assert card.insecure_srs is True
    assert card.input_visibility == DEFAULT_INPUT_VISIBILITY == "polycommit"
    assert card.input_binding == INPUT_POLYCOMMIT
    # no input instance: the outputs are the whole instance vector
    assert card.layout == InstanceLayout(
        commitment_index=-1, output_offset=0, output_length=10, instance_count=10
    )
    assert card.registry_layout() == {
        "inputBinding": 1,
        "commitmentIndex": 0,
        "outputOffset": 0,
        "outputLength": 10,
        "instanceCount": 10,
        "batchSize": 1,
    }
    assert card.accuracy == meta["heldout_accuracy"]
    assert card.circuit_agreement == 1.0
    assert card.logrows <= 13
    assert card.proof_modes_mask == 3
    run_args = json.loads((bundle.path / "settings.json").read_text())["run_args"]
    assert run_args["param_visibility"] == "Fixed"
    assert run_args["input_visibility"] == "KZGCommit"  # EZKL's name for polycommit


def test_bundle_pickles(bundles: dict[str, Bundle]) -> None:
    assert pickle.loads(pickle.dumps(bundles["mlp"])) == bundles["mlp"]


@pytest.mark.parametrize("name", MODELS)
def test_proof_verifies_and_matches_inference(
    bundles: dict[str, Bundle], samples: dict[str, list[dict[str, Any]]], name: str
) -> None:
    bundle = bundles[name]
    sample = samples[name][0]
    proof = prove(bundle, sample["input"])
    assert verify(bundle, proof)
    assert int(np.argmax(proof.output)) == sample["label"]
    reference = infer(bundle, sample["input"])
    assert np.allclose(proof.output, reference, atol=0.5)
    assert int(np.argmax(reference)) == int(np.argmax(proof.output))
    assert proof.instances == proof.output_felts  # polycommit: the outputs are the only instances


@pytest.mark.parametrize("name", MODELS)
def test_input_commitment_is_keccak_of_the_proofs_first_point(
    bundles: dict[str, Bundle], samples: dict[str, list[dict[str, Any]]], name: str
) -> None:
    bundle = bundles[name]
    x = samples[name][1]["input"]
    proof = prove(bundle, x)
    commitment = input_commitment(bundle, x)
    # what the market computes: uint256(keccak256(proof[0:64]))
    assert commitment == int.from_bytes(keccak(proof.proof[:64]), "big") == proof.input_commitment
    # proof[0:64] is the KZG commitment of the quantized input under the bundle's vk and SRS
    (point,) = ezkl.kzg_commit(
        quantize(x, bundle.card.input_scale), str(bundle.vk), str(bundle.settings), str(bundle.srs)
    )
    assert bytes.fromhex(point.x)[::-1] + bytes.fromhex(point.y)[::-1] == proof.proof[:64]
    # the bundle's path works too; nested or array input gives the same commitment; another input does not
    assert input_commitment(bundle.path, x) == commitment
    assert input_commitment(bundle, np.asarray(x).reshape(bundle.card.input_shape)) == commitment
    assert input_commitment(bundle, samples[name][2]["input"]) != commitment
    # unblinded: a second proof of the same input starts with the same point
    assert prove(bundle, x).proof[:64] == proof.proof[:64]


def test_polycommit_commitment_needs_the_bundle(bundles: dict[str, Bundle]) -> None:
    with pytest.raises(BundleError, match="verifying key and SRS"):
        input_commitment(bundles["mlp"].card, [0.0] * 64)


def test_commitment_time(bundles: dict[str, Bundle]) -> None:
    """One KZG commitment (vk and SRS read from disk, MSM) is ~15 ms; a repeated input is cached."""
    x = list(np.random.default_rng().random(64))
    started = time.perf_counter()
    first = input_commitment(bundles["mlp"], x)
    cold = time.perf_counter() - started
    started = time.perf_counter()
    assert input_commitment(bundles["mlp"], x) == first
    warm = time.perf_counter() - started
    print(f"input_commitment: {cold * 1000:.1f} ms, cached {warm * 1000:.2f} ms")


def test_proof_of_another_input_is_refused_off_chain(
    bundles: dict[str, Bundle], samples: dict[str, list[dict[str, Any]]]
) -> None:
    bundle = bundles["mlp"]
    proof = prove(bundle, samples["mlp"][0]["input"])
    other = input_commitment(bundle, samples["mlp"][1]["input"])
    assert verify(bundle, proof)
    # a valid proof, presented for another input's commitment: the binding check refuses it
    assert not verify(bundle, dataclasses.replace(proof, input_commitment=other))


def test_hashed_input_bundle(hashed_bundle: Bundle, samples: dict[str, list[dict[str, Any]]]) -> None:
    """The Poseidon variant stays available: the commitment is instance 0, a card suffices."""
    card = hashed_bundle.card
    assert (card.input_visibility, card.input_binding) == ("hashed", INPUT_HASHED)
    assert card.layout == InstanceLayout(
        commitment_index=0, output_offset=1, output_length=10, instance_count=11
    )
    assert card.registry_layout()["inputBinding"] == 0
    x = samples["mlp"][1]["input"]
    proof = prove(hashed_bundle, x)
    assert verify(hashed_bundle, proof)
    commitment = input_commitment(card, x)
    assert proof.input_commitment == commitment == proof.instances[0] == input_commitment(hashed_bundle, x)
    assert proof.instances[1:] == proof.output_felts
    assert not verify(hashed_bundle, dataclasses.replace(proof, input_commitment=commitment + 1))


def test_flipped_byte_is_refused_off_chain(
    bundles: dict[str, Bundle], samples: dict[str, list[dict[str, Any]]]
) -> None:
    bundle = bundles["mlp"]
    proof = prove(bundle, samples["mlp"][0]["input"])
    for position in (0, len(proof.proof) // 2, len(proof.proof) - 1):
        tampered = bytearray(proof.proof)
        tampered[position] ^= 0x01
        assert not verify(bundle, dataclasses.replace(proof, proof=bytes(tampered)))
    outputs = list(proof.instances)
    outputs[1] += 1
    assert not verify(bundle, dataclasses.replace(proof, instances=outputs))
    # a flip in the first point breaks both the proof and its input binding
    tampered = bytearray(proof.proof)
    tampered[7] ^= 0x01
    assert not verify(bundle, dataclasses.replace(proof, proof=bytes(tampered), input_commitment=None))


def test_other_weights_do_not_verify_off_chain(
    bundles: dict[str, Bundle], perturbed_bundle: Bundle, samples: dict[str, list[dict[str, Any]]]
) -> None:
    assert perturbed_bundle.card.onnx_sha256 != bundles["mlp"].card.onnx_sha256
    assert perturbed_bundle.card.layout == bundles["mlp"].card.layout
    proof = prove(perturbed_bundle, samples["mlp"][0]["input"])
    assert verify(perturbed_bundle, proof)
    assert not verify(bundles["mlp"], proof)


def test_proof_round_trips_through_json(
    bundles: dict[str, Bundle], samples: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    proof = prove(bundles["mlp"], samples["mlp"][3]["input"])
    loaded = Proof.load(proof.save(tmp_path / "proof.json"))
    assert loaded == proof
    assert verify(bundles["mlp"], loaded)


def test_proving_in_a_process_pool(
    bundles: dict[str, Bundle], samples: dict[str, list[dict[str, Any]]]
) -> None:
    inputs = [s["input"] for s in samples["mlp"][:2]]
    # EZKL's native thread pools do not survive fork(): pools must spawn (or forkserver).
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        proofs = list(pool.map(prove, [bundles["mlp"].path] * len(inputs), inputs))
    assert all(verify(bundles["mlp"], p) for p in proofs)
    assert [p.input_commitment for p in proofs] == [input_commitment(bundles["mlp"], x) for x in inputs]


def test_wrong_input_size_is_refused(bundles: dict[str, Bundle]) -> None:
    with pytest.raises(InputError):
        prove(bundles["mlp"], [0.0] * 63)
    with pytest.raises(InputError):
        input_commitment(bundles["mlp"], [float("nan")] * 64)


def test_micro_batch_inference_matches_single(
    bundles: dict[str, Bundle], samples: dict[str, list[dict[str, Any]]]
) -> None:
    for name in MODELS:
        batch = [s["input"] for s in samples[name]]
        outputs = infer_batch(bundles[name], batch)
        assert outputs.shape == (len(batch), 10)
        assert np.allclose(outputs[2], infer(bundles[name], batch[2]), atol=1e-5)
        labels = [s["label"] for s in samples[name]]
        assert np.mean(outputs.argmax(axis=1) == labels) >= 0.75


def test_user_supplied_srs(
    tmp_path: Path, bundles: dict[str, Bundle], samples: dict[str, list[dict[str, Any]]]
) -> None:
    """A folder of per-k SRS files (EZKL's public layout) is accepted; the bundle is not insecure."""
    logrows = bundles["mlp"].card.logrows
    folder = tmp_path / "pot"
    # stand-ins for a Powers-of-Tau download: one file per k
    srs_file = dev_srs(folder, logrows).rename(folder / f"kzg{logrows}.srs")
    dev_srs(folder, logrows - 1).rename(folder / f"kzg{logrows - 1}.srs")
    bundle = build(
        SAMPLE_MODELS / "mlp" / "model.onnx",
        SAMPLE_MODELS / "mlp" / "calibration.json",
        srs=folder,
        cache_dir=tmp_path / "cache",
    )
    assert bundle.card.insecure_srs is False
    assert bundle.card.srs_sha256 == sha256_file(srs_file)
    assert verify(bundle, prove(bundle, samples["mlp"][0]["input"]))


def test_too_small_srs_is_refused(tmp_path: Path, bundles: dict[str, Bundle]) -> None:
    srs_file = dev_srs(tmp_path / "srs", bundles["mlp"].card.logrows - 2)
    with pytest.raises(SrsError):
        build(
            SAMPLE_MODELS / "mlp" / "model.onnx",
            SAMPLE_MODELS / "mlp" / "calibration.json",
            srs=srs_file,
            cache_dir=tmp_path / "cache",
        )
    with pytest.raises(SrsError):
        build(
            SAMPLE_MODELS / "mlp" / "model.onnx",
            SAMPLE_MODELS / "mlp" / "calibration.json",
            srs=tmp_path / "nope",
        )
