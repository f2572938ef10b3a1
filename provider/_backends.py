"""Inference backends behind one interface.

:class:`OnnxRuntimeBackend` runs the models in-process (CUDA execution provider when a GPU
is usable, else CPU, chosen quietly); :class:`KServeBackend` calls an external server that
speaks the Open Inference Protocol (KServe v2 REST, ``POST /v2/models/{name}/infer``). The
node only ever calls :meth:`InferenceBackend.infer` with a batch (leading batch dimension),
so micro-batching works the same over both. Proofs are always made locally.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import httpx
import numpy as np
from numpy.typing import NDArray

from provider._errors import BackendError, ModelNotServed
from provider._spec import ModelSpec
from tender.logs import log

logger = logging.getLogger("provider.backend")

#: numpy dtype -> Open Inference Protocol datatype name.
OIP_DATATYPES: dict[str, str] = {
    "float32": "FP32",
    "float64": "FP64",
    "float16": "FP16",
    "int64": "INT64",
    "int32": "INT32",
    "int16": "INT16",
    "int8": "INT8",
    "uint8": "UINT8",
    "bool": "BOOL",
}
NUMPY_DTYPES = {v: k for k, v in OIP_DATATYPES.items()}


class InferenceBackend(ABC):
    """Runs batches of inputs through served models."""

    kind: str = "backend"

    def __init__(self) -> None:
        self.specs: dict[str, ModelSpec] = {}

    @abstractmethod
    async def load(self, specs: Sequence[ModelSpec]) -> None:
        """Make every model ready (load and warm); raise :class:`BackendError` if one cannot be."""

    @abstractmethod
    async def infer(self, model: str, batch: NDArray[Any]) -> NDArray[Any]:
        """Run ``batch`` (leading batch dimension) through ``model``; one output row per input row."""

    @abstractmethod
    def device(self, model: str) -> str:
        """Where ``model`` runs (the execution provider, or the external server)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release sessions and connections."""

    def _loaded(self, spec: ModelSpec) -> None:
        """Log that ``spec``'s model is loaded and warm."""
        log(
            logger,
            "backend.model_loaded",
            model=spec.name,
            backend=self.kind,
            execution_provider=self.device(spec.name),
            dynamic_batch=spec.dynamic_batch,
        )

    def spec(self, model: str) -> ModelSpec:
        try:
            return self.specs[model]
        except KeyError:
            raise ModelNotServed(f"model {model!r} is not served here", field="model") from None


# -- onnxruntime ------------------------------------------------------------------------


@functools.cache
def cuda_usable() -> bool:
    """Whether onnxruntime's CUDA execution provider can run here, probed without ORT's noise.

    ``onnxruntime-gpu`` lists CUDA as available even where no GPU or CUDA runtime exists, and
    then logs an error on every session; so we check that the provider library loads and that
    the driver reports a device before asking for it.
    """
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return False
    library = Path(ort.__file__).parent / "capi" / "libonnxruntime_providers_cuda.so"
    try:
        ctypes.CDLL(str(library))
        driver = ctypes.CDLL("libcuda.so.1")
        count = ctypes.c_int(0)
        if driver.cuInit(0) != 0 or driver.cuDeviceGetCount(ctypes.byref(count)) != 0:
            return False
    except OSError:
        return False
    return count.value > 0


def execution_providers(device: Literal["auto", "cpu", "cuda"] = "auto") -> list[str]:
    """The execution providers to ask for, best first."""
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "cuda" and not cuda_usable():
        raise BackendError("backend.device = 'cuda' but no usable CUDA device was found")
    return ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda_usable() else ["CPUExecutionProvider"]


def open_session(path: Path, *, device: Literal["auto", "cpu", "cuda"] = "auto") -> Any:
    """An onnxruntime session for ``path`` with quiet logging and the best execution provider."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), options, providers=execution_providers(device))
    except Exception as exc:  # onnxruntime raises its own untyped Fail/InvalidGraph errors
        raise BackendError(f"onnxruntime cannot load {path}: {exc}") from exc


class OnnxRuntimeBackend(InferenceBackend):
    """In-process onnxruntime: one session per model, loaded once, warmed, run off the event loop.

    A run expected to take less than ``inline_ms`` runs on the event loop itself: handing it
    to a thread and back costs more than such a run (tens to hundreds of microseconds), and
    blocking the loop that briefly is harmless. Longer runs go to the model's runner thread.
    The estimate is a per-row moving average, seeded while warming.

    Args:
        device: ``"auto"`` (CUDA if usable, else CPU), ``"cpu"`` or ``"cuda"``.
        warm_batch: also warm dynamic-batch models at this batch size.
        inline_ms: runs predicted under this many milliseconds stay on the event loop (0: never).
    """

    kind = "onnxruntime"

    def __init__(
        self, *, device: Literal["auto", "cpu", "cuda"] = "auto", warm_batch: int = 1, inline_ms: float = 0.5
    ) -> None:
        super().__init__()
        self._device: Literal["auto", "cpu", "cuda"] = device
        self._warm_batch = warm_batch
        self._inline_s = inline_ms / 1000.0
        self._sessions: dict[str, Any] = {}
        self._runners: dict[str, ThreadPoolExecutor] = {}
        self._row_s: dict[str, float] = {}

    async def load(self, specs: Sequence[ModelSpec]) -> None:
        for spec in specs:
            session = await asyncio.to_thread(open_session, spec.onnx_path, device=self._device)
            self.specs[spec.name] = spec
            self._sessions[spec.name] = session
            # One runner thread per model: ORT parallelises inside a run; runs of one model queue.
            self._runners[spec.name] = ThreadPoolExecutor(1, thread_name_prefix=f"ort-{spec.name}")
            sizes = {1, self._warm_batch} if spec.dynamic_batch else {1}
            self._row_s[spec.name] = float("inf")  # unknown: the first runs go to the thread
            for size in sorted(sizes):
                warm = np.zeros((size, *spec.input.single_shape()[1:]), dtype=spec.input.dtype)
                for _ in range(3):
                    await self.infer(spec.name, warm)
            self._loaded(spec)

    def _run(self, model: str, batch: NDArray[Any]) -> NDArray[Any]:
        spec = self.specs[model]
        started = time.perf_counter()
        try:
            (out,) = self._sessions[model].run([spec.output.name], {spec.input.name: batch})
        except Exception as exc:  # onnxruntime's own error types are not exported
            raise BackendError(f"onnxruntime failed on {model}: {exc}") from exc
        per_row = (time.perf_counter() - started) / max(1, batch.shape[0])
        previous = self._row_s[model]
        self._row_s[model] = per_row if previous == float("inf") else 0.8 * previous + 0.2 * per_row
        return np.asarray(out)

    async def infer(self, model: str, batch: NDArray[Any]) -> NDArray[Any]:
        self.spec(model)
        if self._row_s[model] * batch.shape[0] < self._inline_s:
            return self._run(model, batch)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._runners[model], self._run, model, batch)

    def device(self, model: str) -> str:
        self.spec(model)
        return str(self._sessions[model].get_providers()[0])

    async def close(self) -> None:
        for runner in self._runners.values():
            runner.shutdown(wait=False, cancel_futures=True)
        self._runners.clear()
        self._sessions.clear()


# -- KServe v2 / Open Inference Protocol ------------------------------------------------


def oip_request(spec: ModelSpec, batch: NDArray[Any]) -> dict[str, Any]:
    """The Open Inference Protocol request body for one batch."""
    datatype = OIP_DATATYPES.get(str(batch.dtype))
    if datatype is None:
        raise BackendError(f"dtype {batch.dtype} has no Open Inference Protocol name")
    return {
        "inputs": [
            {
                "name": spec.input.name,
                "shape": list(batch.shape),
                "datatype": datatype,
                "data": batch.ravel().tolist(),
            }
        ],
        "outputs": [{"name": spec.output.name}],
    }


def oip_output(body: Any, name: str) -> NDArray[Any]:
    """The named output tensor of an Open Inference Protocol response."""
    try:
        outputs = body["outputs"]
        tensor = next((o for o in outputs if o.get("name") == name), outputs[0])
        dtype = NUMPY_DTYPES[tensor["datatype"]]
        return np.asarray(tensor["data"], dtype=dtype).reshape(tensor["shape"])
    except (KeyError, IndexError, TypeError, ValueError, StopIteration) as exc:
        raise BackendError(f"malformed inference response: {exc!r}") from exc


class KServeBackend(InferenceBackend):
    """An external Open Inference Protocol (KServe v2 REST) server.

    Args:
        url: the server's base URL (``http://host:8080``).
        names: served name -> the model's name on the server (default: the same name).
        timeout_s: per-request timeout.
    """

    kind = "kserve"

    def __init__(self, url: str, *, names: dict[str, str] | None = None, timeout_s: float = 30.0) -> None:
        super().__init__()
        self.url = url.rstrip("/")
        self._names = dict(names or {})
        self._client = httpx.AsyncClient(
            timeout=timeout_s, limits=httpx.Limits(max_connections=64, max_keepalive_connections=64)
        )

    def _remote(self, model: str) -> str:
        return self._names.get(model, model)

    async def load(self, specs: Sequence[ModelSpec]) -> None:
        for spec in specs:
            self.specs[spec.name] = spec
            remote = self._remote(spec.name)
            try:
                reply = await self._client.get(f"{self.url}/v2/models/{remote}/ready")
            except httpx.HTTPError as exc:
                raise BackendError(f"KServe server {self.url} unreachable: {exc!r}") from exc
            if reply.status_code != 200:
                raise BackendError(f"model {remote!r} not ready on {self.url} (HTTP {reply.status_code})")
            await self.infer(spec.name, np.zeros(spec.input.single_shape(), dtype=spec.input.dtype))
            self._loaded(spec)

    async def infer(self, model: str, batch: NDArray[Any]) -> NDArray[Any]:
        spec = self.spec(model)
        remote = self._remote(model)
        try:
            reply = await self._client.post(
                f"{self.url}/v2/models/{remote}/infer", json=oip_request(spec, batch)
            )
        except httpx.HTTPError as exc:
            raise BackendError(f"KServe request for {remote!r} failed: {exc!r}") from exc
        if reply.status_code != 200:
            raise BackendError(f"KServe answered HTTP {reply.status_code} for {remote!r}: {reply.text[:200]}")
        out = oip_output(reply.json(), spec.output.name)
        if out.shape[0] != batch.shape[0]:
            raise BackendError(f"KServe returned {out.shape[0]} rows for a batch of {batch.shape[0]}")
        return out

    def device(self, model: str) -> str:
        self.spec(model)
        return f"kserve:{self.url}"

    async def close(self) -> None:
        await self._client.aclose()
