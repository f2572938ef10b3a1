"""Benchmark: the token model's generation speed and the cost of re-executing a delivery.

For ``models/lm`` on one execution provider (CPU by default; ``--cuda`` adds CUDA when
onnxruntime has it) it measures, in one run on one machine:

- ``tokens_per_s_unbatched``: greedy generation of ``jobs`` requests one after another
  (``max_tokens`` each; tokens delivered / wall time);
- ``tokens_per_s_batched``: the same requests micro-batched (``TokenModel.generate_batch``);
- ``ttft_ms_p50``/``ttft_ms_p95``: time to first token of a request run alone (prefill + first
  pick, from :meth:`TokenModel.stream`); ``ttft_ms_batched``: of the batch;
- ``reexec_ms_per_job``: the audit of one delivered job (one teacher-forced forward pass and
  the acceptance rule, :func:`tender.tokens.audit`), mean over the jobs;
- ``reexec_share_of_generation``: ``reexec_ms_per_job`` / the job's unbatched generation time
  (and ``..._batched``: / its share of the batched run); ``verification_overhead``: that share
  times the audit rate, for a few rates (the share of inference cost the audits add).

Gas per job and per 1k tokens are not here yet: the token market's contracts come later.

Run: ``python benchmarks/tokens.py [--quick] [--cuda]`` (writes ``benchmarks/results/tokens.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import onnxruntime as ort
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from tender.tokens import TokenModel, TokenRequest, audit  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "tokens.json"
PROMPTS = (
    "Return the",
    "The default is",
    "If the file",
    "Raise ValueError if",
    "This module provides",
    "Create a new",
    "The optional argument",
    "Convert a",
)
AUDIT_RATES = (0.01, 0.05, 0.10)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(model: TokenModel, *, jobs: int, max_tokens: int, repeats: int) -> dict[str, Any]:
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(jobs)]
    requests = [TokenRequest(tuple(model.encode(p)), max_tokens) for p in prompts]
    model.generate(requests[0])  # warm-up: session arenas, kernels

    ttft: list[float] = []
    per_job: list[float] = []
    delivered = 0
    started = time.perf_counter()
    for _ in range(repeats):
        for request in requests:
            t0 = time.perf_counter()
            stream = model.stream(request)
            next(stream)
            ttft.append(time.perf_counter() - t0)
            delivered += 1 + sum(1 for _ in stream)
            per_job.append(time.perf_counter() - t0)
    unbatched_s = time.perf_counter() - started
    unbatched_tokens = delivered

    delivered = 0
    ttft_batched: list[float] = []
    started = time.perf_counter()
    for _ in range(repeats):
        t0 = time.perf_counter()
        steps = model.steps(requests)
        next(steps)
        ttft_batched.append(time.perf_counter() - t0)
        delivered += 1 + sum(1 for _ in steps)
    batched_s = time.perf_counter() - started

    generations = model.generate_batch(requests)
    reexec: list[float] = []
    for _ in range(repeats):
        for generation in generations:
            t0 = time.perf_counter()
            verdict = audit(model, generation.request, generation.tokens)
            reexec.append(time.perf_counter() - t0)
            assert verdict.accepted, verdict.reason
    reexec_ms = 1000 * statistics.fmean(reexec)
    job_ms = 1000 * statistics.fmean(per_job)
    job_ms_batched = 1000 * batched_s / (repeats * jobs)
    share = reexec_ms / job_ms
    return {
        "jobs": jobs,
        "max_tokens": max_tokens,
        "repeats": repeats,
        "tokens_per_s_unbatched": round(unbatched_tokens / unbatched_s, 1),
        "tokens_per_s_batched": round(delivered / batched_s, 1),
        "batching_speedup": round((delivered / batched_s) / (unbatched_tokens / unbatched_s), 2),
        "ttft_ms_p50": round(1000 * statistics.median(ttft), 3),
        "ttft_ms_p95": round(1000 * percentile(ttft, 0.95), 3),
        "ttft_ms_batched": round(1000 * statistics.median(ttft_batched), 3),
        "generation_ms_per_job": round(job_ms, 3),
        "generation_ms_per_job_batched": round(job_ms_batched, 3),
        "reexec_ms_per_job": round(reexec_ms, 3),
        "reexec_share_of_generation": round(share, 4),
        "reexec_share_of_generation_batched": round(reexec_ms / job_ms_batched, 4),
        "verification_overhead": {f"{rate:.2f}": round(rate * share, 5) for rate in AUDIT_RATES},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    parser.add_argument("--cuda", action="store_true", help="also measure the CUDA execution provider")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads on CPU")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    folder = ROOT / "models" / "lm"
    meta = json.loads((folder / "meta.json").read_text())
    providers = {"cpu": ["CPUExecutionProvider"]}
    if args.cuda:
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            sys.stderr.write("--cuda: onnxruntime has no CUDAExecutionProvider here\n")
            return 2
        providers["cuda"] = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    repeats = 1 if args.quick else 3
    rows: dict[str, Any] = {}
    for name, chain in providers.items():
        model = TokenModel.load(folder, providers=chain, threads=args.threads)
        rows[name] = measure(model, jobs=8, max_tokens=64, repeats=repeats)
    result = {
        "model": {
            "name": "lm",
            "params": meta["params"],
            "onnx_bytes": (folder / "model.onnx").stat().st_size,
            "layers": meta["spec"]["n_layer"],
            "d_model": meta["spec"]["n_embd"],
            "train_cpu_seconds": meta["train_cpu_seconds"],
        },
        "providers": rows,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "onnxruntime": ort.__version__,
            "threads": args.threads,
        },
        "notes": "gas per job and per 1k tokens: not measured yet (token market contracts pending)",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    table = Table(
        title=f"Token model lm ({meta['params']:,} params), load {result['machine']['load_average']}"
    )
    for column in (
        "provider",
        "tok/s",
        "tok/s batched",
        "TTFT p50 ms",
        "TTFT p95 ms",
        "re-exec ms/job",
        "re-exec %",
    ):
        table.add_column(column, justify="right")
    for name, row in rows.items():
        table.add_row(
            name,
            f"{row['tokens_per_s_unbatched']:,.0f}",
            f"{row['tokens_per_s_batched']:,.0f}",
            f"{row['ttft_ms_p50']:.2f}",
            f"{row['ttft_ms_p95']:.2f}",
            f"{row['reexec_ms_per_job']:.2f}",
            f"{100 * row['reexec_share_of_generation']:.1f}",
        )
    Console().print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
