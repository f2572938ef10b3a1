"""A minimal Open Inference Protocol (KServe v2 REST) server over onnxruntime.

For tests, benchmarks and the devnet: it lets the node's :class:`KServeBackend` be exercised
against a real HTTP server without a Kubernetes cluster. Loopback only::

    with ServerThread(oip_app({"mlp": Path("models/mlp/model.onnx")})) as server:
        backend = KServeBackend(server.url)
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidArgument, RuntimeException
from prometheus_client import CollectorRegistry

from provider._backends import NUMPY_DTYPES, OIP_DATATYPES, open_session
from provider._spec import read_spec
from tender.anvil import free_port
from tender.bounds import BoundedAsgi, HttpLimits, http_5xx_counter


def oip_app(models: dict[str, Path], *, limits: HttpLimits | None = None) -> FastAPI:
    """A FastAPI app serving ``models`` (name -> ONNX path) over KServe v2 REST, behind the same
    :class:`tender.bounds.BoundedAsgi` guard as the node (its 5xx counter on ``app.state.http_5xx``)."""
    app = FastAPI(title="oip-onnxruntime")
    app.state.http_5xx = http_5xx_counter(CollectorRegistry())
    app.add_middleware(BoundedAsgi, limits=limits or HttpLimits(), errors=app.state.http_5xx)
    sessions = {name: open_session(path, device="cpu") for name, path in models.items()}
    specs = {name: read_spec(name, path) for name, path in models.items()}

    def session(name: str) -> Any:
        if name not in sessions:
            raise HTTPException(404, detail=f"model {name} not found")
        return sessions[name]

    @app.get("/v2/health/ready")
    async def ready() -> dict[str, bool]:
        return {"ready": True}

    @app.get("/v2/models/{name}/ready")
    async def model_ready(name: str) -> dict[str, Any]:
        session(name)
        return {"name": name, "ready": True}

    @app.get("/v2/models/{name}")
    async def metadata(name: str) -> dict[str, Any]:
        session(name)
        spec = specs[name]
        return {
            "name": name,
            "platform": "onnxruntime_onnx",
            "inputs": [
                {
                    "name": spec.input.name,
                    "datatype": OIP_DATATYPES[str(spec.input.dtype)],
                    "shape": [-1 if d is None else d for d in spec.input.shape],
                }
            ],
            "outputs": [
                {
                    "name": spec.output.name,
                    "datatype": OIP_DATATYPES[str(spec.output.dtype)],
                    "shape": [-1 if d is None else d for d in spec.output.shape],
                }
            ],
        }

    @app.post("/v2/models/{name}/infer")
    async def infer(name: str, request: Request) -> dict[str, Any]:
        sess = session(name)
        try:
            body = await request.json()  # within BoundedAsgi's limits
            tensor = body["inputs"][0]
            x = np.asarray(tensor["data"], dtype=NUMPY_DTYPES[tensor["datatype"]]).reshape(tensor["shape"])
            feed = {str(tensor["name"]): x}
            request_id = str(body.get("id", ""))
        except (KeyError, IndexError, ValueError, TypeError, OverflowError, AttributeError) as exc:
            raise HTTPException(400, detail=f"bad inference request: {exc!r:.200}") from exc
        spec = specs[name]
        try:
            (out,) = await asyncio.to_thread(sess.run, [spec.output.name], feed)
        except (InvalidArgument, Fail, RuntimeException) as exc:  # a wrong input name, shape or dtype
            raise HTTPException(400, detail=f"bad inference request: {exc!s:.200}") from exc
        out = np.asarray(out)
        return {
            "model_name": name,
            "id": request_id,
            "outputs": [
                {
                    "name": spec.output.name,
                    "shape": list(out.shape),
                    "datatype": OIP_DATATYPES[str(out.dtype)],
                    "data": out.ravel().tolist(),
                }
            ],
        }

    return app


class ServerThread:
    """Run an ASGI app with uvicorn on a loopback port in a background thread.

    Args:
        app: the ASGI application.
        port: the port; a free one when ``None``.
    """

    def __init__(self, app: Any, *, port: int | None = None) -> None:
        self.port = port or free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"server on port {self.port} did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)


def main(argv: list[str] | None = None) -> None:
    """``python -m provider._oip_server --port 8080 mlp=models/mlp/model.onnx ...`` (loopback only)."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("models", nargs="+", metavar="NAME=ONNX")
    args = parser.parse_args(argv)
    models = {name: Path(path) for name, _, path in (m.partition("=") for m in args.models)}
    uvicorn.run(oip_app(models), host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
