"""Benchmark: the provider node's inference path against a bare onnxruntime loop.

For each sample model and each backend (in-process onnxruntime; an Open Inference Protocol /
KServe v2 server on loopback) it measures, in one run on one machine:

- ``rps_bare``: a bare ``session.run`` loop, one sample per call (no node, no asyncio);
- ``rps_bare_batched``: the same loop on batches of ``max_batch`` samples (samples per second);
- ``rps_unbatched``: ``concurrency`` clients through ``ProviderNode.infer`` with batching off;
- ``rps_batched``: the same with micro-batching on; ``p50_ms``/``p95_ms`` are its per-request
  latencies;
- ``overhead_batched``: ``1 - rps_batched / rps_bare_batched``, what the node costs at
  saturation (the batcher feeds full batches, so the bare batched loop is the ceiling);
- ``overhead_unbatched``: ``1 - rps_unbatched / rps_bare``; ``batching_speedup``:
  ``rps_batched / rps_unbatched``;
- ``node_us``: what the node spends per request beyond the model itself,
  ``1e6 * (1 / rps_batched - 1 / rps_bare_batched)``; ``compute_us``: the model's own time per
  sample in the bare batched loop; ``breakeven_compute_us``: the compute per sample at which the
  node adds exactly 15 % (``node_us * 0.85 / 0.15``).

The sample models compute in about a microsecond per sample on a CPU, so any per-request
serving cost (tens of microseconds of Python for the future, the batcher and the executor hop)
is nearly all of their time at saturation. The ``reference`` row is a dense model of the size
GPU providers serve (64 -> 3 x 4096 -> 10, about 68 MFLOP a sample, generated here with fixed
weights, never registered or proven): it shows the node's overhead where the model's compute is
what a request costs, which is what the 15 % target is about.

Run: ``python benchmarks/provider.py [--quick]`` (writes ``benchmarks/results/provider.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

# This file is named like the package it measures: keep its folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from provider import (  # noqa: E402
    BackendSection,
    BatchingSection,
    KServeBackend,
    ModelEntry,
    OnnxRuntimeBackend,
    ProviderNode,
    ProviderSection,
    read_spec,
)
from provider._backends import cuda_usable, open_session  # noqa: E402
from tender.anvil import DEV_KEYS, free_port  # noqa: E402
from tender.paths import SAMPLE_MODELS  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "provider.json"
MODELS = ("mlp", "cnn")
REFERENCE = "reference"
OVERHEAD_MAX = 0.15


def reference_model(
    path: Path, *, width: int = 4096, depth: int = 3, inputs: int = 64, outputs: int = 10
) -> Path:
    """Write a dense ReLU network (fixed seed, dynamic batch axis) to ``path``: the reference row."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    dims = [inputs, *([width] * depth), outputs]
    nodes, weights, previous = [], [], "input"
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(dims)):
        w = (rng.standard_normal((fan_in, fan_out), dtype=np.float32) / np.sqrt(fan_in)).astype(np.float32)
        weights += [
            numpy_helper.from_array(w, f"w{i}"),
            numpy_helper.from_array(np.zeros(fan_out, np.float32), f"b{i}"),
        ]
        nodes.append(helper.make_node("Gemm", [previous, f"w{i}", f"b{i}"], [f"z{i}"]))
        previous = f"z{i}"
        if i < len(dims) - 2:
            nodes.append(helper.make_node("Relu", [previous], [f"a{i}"]))
            previous = f"a{i}"
    graph = helper.make_graph(
        nodes,
        REFERENCE,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", inputs])],
        [helper.make_tensor_value_info(previous, TensorProto.FLOAT, ["batch", outputs])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def bare_loop(onnx: Path, batch: int, seconds: float) -> float:
    """Samples per second of a bare ``session.run`` loop on batches of ``batch``."""
    session = open_session(onnx)
    spec = read_spec("bare", onnx)
    x = np.random.default_rng(0).random((batch, *spec.input.single_shape()[1:])).astype(spec.input.dtype)
    feed = {spec.input.name: x}
    names = [spec.output.name]
    for _ in range(20):
        session.run(names, feed)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        session.run(names, feed)
        calls += 1
    return calls * batch / (time.perf_counter() - start)


async def node_run(
    model: str,
    onnx: Path,
    backend_kind: str,
    *,
    batched: bool,
    max_batch: int,
    concurrency: int,
    seconds: float,
    url: str | None,
) -> dict[str, float]:
    """Requests per second and latencies of ``concurrency`` clients through ``ProviderNode.infer``."""
    with tempfile.TemporaryDirectory() as tmp:
        config = ProviderSection(
            models=[ModelEntry(name=model, onnx=onnx, model_id="0x" + "00" * 31 + "01")],
            batching=BatchingSection(enabled=batched, max_batch=max_batch, max_wait_ms=1.0),
            backend=BackendSection(kind="kserve", url=url) if backend_kind == "kserve" else BackendSection(),
            store=Path(tmp) / "jobs.db",
            proving_workers=1,
        )
        backend = (
            KServeBackend(url or "") if backend_kind == "kserve" else OnnxRuntimeBackend(warm_batch=max_batch)
        )
        node = ProviderNode(config, chain=None, key=DEV_KEYS[1], backend=backend)
        await node.load()
        # the proving workers start in the background; let them finish importing first so their
        # start-up does not compete with the inference being measured
        assert node.pool is not None
        await node.pool.warm()
        spec = node.models[model].spec
        x = np.random.default_rng(1).random(spec.input.single_shape()).astype(spec.input.dtype)
        latencies: list[float] = []
        stop_at = 0.0

        async def client() -> None:
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                await node.infer(model, x)
                latencies.append(time.perf_counter() - t0)

        stop_at = time.perf_counter() + 0.3  # warm up the batcher and connections
        await asyncio.gather(*(client() for _ in range(concurrency)))
        latencies.clear()
        start = time.perf_counter()
        stop_at = start + seconds
        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
        await node.stop()
    ordered = sorted(latencies)
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(ordered),
        "p95_ms": 1000 * ordered[int(0.95 * (len(ordered) - 1))],
    }


@contextlib.contextmanager
def oip_server(models: dict[str, Path]) -> Iterator[str]:
    """The loopback KServe v2 server in its own process (so it does not share our GIL)."""
    port = free_port()
    args = [sys.executable, "-m", "provider._oip_server", "--port", str(port)]
    process = subprocess.Popen([*args, *(f"{name}={path}" for name, path in models.items())])
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def row(
    model: str,
    backend: str,
    bare: float,
    bare_batched: float,
    unbatched: dict[str, float],
    batched: dict[str, float],
) -> dict[str, Any]:
    node_us = 1e6 * (1 / batched["rps"] - 1 / bare_batched)
    return {
        "model": model,
        "backend": backend,
        "rps_bare": round(bare, 1),
        "rps_bare_batched": round(bare_batched, 1),
        "rps_unbatched": round(unbatched["rps"], 1),
        "rps_batched": round(batched["rps"], 1),
        "p50_ms": round(batched["p50_ms"], 3),
        "p95_ms": round(batched["p95_ms"], 3),
        "p50_ms_unbatched": round(unbatched["p50_ms"], 3),
        "p95_ms_unbatched": round(unbatched["p95_ms"], 3),
        "overhead_batched": round(1 - batched["rps"] / bare_batched, 3),
        "overhead_unbatched": round(1 - unbatched["rps"] / bare, 3),
        "batching_speedup": round(batched["rps"] / unbatched["rps"], 2),
        "node_us": round(node_us, 1),
        "compute_us": round(1e6 / bare_batched, 2),
        "breakeven_compute_us": round(node_us * (1 - OVERHEAD_MAX) / OVERHEAD_MAX, 1),
    }


async def measure(*, quick: bool) -> dict[str, Any]:
    seconds = 1.0 if quick else 6.0
    max_batch, concurrency = 64, 64
    results: dict[str, Any] = {}
    models = {m: SAMPLE_MODELS / m / "model.onnx" for m in MODELS}
    with tempfile.TemporaryDirectory() as tmp:
        reference = reference_model(Path(tmp) / "reference.onnx")
        with oip_server(models) as server_url:
            for model, onnx in [*models.items(), (REFERENCE, reference)]:
                rps_bare = bare_loop(onnx, 1, seconds)
                rps_bare_batched = bare_loop(onnx, max_batch, seconds)
                # the reference row measures the node itself: the in-process backend only
                backends = ("onnxruntime",) if model == REFERENCE else ("onnxruntime", "kserve")
                for backend in backends:
                    url = server_url if backend == "kserve" else None
                    common = {
                        "max_batch": max_batch,
                        "concurrency": concurrency,
                        "seconds": seconds,
                        "url": url,
                    }
                    unbatched = await node_run(model, onnx, backend, batched=False, **common)  # type: ignore[arg-type]
                    batched = await node_run(model, onnx, backend, batched=True, **common)  # type: ignore[arg-type]
                    results[f"{model}/{backend}"] = row(
                        model, backend, rps_bare, rps_bare_batched, unbatched, batched
                    )
    return {
        "benchmark": "provider",
        "quick": quick,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "execution_provider": "CUDAExecutionProvider" if cuda_usable() else "CPUExecutionProvider",
        },
        "settings": {
            "max_batch": max_batch,
            "max_wait_ms": 1.0,
            "concurrency": concurrency,
            "seconds": seconds,
        },
        "targets": {
            "overhead_batched_max": OVERHEAD_MAX,
            "overhead_model": REFERENCE,
            "batching_speedup_min_mlp": 3.0,
        },
        "results": results,
    }


def show(report: dict[str, Any]) -> None:
    table = Table(title=f"provider inference path ({report['machine']['execution_provider']})")
    for column in (
        "model/backend",
        "bare",
        "bare x64",
        "unbatched",
        "batched",
        "p50 ms",
        "p95 ms",
        "overhead",
        "node µs",
        "model µs",
        "speedup",
    ):
        table.add_column(column, justify="right")
    for key, r in report["results"].items():
        table.add_row(
            key,
            f"{r['rps_bare']:.0f}",
            f"{r['rps_bare_batched']:.0f}",
            f"{r['rps_unbatched']:.0f}",
            f"{r['rps_batched']:.0f}",
            f"{r['p50_ms']:.2f}",
            f"{r['p95_ms']:.2f}",
            f"{100 * r['overhead_batched']:.1f}%",
            f"{r['node_us']:.0f}",
            f"{r['compute_us']:.1f}",
            f"{r['batching_speedup']:.1f}x",
        )
    Console(stderr=True, width=150).print(table)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs (under a minute in all)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    report = asyncio.run(measure(quick=args.quick))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    show(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
