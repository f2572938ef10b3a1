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

And on a real Anvil (``TokenMarket``, ``gas``): ``open``, ``deliver`` of 64 tokens,
``finalize``; ``per_job_64`` (the three), ``per_1k_tokens`` (a 1,000-token job's three
transactions), ``deliver_per_token`` (the marginal calldata + log + check cost of one more id),
and a dispute's extra gas (``challenge``, ``vote``, ``vote_deciding``). ``--no-gas`` skips it.

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


def measure_gas(*, port: int | None = None) -> dict[str, int]:
    """Gas of a token job's transactions on a fresh Anvil (see the module docstring)."""
    from web3 import Web3

    from tender.anvil import DEV_KEYS, Anvil
    from tender.chain import (
        Registry,
        Staking,
        Token,
        TokenMarket,
        TokenModelConfig,
        TokenQuote,
        TxSender,
        deploy,
        deploy_token_market,
        token_model_info,
    )

    gas: dict[str, int] = {}
    with Anvil(port=port) as chain:
        w3 = Web3(Web3.HTTPProvider(chain.rpc_url))
        deployment = deploy(w3, DEV_KEYS[0])
        address = deploy_token_market(w3, DEV_KEYS[0], deployment, challenge_window=60, vote_window=60)
        owner, requester, provider, challenger, *voters = (TxSender(w3, DEV_KEYS[i]) for i in range(6))
        model_id = Registry(w3, deployment.registry, sender=owner).register_model(
            token_model_info(ROOT / "models" / "lm", audit_rate_bps=0)
        )
        config = TokenModelConfig(256, 257, 1024, 0, 19, 2, 10**18)
        market = TokenMarket(w3, address, sender=owner)
        market.set_token_model(model_id, config)
        for voter in voters:
            market.set_reexecutor(model_id, voter.address)
        token = Token(w3, deployment.token, sender=owner)
        for staker in (provider, *voters):
            token.mint(staker.address, 10**24)
            Token(w3, deployment.token, sender=staker).approve(deployment.staking, 2**256 - 1)
            Staking(w3, deployment.staking, sender=staker).stake(10**23)
        for payer in (requester, challenger):
            token.mint(payer.address, 10**24)
            Token(w3, deployment.token, sender=payer).approve(address, 2**256 - 1)

        def job(tokens: int, salt: int, *, dispute: bool = False) -> dict[str, int]:
            now = int(w3.eth.get_block("latest")["timestamp"])
            quote = TokenQuote(
                requester.address,
                provider.address,
                model_id,
                bytes(32),
                tokens,
                2 * 10**16,
                600,
                now + 60,
                salt,
            )
            signature = quote.sign(DEV_KEYS[2], chain_id=w3.eth.chain_id, market=address)
            opened = market.using(requester).open(quote, signature)
            job_id = market.job_id_in(opened)
            ids = [97 + i % 26 for i in range(tokens)]
            out = {
                "open": opened["gasUsed"],
                "deliver": market.using(provider).deliver(job_id, ids)["gasUsed"],
            }
            if dispute:
                out["challenge"] = market.using(challenger).challenge(job_id)["gasUsed"]
                out["vote"] = market.using(voters[0]).vote(job_id, True)["gasUsed"]
                out["vote_deciding"] = market.using(voters[1]).vote(job_id, True)["gasUsed"]
                return out
            chain.rpc("evm_increaseTime", [61])
            chain.rpc("evm_mine", [])
            chain.rpc("evm_mine", [])
            out["finalize"] = market.using(challenger).finalize(job_id)["gasUsed"]
            return out

        job(64, 0)  # warms the accounts' storage slots, as a running market's are
        small, large = job(64, 1), job(1000, 2)
        disputed = job(64, 3, dispute=True)
        gas = {
            "open": small["open"],
            "deliver_64": small["deliver"],
            "finalize": small["finalize"],
            "per_job_64": small["open"] + small["deliver"] + small["finalize"],
            "per_1k_tokens": large["open"] + large["deliver"] + large["finalize"],
            "deliver_per_token": round((large["deliver"] - small["deliver"]) / (1000 - 64)),
            "challenge": disputed["challenge"],
            "vote": disputed["vote"],
            "vote_deciding": disputed["vote_deciding"],
        }
    return {k: int(v) for k, v in gas.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    parser.add_argument("--cuda", action="store_true", help="also measure the CUDA execution provider")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads on CPU")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--no-gas", action="store_true", help="skip the Anvil gas measurement")
    parser.add_argument("--port", type=int, default=None, help="Anvil's port for the gas run (default: free)")
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
        "notes": "gas: TokenMarket on Anvil (open + deliver + finalize; a dispute adds challenge + votes)",
    }
    if not args.no_gas:
        result["gas"] = measure_gas(port=args.port)
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
    if "gas" in result:
        gas_table = Table(title="TokenMarket gas (Anvil)")
        gas_table.add_column("step")
        gas_table.add_column("gas", justify="right")
        for key, value in result["gas"].items():
            gas_table.add_row(key, f"{value:,}")
        Console().print(gas_table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
