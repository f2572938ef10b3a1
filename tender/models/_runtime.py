"""Plain inference with onnxruntime (debugging, agreement checks, micro-batches).

onnxruntime-gpu lists the CUDA provider even where CUDA libraries are absent and then logs
an error when it falls back to the CPU; sessions here ask only for providers that load and
keep onnxruntime's own logging to errors that matter.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import onnxruntime as ort

_CPU = "CPUExecutionProvider"
_GPU = "CUDAExecutionProvider"


@functools.cache
def _gpu_works() -> bool:
    import onnxruntime as ort  # the provider/verifier extras; a requester only commits and verifies

    if _GPU not in ort.get_available_providers():
        return False
    options = ort.SessionOptions()
    options.log_severity_level = 4
    ort.set_default_logger_severity(4)
    try:
        from onnx import TensorProto, helper

        node = helper.make_node("Identity", ["x"], ["y"])
        graph = helper.make_graph(
            [node],
            "probe",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        session = ort.InferenceSession(model.SerializeToString(), options, providers=[_GPU, _CPU])
        return _GPU in session.get_providers()
    except Exception:
        return False
    finally:
        ort.set_default_logger_severity(3)


def providers(*, gpu: bool = True) -> list[str]:
    """Execution providers that actually load here: CUDA first when it works, then CPU."""
    return [_GPU, _CPU] if gpu and _gpu_works() else [_CPU]


@functools.lru_cache(maxsize=16)
def session(onnx_path: str, *, gpu: bool = False) -> ort.InferenceSession:
    """A cached inference session for one ONNX file (per process)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(onnx_path, options, providers=providers(gpu=gpu))


def run(onnx_path: Path, batch: np.ndarray[Any, Any], *, gpu: bool = False) -> np.ndarray[Any, Any]:
    """Run a batch (first axis) through the model and return its first output."""
    sess = session(str(onnx_path), gpu=gpu)
    name = sess.get_inputs()[0].name
    return np.asarray(sess.run(None, {name: batch.astype(np.float32)})[0])


def run_one(
    onnx_path: Path, values: Sequence[float], shape: Sequence[int], *, gpu: bool = False
) -> np.ndarray[Any, Any]:
    """Run one input of ``shape`` (batch 1 included) and return the flat output."""
    batch = np.asarray(values, dtype=np.float32).reshape(tuple(shape))
    return run(onnx_path, batch, gpu=gpu).reshape(-1)


def run_all(onnx_path: Path, values: Sequence[float], shape: Sequence[int]) -> np.ndarray[Any, Any]:
    """Run one input of ``shape`` (batch 1 included) on the CPU and return every output,
    flattened and concatenated in the graph's output order (as the circuit's instances)."""
    sess = session(str(onnx_path))
    batch = np.asarray(values, dtype=np.float32).reshape(tuple(shape))
    outputs = sess.run(None, {sess.get_inputs()[0].name: batch})
    return np.concatenate([np.asarray(o, dtype=np.float64).reshape(-1) for o in outputs])
