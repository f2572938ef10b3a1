"""Small ONNX models of kinds Tender does not ship, built by hand (no torch) for the
bring-your-own-model tests and ``benchmarks/models.py``.

Each builder writes ``<folder>/model.onnx`` and ``<folder>/calibration.json`` (EZKL input JSON,
16 seeded samples concatenated) and returns the ONNX path; weights are seeded, so a second call
writes the same bytes (and the bundle cache hits)::

    python -m tests.harness.zoo lstm /tmp/zoo/lstm     # then: tender model build /tmp/zoo/lstm/model.onnx ...

Kinds: ``lstm`` (recurrent), ``pooling`` (average-pooling regressor, 27 outputs), ``softmax``
(a linear layer and a softmax), ``multi_output`` (two heads), ``convnet`` (conv, ReLU, max-pool,
dense) and ``sklearn_mlp`` (a scikit-learn ``MLPClassifier`` exported with skl2onnx, its label
output dropped).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
CALIBRATION_SAMPLES = 16


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _init(name: str, array: np.ndarray[Any, Any]) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array, dtype=np.float32), name)


def _value(name: str, shape: list[int]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _save(
    folder: Path,
    nodes: list[onnx.NodeProto],
    inputs: list[onnx.ValueInfoProto],
    outputs: list[onnx.ValueInfoProto],
    initializers: list[onnx.TensorProto],
    samples: np.ndarray[Any, Any],
    name: str,
) -> Path:
    graph = helper.make_graph(nodes, name, inputs, outputs, initializers)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="tender-zoo"
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return _write(folder, model, samples)


def _write(folder: Path, model: onnx.ModelProto, samples: np.ndarray[Any, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    onnx.save(model, str(path))
    flat = [round(float(v), 6) for v in np.asarray(samples, dtype=np.float64).reshape(-1)]
    (folder / "calibration.json").write_text(json.dumps({"input_data": [flat]}))
    return path


def lstm(folder: Path, *, seq: int = 4, features: int = 3, hidden: int = 4) -> Path:
    """A batch-first LSTM (as torch exports it: transpose, LSTM, last hidden state) and a dense
    head: ``[1, seq, features] -> [1, 2]`` (a regressor)."""
    rng = _rng(1)
    w = rng.normal(0, 0.5, (1, 4 * hidden, features))
    r = rng.normal(0, 0.5, (1, 4 * hidden, hidden))
    b = rng.normal(0, 0.1, (1, 8 * hidden))
    head = rng.normal(0, 0.5, (hidden, 2))
    nodes = [
        helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2]),
        helper.make_node("LSTM", ["xt", "W", "R", "B"], ["", "h"], hidden_size=hidden),
        helper.make_node("Reshape", ["h", "shape"], ["hf"]),
        helper.make_node("MatMul", ["hf", "head"], ["y"]),
    ]
    inits = [
        _init("W", w),
        _init("R", r),
        _init("B", b),
        _init("head", head),
        numpy_helper.from_array(np.asarray([1, hidden], dtype=np.int64), "shape"),
    ]
    samples = rng.uniform(-1, 1, (CALIBRATION_SAMPLES, 1, seq, features))
    return _save(
        folder, nodes, [_value("x", [1, seq, features])], [_value("y", [1, 2])], inits, samples, "lstm"
    )


def pooling(folder: Path) -> Path:
    """A 1x1 convolution and a 2x2 average pool: ``[1, 3, 6, 6] -> [1, 3, 3, 3]`` (a regressor)."""
    rng = _rng(2)
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[1, 1]),
        helper.make_node("AveragePool", ["c"], ["y"], kernel_shape=[2, 2], strides=[2, 2]),
    ]
    inits = [_init("w", rng.normal(0, 0.5, (3, 3, 1, 1))), _init("b", rng.normal(0, 0.1, (3,)))]
    samples = rng.uniform(0, 1, (CALIBRATION_SAMPLES, 1, 3, 6, 6))
    return _save(
        folder, nodes, [_value("x", [1, 3, 6, 6])], [_value("y", [1, 3, 3, 3])], inits, samples, "pool"
    )


def softmax(folder: Path) -> Path:
    """A dense layer and a softmax: ``[1, 8] -> [1, 4]`` probabilities (a classifier)."""
    rng = _rng(3)
    nodes = [
        helper.make_node("Gemm", ["x", "w", "b"], ["z"]),
        helper.make_node("Softmax", ["z"], ["y"], axis=-1),
    ]
    inits = [_init("w", rng.normal(0, 0.7, (8, 4))), _init("b", rng.normal(0, 0.1, (4,)))]
    samples = rng.uniform(-1, 1, (CALIBRATION_SAMPLES, 1, 8))
    return _save(folder, nodes, [_value("x", [1, 8])], [_value("y", [1, 4])], inits, samples, "softmax")


def multi_output(folder: Path) -> Path:
    """A shared ReLU layer and two heads: ``[1, 6] -> ([1, 3], [1, 2])``."""
    rng = _rng(4)
    nodes = [
        helper.make_node("Gemm", ["x", "w", "b"], ["z"]),
        helper.make_node("Relu", ["z"], ["h"]),
        helper.make_node("Gemm", ["h", "wa", "ba"], ["a"]),
        helper.make_node("Gemm", ["h", "wb", "bb"], ["b_out"]),
    ]
    inits = [
        _init("w", rng.normal(0, 0.5, (6, 8))),
        _init("b", rng.normal(0, 0.1, (8,))),
        _init("wa", rng.normal(0, 0.5, (8, 3))),
        _init("ba", rng.normal(0, 0.1, (3,))),
        _init("wb", rng.normal(0, 0.5, (8, 2))),
        _init("bb", rng.normal(0, 0.1, (2,))),
    ]
    samples = rng.uniform(-1, 1, (CALIBRATION_SAMPLES, 1, 6))
    outputs = [_value("a", [1, 3]), _value("b_out", [1, 2])]
    return _save(folder, nodes, [_value("x", [1, 6])], outputs, inits, samples, "two_heads")


def convnet(folder: Path) -> Path:
    """Conv 3x3 (2 channels), ReLU, 2x2 max-pool, dense: ``[1, 1, 6, 6] -> [1, 3]`` (a classifier)."""
    rng = _rng(5)
    nodes = [
        helper.make_node(
            "Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]
        ),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "wd", "bd"], ["y"]),
    ]
    inits = [
        _init("w", rng.normal(0, 0.5, (2, 1, 3, 3))),
        _init("b", rng.normal(0, 0.1, (2,))),
        _init("wd", rng.normal(0, 0.4, (18, 3))),
        _init("bd", rng.normal(0, 0.1, (3,))),
    ]
    samples = rng.uniform(0, 1, (CALIBRATION_SAMPLES, 1, 1, 6, 6))
    return _save(folder, nodes, [_value("x", [1, 1, 6, 6])], [_value("y", [1, 3])], inits, samples, "convnet")


def sklearn_mlp(folder: Path) -> Path:
    """scikit-learn's ``MLPClassifier`` (4 -> 8 -> 3, iris) exported with skl2onnx, keeping the
    ``probabilities`` output (skl2onnx also emits an int64 ``label``, which a circuit cannot
    carry as a field element output: dropped, as docs/MODELS.md tells users to)."""
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.neural_network import MLPClassifier

    x, y = load_iris(return_X_y=True)
    x = (x / x.max(axis=0)).astype(np.float32)
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=2_000, random_state=0).fit(x, y)
    exported = to_onnx(clf, x[:1], options={id(clf): {"zipmap": False}}, target_opset=OPSET)
    model = onnx.utils.Extractor(exported).extract_model(
        [i.name for i in exported.graph.input], ["probabilities"]
    )
    model.ir_version = 8
    del model.opset_import[:]
    model.opset_import.extend([helper.make_opsetid("", OPSET)])
    # a fixed batch of 1, as a circuit runs it
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].ClearField("dim_param")
        value.type.tensor_type.shape.dim[0].dim_value = 1
    samples = x[_rng(6).choice(len(x), CALIBRATION_SAMPLES, replace=False)].reshape(-1, 1, 4)
    return _write(folder, model, samples)


KINDS: dict[str, Callable[[Path], Path]] = {
    "lstm": lstm,
    "pooling": pooling,
    "softmax": softmax,
    "multi_output": multi_output,
    "convnet": convnet,
    "sklearn_mlp": sklearn_mlp,
}


if __name__ == "__main__":
    kind, out = sys.argv[1], Path(sys.argv[2])
    print(KINDS[kind](out))
