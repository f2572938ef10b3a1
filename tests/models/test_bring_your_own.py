"""Bring your own model: kinds Tender does not ship (``tests/harness/zoo.py``) go the whole way
(build, prove, verify off-chain, register on Anvil, settle one market job) or are refused up
front with one clear line, before any key is made or any transaction is sent.

The builds use ``max_logrows=14`` to stay quick: the accuracy target then picks the largest
scale that fits 2^14 rows (the default budget, 2^15, is measured by benchmarks/models.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tender.chain import JobState, Registry
from tender.models import (
    Bundle,
    BundleError,
    CircuitTooLarge,
    Recipe,
    UnsupportedModel,
    build,
    infer,
    input_commitment,
    prove,
    register_model,
    verify,
)
from tender.paths import ROOT
from tests.harness import zoo

pytestmark = pytest.mark.slow

BUDGET = 14

#: kind -> (task, output values, instance count)
KINDS: dict[str, tuple[str, int]] = {
    "lstm": ("regress", 2),
    "pooling": ("regress", 27),
    "softmax": ("classify", 4),
    "multi_output": ("regress", 5),
    "convnet": ("classify", 3),
    "sklearn_mlp": ("classify", 3),
}


@pytest.fixture(scope="session")
def zoo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("zoo")
    for kind, make in zoo.KINDS.items():
        make(folder / kind)
    return folder


_BUILT: dict[str, Bundle] = {}


def zoo_bundle(zoo_dir: Path, kind: str) -> Bundle:
    """The kind's bundle at the test budget (built once per session, cached across runs)."""
    if kind not in _BUILT:
        task = "classify" if kind == "convnet" else None  # logits without a softmax: say so
        _BUILT[kind] = build(
            zoo_dir / kind / "model.onnx",
            zoo_dir / kind / "calibration.json",
            max_logrows=BUDGET,
            task=task,  # type: ignore[arg-type]
        )
    return _BUILT[kind]


def _first_sample(folder: Path, size: int) -> list[float]:
    flat = json.loads((folder / "calibration.json").read_text())["input_data"][0]
    return [float(v) for v in flat[:size]]


@pytest.mark.parametrize("kind", list(KINDS))
def test_model_kind_builds_proves_and_settles_a_market_job(zoo_dir: Path, market: Any, kind: str) -> None:
    task, outputs = KINDS[kind]
    bundle = zoo_bundle(zoo_dir, kind)
    card = bundle.card
    assert card.name == kind  # the folder's name, not the file's stem
    assert card.logrows <= BUDGET
    assert card.recipe is not None
    assert card.recipe["target"] == "accuracy"
    assert card.input_scale == card.recipe["scale"]
    assert card.task == task
    assert card.layout.output_length == card.layout.instance_count == outputs
    # the card's error is measured against onnxruntime; argmax agreement for classifiers only
    assert card.max_abs_error is not None
    assert card.max_rel_error is not None
    assert card.max_rel_error < 0.05
    if task == "classify":
        assert card.circuit_agreement is not None
        assert card.circuit_agreement >= 0.9
    else:
        assert card.circuit_agreement is None

    x = _first_sample(zoo_dir / kind, card.input_size)
    proof = prove(bundle, x)
    assert verify(bundle, proof)
    reference = np.asarray(infer(bundle, x)) if kind != "multi_output" else None
    if reference is not None:
        assert np.max(np.abs(np.asarray(proof.output) - reference)) <= card.max_abs_error * 2 + 1e-3

    registration = register_model(market.chain.w3, market.chain.sender, market.deployment.registry, bundle)
    info = Registry(market.chain.w3, market.deployment.registry).model(registration.model_id)
    assert (info.output_offset, info.output_length, info.instance_count) == (0, outputs, outputs)
    job = market.open_job(registration.model_id, input_commitment(bundle, x))
    receipt = market.provider.deliver(job, proof.output_felts, proof.proof)
    assert receipt["status"] == 1
    assert market.provider.job(job).state is JobState.SETTLED


def test_multi_output_binds_every_output(zoo_dir: Path) -> None:
    """Both heads are instances, in the graph's order, and the card lists their shapes."""
    bundle = zoo_bundle(zoo_dir, "multi_output")
    assert bundle.card.output_shapes == ((1, 3), (1, 2))
    x = _first_sample(zoo_dir / "multi_output", bundle.card.input_size)
    import onnxruntime as ort

    session = ort.InferenceSession(str(bundle.onnx))
    heads = session.run(None, {session.get_inputs()[0].name: np.asarray(x, np.float32).reshape(1, 6)})
    reference = np.concatenate([h.reshape(-1) for h in heads])
    proof = prove(bundle, x)
    assert len(proof.output) == 5
    assert np.max(np.abs(np.asarray(proof.output) - reference)) <= bundle.card.max_abs_error * 2 + 1e-3


def test_accuracy_target_beats_resources_target(zoo_dir: Path) -> None:
    """The default target takes the largest scale within the budget (softmax: its Exp table grows
    with the scale), ``resources`` the smallest circuit: fewer rows, a larger error."""
    accurate = zoo_bundle(zoo_dir, "softmax").card
    small = build(
        zoo_dir / "softmax" / "model.onnx", zoo_dir / "softmax" / "calibration.json", target="resources"
    ).card
    assert small.logrows < accurate.logrows
    assert small.input_scale < accurate.input_scale
    assert accurate.max_abs_error is not None
    assert small.max_abs_error is not None
    assert accurate.max_abs_error < small.max_abs_error


def test_too_large_a_circuit_is_refused_before_any_key(zoo_dir: Path, tmp_path: Path) -> None:
    lstm = zoo_dir / "lstm"
    with pytest.raises(CircuitTooLarge) as caught:
        build(lstm / "model.onnx", lstm / "calibration.json", max_logrows=12, cache_dir=tmp_path)
    message = str(caught.value)
    assert "\n" not in message
    assert "--max-logrows 12" in message
    assert "2^14 rows" in message
    assert "Sigmoid/Tanh" in message
    # EZKL's own rebase choice (the first recipe) blows the LSTM's lookup tables up: refused too
    legacy = Recipe(scale=7, scale_rebase_multiplier=None)
    with pytest.raises(CircuitTooLarge, match=r"needs 2\^2[0-9] rows at scale 7 .*lookup range"):
        build(lstm / "model.onnx", lstm / "calibration.json", recipe=legacy, cache_dir=tmp_path)
    assert not any((tmp_path / "models").iterdir())  # nothing left, not even a partial folder
    assert not (tmp_path / "srs").exists()


def test_unsupported_graphs_are_refused_up_front(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])
    label = helper.make_tensor_value_info("label", TensorProto.INT64, [1])
    cases = {
        "two_inputs": helper.make_graph(
            [helper.make_node("Add", ["x", "x2"], ["y"])],
            "g",
            [x, helper.make_tensor_value_info("x2", TensorProto.FLOAT, [1, 2])],
            [y],
        ),
        "label_output": helper.make_graph(
            [
                helper.make_node("Relu", ["x"], ["y"]),
                helper.make_node("ArgMax", ["x"], ["label"], axis=1, keepdims=0),
            ],
            "g",
            [x],
            [y, label],
        ),
        "unknown_op": helper.make_graph([helper.make_node("Det", ["x"], ["y"])], "g", [x], [y]),
    }
    messages = {}
    for name, graph in cases.items():
        folder = tmp_path / name
        folder.mkdir()
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        onnx.save(model, str(folder / "model.onnx"))
        (folder / "calibration.json").write_text(json.dumps({"input_data": [[0.1, 0.2, 0.3, 0.4]]}))
        with pytest.raises(UnsupportedModel) as caught:
            build(folder / "model.onnx", folder / "calibration.json", cache_dir=tmp_path / "cache")
        messages[name] = str(caught.value)
    assert "takes 2 inputs" in messages["two_inputs"]
    assert "label" in messages["label_output"]
    assert "not a float tensor" in messages["label_output"]
    assert "cannot turn" in messages["unknown_op"]
    assert not list((tmp_path / "cache" / "models").glob("*"))


def test_public_input_bundle_is_refused_before_any_transaction(zoo_dir: Path, market: Any) -> None:
    """``register_model`` refuses a public-input bundle without deploying its verifier first."""
    folder = zoo_dir / "multi_output"
    bundle = build(
        folder / "model.onnx", folder / "calibration.json", input_visibility="public", max_logrows=BUDGET
    )
    w3, sender = market.chain.w3, market.chain.sender
    nonce = w3.eth.get_transaction_count(sender.address)
    with pytest.raises(BundleError, match="public inputs; the market needs a hashed or polycommit input"):
        register_model(w3, sender, market.deployment.registry, bundle)
    assert w3.eth.get_transaction_count(sender.address) == nonce


def test_cli_build_prints_progress_lines_without_a_terminal(zoo_dir: Path, tmp_path: Path) -> None:
    """Through a pipe (no terminal) every step still prints a line; ``--name`` defaults to the
    folder; a refusal is one ``error:`` line and exit code 2."""
    folder = zoo_dir / "multi_output"
    env = {**os.environ, "TENDER_CACHE": str(tmp_path / "cache")}
    command = [
        sys.executable,
        "-c",
        "from tender.cli import main; main()",
        "model",
        "build",
        str(folder / "model.onnx"),
        "--calibration",
        str(folder / "calibration.json"),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr
    for step in (
        "settings and calibration",
        "calibration: scale 13",
        "compile circuit",
        "SRS (k=",
        "keys (setup",
        "EVM verifier",
        "self-check",
        "built in",
    ):
        assert f"[multi_output] {step}" in done.stderr, done.stderr
    refused = subprocess.run(
        [*command, "--max-logrows", "8"], env=env, capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert refused.returncode == 2
    (line,) = [ln for ln in refused.stderr.splitlines() if ln.startswith("error:")]
    assert "over the budget --max-logrows 8" in line


def test_ctrl_c_stops_a_build_and_leaves_nothing(zoo_dir: Path, tmp_path: Path) -> None:
    """SIGINT to a real ``tender model build`` during its SRS step (native EZKL code): the build
    stops, exits 130 and leaves no partial bundle or SRS file."""
    folder = zoo_dir / "lstm"
    cache = tmp_path / "cache"
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from tender.cli import main; main()",
            "model",
            "build",
            str(folder / "model.onnx"),
            "--calibration",
            str(folder / "calibration.json"),
            "--name",
            "lstm-int",
            "--scale",
            "13",
            "--max-logrows",
            "17",
        ],
        env={**os.environ, "TENDER_CACHE": str(cache)},
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
        stdout=subprocess.DEVNULL,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert process.stderr is not None
    seen = []
    for line in process.stderr:
        seen.append(line)
        if "SRS (k=17" in line:  # a fresh cache: the dev SRS for 2^17 rows is being generated (~20 s)
            break
    process.send_signal(signal.SIGINT)
    rest = process.stderr.read()
    assert process.wait(timeout=120) == 130, "".join(seen) + rest
    assert "aborted" in rest
    leftovers = [p for p in cache.rglob("*") if p.is_file() or p.name.endswith(".partial")]
    assert leftovers == []
