"""Checking a job's input against the model before anything is recorded.

The input is JSON: nested lists of numbers. We accept the model's single-request shape
(batch 1), the same without its leading 1-dims, or the flat vector of the same length.
Everything else is refused with the exact field that is wrong::

    check_input(spec.input, [[0.0] * 64])   # -> NDArray[Any] of shape (1, 64)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from provider._errors import InputRejected
from provider._spec import TensorSpec


def _shape_of(value: Any, path: str) -> tuple[int, ...]:
    """The rectangular shape of nested lists; refuses non-numbers and ragged lists."""
    if isinstance(value, list):
        if not value:
            raise InputRejected(f"{path} is an empty list", field=path, code="wrong_shape")
        shapes = [_shape_of(item, f"{path}[{i}]") for i, item in enumerate(value)]
        first = shapes[0]
        for i, shape in enumerate(shapes[1:], start=1):
            if shape != first:
                raise InputRejected(
                    f"{path} is ragged: {path}[0] has shape {list(first)}, {path}[{i}] has {list(shape)}",
                    field=f"{path}[{i}]",
                    code="wrong_shape",
                )
        return (len(value), *first)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputRejected(
            f"{path} must be a number, got {type(value).__name__} {value!r:.40}",
            field=path,
            code="wrong_dtype",
        )
    return ()


def _first_bad(values: list[Any], path: str, test: Any, *, dims: tuple[int, ...]) -> str:
    flat_index = next(i for i, v in enumerate(values) if test(v))
    index = np.unravel_index(flat_index, dims) if dims else ()
    return path + "".join(f"[{int(i)}]" for i in index)


def accepted_shapes(spec: TensorSpec) -> list[tuple[int, ...]]:
    """Shapes a request may have: full, without leading 1-dims, and flat."""
    full = spec.single_shape()
    shapes = [full]
    trimmed = full
    while len(trimmed) > 1 and trimmed[0] == 1:
        trimmed = trimmed[1:]
        shapes.append(trimmed)
    flat = (math.prod(full),)
    if flat not in shapes:
        shapes.append(flat)
    return shapes


def check_input(spec: TensorSpec, value: Any, *, path: str = "input") -> NDArray[Any]:
    """Validate ``value`` against ``spec``; returns it as an array of the single-request shape."""
    shape = _shape_of(value, path)
    allowed = accepted_shapes(spec)
    if shape not in allowed:
        raise InputRejected(
            f"{path} has shape {list(shape)}; the model takes {list(spec.single_shape())}"
            f" (or {' or '.join(str(list(s)) for s in allowed[1:])})",
            field=path,
            code="wrong_shape",
        )
    flat = np.asarray(value, dtype=np.float64).ravel().tolist()
    if not all(math.isfinite(v) for v in flat):
        field = _first_bad(flat, path, lambda v: not math.isfinite(v), dims=shape)
        raise InputRejected(f"{field} is not a finite number", field=field, code="wrong_dtype")
    dtype = spec.dtype
    if dtype.kind in "iu":
        bad = next((i for i, v in enumerate(flat) if not float(v).is_integer()), None)
        if bad is not None:
            field = _first_bad(flat, path, lambda v: not float(v).is_integer(), dims=shape)
            raise InputRejected(
                f"{field} must be an integer ({dtype}), got {flat[bad]}", field=field, code="wrong_dtype"
            )
        info = np.iinfo(dtype)
        if any(v < info.min or v > info.max for v in flat):
            field = _first_bad(flat, path, lambda v: v < info.min or v > info.max, dims=shape)
            raise InputRejected(f"{field} is out of range for {dtype}", field=field, code="wrong_dtype")
    elif dtype.kind == "f":
        limit = float(np.finfo(dtype).max)
        if any(abs(v) > limit for v in flat):
            field = _first_bad(flat, path, lambda v: abs(v) > limit, dims=shape)
            raise InputRejected(f"{field} overflows {dtype}", field=field, code="wrong_dtype")
    elif dtype.kind != "b":
        raise InputRejected(f"the model's input dtype {dtype} is not served", field=path, code="wrong_dtype")
    return np.asarray(flat, dtype=dtype).reshape(spec.single_shape())
