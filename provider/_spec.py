"""What the node knows about a served model's tensors, read from the ONNX graph.

The batch dimension is dynamic when the first input dimension is symbolic (``batch_size``)
or absent; only then are concurrent requests micro-batched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from tender.errors import ModelError


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One input or output tensor: its name, dtype and shape (``None`` for a symbolic dim)."""

    name: str
    dtype: np.dtype  # type: ignore[type-arg]
    shape: tuple[int | None, ...]

    @property
    def dynamic_batch(self) -> bool:
        return bool(self.shape) and self.shape[0] is None

    def single_shape(self) -> tuple[int, ...]:
        """The shape of one request: batch 1, every other symbolic dim refused."""
        dims = list(self.shape)
        if dims and dims[0] is None:
            dims[0] = 1
        if any(d is None for d in dims):
            raise ModelError(f"tensor {self.name!r} has symbolic dims beyond the batch: {self.shape}")
        return tuple(int(d) for d in dims)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A served model's ONNX file and its (single) input and output tensors."""

    name: str
    onnx_path: Path
    input: TensorSpec
    output: TensorSpec

    @property
    def dynamic_batch(self) -> bool:
        return self.input.dynamic_batch and self.output.dynamic_batch


def _tensor(value: onnx.ValueInfoProto) -> TensorSpec:
    tensor_type = value.type.tensor_type
    dims: list[int | None] = []
    for dim in tensor_type.shape.dim:
        dims.append(int(dim.dim_value) if dim.HasField("dim_value") and dim.dim_value > 0 else None)
    dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor_type.elem_type))
    return TensorSpec(name=value.name, dtype=dtype, shape=tuple(dims))


def read_spec(name: str, onnx_path: Path) -> ModelSpec:
    """Read the input and output tensors of ``onnx_path`` (initializers excluded)."""
    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except (OSError, onnx.onnx_cpp2py_export.checker.ValidationError, ValueError) as exc:  # type: ignore[attr-defined]
        raise ModelError(f"cannot read ONNX model {onnx_path}: {exc}") from exc
    graph = model.graph
    initializers = {init.name for init in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise ModelError(
            f"{onnx_path}: the node serves models with one input and one output, "
            f"got {len(inputs)} inputs and {len(graph.output)} outputs"
        )
    return ModelSpec(
        name=name, onnx_path=Path(onnx_path), input=_tensor(inputs[0]), output=_tensor(graph.output[0])
    )
