"""Solver benchmarks: quote fan-out on loopback, per-intent overhead, intents/s on Anvil.

    .venv/bin/python benchmarks/solver.py --quick      # < 1 minute
    .venv/bin/python benchmarks/solver.py              # more rounds

Writes ``benchmarks/results/solver.json``:

* ``fanout``: ``[{backend, providers, p50_ms, p95_ms}]`` for 1, 4, 16 and 64 stub providers on
  loopback, with aiohttp and httpx (servers run in other processes, so the client's loop is
  measured alone);
* ``overhead_ms``: the solver's own work per intent with 16 quotes (serialise the request,
  parse and verify 16 signed quotes, decide), p50/p95;
* ``intents_per_s``: intents posted on Anvil and bid for end to end by one solver (feed,
  quotes from 3 stub providers, policy, signed and sent bid), with ``e2e.reaction_ms`` from an
  intent's posting to its bid being signed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# This file is named like the package it measures: keep its folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

from solver._config import ProviderEntry  # noqa: E402
from solver._policy import AuctionState, Economics, Terms, decide  # noqa: E402
from solver._quotes import _ANSWER, FanOut, make_transport, verify_quote  # noqa: E402
from tender.intents import AuctionType  # noqa: E402
from tender.wire import IntentWire, Quote, QuoteRequest  # noqa: E402
from tests.harness.solver import StubFleet, StubProvider  # noqa: E402

KEYS = [f"0x{(i + 1):064x}" for i in range(64)]


def _serve(keys: list[str], ports: Any, stop: Any) -> None:
    stubs = [StubProvider(k, price=100 + i, latency_s=5 + i % 7) for i, k in enumerate(keys)]
    with StubFleet(stubs) as fleet:
        ports.put([(s.name, s.port, s.address) for s in fleet.providers])
        stop.wait()


def start_stubs(count: int, processes: int) -> tuple[list[ProviderEntry], list[Any], Any]:
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    queue = ctx.Queue()
    groups = [KEYS[i:count:processes] for i in range(processes)]
    procs = [ctx.Process(target=_serve, args=(g, queue, stop), daemon=True) for g in groups if g]
    for proc in procs:
        proc.start()
    entries: list[ProviderEntry] = []
    for _ in procs:
        for name, port, address in queue.get(timeout=60):
            entries.append(ProviderEntry(name=name, url=f"http://127.0.0.1:{port}", address=address))
    return entries, procs, stop


def request(n: int) -> QuoteRequest:
    intent = IntentWire(
        requester="0x" + "11" * 20, modelId="0x" + "22" * 32, inputCommitment="7", maxPrice="1000000",
        auctionType=0, auctionWindow=10, deadline=2**40, proofMode=1, priceWeightBps=5000, nonce=str(n),
        expiry=2**40,
    )  # fmt: skip
    return QuoteRequest(jobId="0x" + f"{n:064x}", market="0x" + "33" * 20, chainId=31337, intent=intent)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


async def fanout_round(entries: list[ProviderEntry], backend: str, rounds: int) -> tuple[list[float], int]:
    fan = FanOut(entries, make_transport(backend, max_connections=256), timeout=2.0)
    times: list[float] = []
    answered = 0
    for i in range(rounds + 5):
        started = time.perf_counter()
        quotes = await fan.gather(request(i))
        if i >= 5:  # warm-up: connections opened
            times.append((time.perf_counter() - started) * 1000)
            answered += len(quotes)
        assert len(quotes) == len(entries), f"{backend}: {len(quotes)}/{len(entries)} answered"
    await fan.aclose()
    return times, answered


def bench_fanout(rounds: int) -> list[dict[str, Any]]:
    entries, procs, stop = start_stubs(64, processes=max(1, min(8, (os.cpu_count() or 2) - 1)))
    results = []
    try:
        for backend in ("aiohttp", "httpx"):
            for count in (1, 4, 16, 64):
                times, _ = asyncio.run(fanout_round(entries[:count], backend, rounds))
                row = {
                    "backend": backend,
                    "providers": count,
                    "p50_ms": pct(times, 0.5),
                    "p95_ms": pct(times, 0.95),
                }
                print(json.dumps(row))
                results.append(row)
    finally:
        stop.set()
        for proc in procs:
            proc.join(timeout=10)
    return results


def bench_overhead(rounds: int) -> dict[str, float]:
    """The solver's CPU work for one intent with 16 quotes, network excluded."""
    from tests.harness.solver import sign_quote

    providers = [StubProvider(k, price=100 + i, latency_s=5 + i) for i, k in enumerate(KEYS[:16])]
    entries = [ProviderEntry(name=p.name, url="http://127.0.0.1:1", address=p.address) for p in providers]
    ask = request(1)
    bodies = [
        sign_quote(
            Quote(jobId=ask.jobId, provider=p.address, price=str(p.price), latency_s=p.latency_s, capacity=1,
                  region="0x0000", expires_at=int(time.time()) + 600, signature="0x"), p.key,
        ).model_dump_json().encode()
        for p in providers
    ]  # fmt: skip
    terms = Terms(AuctionType.REVERSE, 10**6, 5000, 600)
    econ = Economics(gas_cost=50, margin_bps=200)
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        ask.model_dump_json().encode()
        now = int(time.time())
        offers = []
        for raw, entry in zip(bodies, entries, strict=True):
            quote = _ANSWER.validate_json(raw)
            assert isinstance(quote, Quote)
            offers.append(verify_quote(quote, job_id=ask.jobId, provider=entry, now=now).offer)
        decide(terms, offers, econ, AuctionState(now=now))
        times.append((time.perf_counter() - started) * 1000)
    return {"quotes": 16, "p50_ms": pct(times, 0.5), "p95_ms": pct(times, 0.95)}


def bench_e2e(*, count: int, live: int) -> dict[str, Any]:
    """Intents per second end to end on Anvil: ``count`` reverse intents are posted, then one
    solver starts and follows the feed, asks 3 providers, decides and signs+sends a bid for each;
    the rate is ``count`` over the time from start to the last bid. ``reaction_ms`` is, with the
    solver running, the time from an intent's posting receipt to its bid being signed."""
    import tempfile

    from solver._solver import Solver
    from solver._store import Store
    from tests.harness.solver import SOLVER_KEYS, Running, devnet, wait_until

    with tempfile.TemporaryDirectory() as tmp, devnet() as env:
        db = Path(tmp) / "bench.sqlite"
        jobs = [env.post(env.intent(AuctionType.REVERSE, window=300)) for _ in range(count)]
        solver = Solver(env.solver_section(db, poll_interval_s=0.05), env.chain_section(), key=SOLVER_KEYS[0],
                        deployment=env.deployment)  # fmt: skip
        started = time.time()
        with Running([solver]):
            store = Store(db)

            def bid_times(ids: list[str]) -> list[float] | None:
                rows = [store.job_txs(j, "bid") for j in ids]
                return None if not all(rows) else [r[0].created for r in rows]

            wait_until(lambda: bid_times(jobs) is not None, timeout=300, step=0.05)
            times = bid_times(jobs) or []
            rate = count / (max(times) - started)
            reactions = []
            for _ in range(live):
                job = env.post(env.intent(AuctionType.REVERSE, window=300))
                posted = time.time()
                wait_until(lambda j=job: bid_times([j]) is not None, timeout=60, step=0.01)
                reactions.append(((bid_times([job]) or [0.0])[0] - posted) * 1000)
    return {
        "intents": count,
        "intents_per_s": round(rate, 2),
        "includes": "solver start-up and catching up from the deployment block",
        "reaction_ms": {"p50": pct(reactions, 0.5), "p95": pct(reactions, 0.95)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (< 1 minute)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "solver.json")
    args = parser.parse_args()
    rounds = 20 if args.quick else 400
    result: dict[str, Any] = {"quick": args.quick, "rounds": rounds}
    result["fanout"] = bench_fanout(rounds)
    result["overhead_ms"] = bench_overhead(rounds * 8)
    print(json.dumps({"overhead_ms": result["overhead_ms"]}))
    e2e = bench_e2e(count=12 if args.quick else 60, live=5 if args.quick else 20)
    print(json.dumps(e2e))
    result["intents_per_s"] = e2e["intents_per_s"]
    result["e2e"] = e2e
    for backend in ("aiohttp", "httpx"):
        rows = [r for r in result["fanout"] if r["backend"] == backend]
        result.setdefault("fanout_p95_ms_16", {})[backend] = next(
            r["p95_ms"] for r in rows if r["providers"] == 16
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
