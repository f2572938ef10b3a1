"""One contract for every inference backend, subclassed per backend (onnxruntime, KServe v2)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from provider import (
    BackendError,
    InferenceBackend,
    KServeBackend,
    ModelNotServed,
    ModelSpec,
    OnnxRuntimeBackend,
)
from provider._backends import open_session
from provider._oip_server import ServerThread, oip_app


def reference(onnx: Path, x: NDArray[Any]) -> NDArray[Any]:
    session = open_session(onnx, device="cpu")
    (out,) = session.run(None, {session.get_inputs()[0].name: x})
    return np.asarray(out)


class BackendContract:
    """What every backend must do; subclasses provide the ``backend`` fixture."""

    @pytest.fixture
    async def backend(self, mlp_spec: ModelSpec, cnn_spec: ModelSpec) -> AsyncIterator[InferenceBackend]:
        raise NotImplementedError
        return

    async def test_infer_single_matches_reference(
        self, backend: InferenceBackend, mlp_spec: ModelSpec, mlp_samples: list[list[float]]
    ) -> None:
        x = np.asarray(mlp_samples[0], dtype=np.float32).reshape(1, 64)
        out = await backend.infer("mlp", x)
        assert out.shape == (1, 10)
        np.testing.assert_allclose(out, reference(mlp_spec.onnx_path, x), rtol=1e-5, atol=1e-5)

    async def test_infer_batch_rows_match_single_rows(
        self, backend: InferenceBackend, cnn_samples: list[list[float]]
    ) -> None:
        x = np.asarray(cnn_samples, dtype=np.float32).reshape(-1, 1, 8, 8)
        batched = await backend.infer("cnn", x)
        assert batched.shape == (len(cnn_samples), 10)
        for i in range(len(cnn_samples)):
            single = await backend.infer("cnn", x[i : i + 1])
            np.testing.assert_allclose(batched[i : i + 1], single, rtol=1e-5, atol=1e-5)

    async def test_infer_unknown_model_raises(self, backend: InferenceBackend) -> None:
        with pytest.raises(ModelNotServed):
            await backend.infer("nope", np.zeros((1, 64), np.float32))

    async def test_infer_wrong_shape_raises_backend_error(self, backend: InferenceBackend) -> None:
        with pytest.raises(BackendError):
            await backend.infer("mlp", np.zeros((1, 63), np.float32))

    async def test_device_names_where_it_runs(self, backend: InferenceBackend) -> None:
        assert backend.device("mlp")
        assert backend.specs["mlp"].dynamic_batch


class TestOnnxRuntimeBackend(BackendContract):
    @pytest.fixture
    async def backend(self, mlp_spec: ModelSpec, cnn_spec: ModelSpec) -> AsyncIterator[InferenceBackend]:
        b = OnnxRuntimeBackend(warm_batch=8)
        await b.load([mlp_spec, cnn_spec])
        yield b
        await b.close()

    async def test_device_is_an_execution_provider(self, backend: InferenceBackend) -> None:
        assert backend.device("mlp") in ("CPUExecutionProvider", "CUDAExecutionProvider")


@pytest.fixture(scope="module")
def kserve_server(mlp_onnx: Path, cnn_onnx: Path) -> Iterator[ServerThread]:
    with ServerThread(oip_app({"mlp-remote": mlp_onnx, "cnn": cnn_onnx})) as server:
        yield server


class TestKServeBackend(BackendContract):
    @pytest.fixture
    async def backend(
        self, mlp_spec: ModelSpec, cnn_spec: ModelSpec, kserve_server: ServerThread
    ) -> AsyncIterator[InferenceBackend]:
        b = KServeBackend(kserve_server.url, names={"mlp": "mlp-remote"})
        await b.load([mlp_spec, cnn_spec])
        yield b
        await b.close()

    async def test_load_unknown_remote_model_raises(
        self, mlp_spec: ModelSpec, kserve_server: ServerThread
    ) -> None:
        b = KServeBackend(kserve_server.url)  # "mlp" is served as "mlp-remote" there
        with pytest.raises(BackendError, match="not ready"):
            await b.load([mlp_spec])
        await b.close()

    async def test_load_unreachable_server_raises(self, mlp_spec: ModelSpec) -> None:
        from tender.anvil import free_port

        b = KServeBackend(f"http://127.0.0.1:{free_port()}")
        with pytest.raises(BackendError, match="unreachable"):
            await b.load([mlp_spec])
        await b.close()
