"""Solver benchmarks: quote fan-out on loopback, per-intent overhead, intents/s on Anvil.

    .venv/bin/python benchmarks/solver.py --quick      # about a minute
    .venv/bin/python benchmarks/solver.py              # more rounds
    .venv/bin/python benchmarks/solver.py --fanout-only  # the quote rounds alone (no Anvil)

Writes ``benchmarks/results/solver.json`` and prints the fan-out table:

* ``fanout``: ``[{backend, providers, p50_ms, p95_ms, load_avg}]`` for 1, 4, 16 and 64 providers
  on loopback, with aiohttp and httpx. The providers are real :class:`provider.ProviderNode`
  processes' worth of nodes (the sample MLP on onnxruntime, the node's own HTTP server and
  ``/quote`` code, the key and the pricing it runs with), spread over ``--processes`` processes
  apart from the solver's, so the client's loop is measured alone. Their chain is a stand-in
  whose head read takes :data:`HEAD_READ_S` (a loopback ``get_block``), so a node that read
  chain time per quote would pay it; ``fanout_head_reads`` counts the reads the nodes made
  (start-up and background refreshes) against ``fanout_quotes`` answered (warm-up excluded).
  ``load_avg`` is ``uptime``'s 1/5/15-minute load when the row started;
  ``fanout_p50_ms_16``/``fanout_p95_ms_16``/``fanout_p50_ms_64``/``fanout_p95_ms_64`` pick the
  16- and 64-provider rows per backend;
* ``overhead_ms``: the solver's own work per intent with 16 quotes (serialise the request,
  parse and verify 16 signed quotes, decide), p50/p95;
* ``intents_per_s``: intents posted on Anvil and bid for end to end by one solver (feed,
  quotes from 3 stub providers, policy, signed and sent bid), with ``e2e.reaction_ms`` from an
  intent's posting to its bid being signed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import queue
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
from tests.harness.solver import StubProvider  # noqa: E402

KEYS = [f"0x{(i + 1):064x}" for i in range(64)]
MODEL_ID = "0x" + "22" * 32
MARKET = "0x" + "33" * 20
#: What one ``eth_getBlockByNumber("latest")`` took on loopback Anvil in an outside profile: the
#: stand-in chain answers ``now()`` after this long, so code that reads chain time per quote pays it.
HEAD_READ_S = 0.0084


class BenchChain:
    """The chain as the provider's quote path sees it (chain id, served markets, head time):
    one market, and ``now()`` answered after :data:`HEAD_READ_S` like a loopback RPC. Jobs are
    never awarded here; the benchmark only asks for quotes."""

    def __init__(self, address: str) -> None:
        from eth_utils import to_checksum_address

        self.address = address
        self.chain_id = 31337
        self.markets = {to_checksum_address(MARKET): None}
        self.head_reads = 0

    async def now(self) -> int:
        self.head_reads += 1
        await asyncio.sleep(HEAD_READ_S)
        return int(time.time())

    async def registered_models(self) -> list[tuple[str, str, str]]:
        return []

    async def close(self) -> None:
        return None


def _serve(keys: list[str], ports: Any, stop: Any, reads: Any) -> None:
    """Run one real :class:`provider.ProviderNode` per key in this process (the MLP model,
    onnxruntime, the node's own HTTP server), each on its own port."""
    import tempfile

    from eth_account import Account

    from provider import ModelEntry, ProviderNode, ProviderSection
    from tender.anvil import free_port
    from tender.daemon import supervise
    from tender.logs import setup_logging
    from tender.paths import SAMPLE_MODELS

    # the nodes log every quote at INFO as a real node does, into /dev/null
    setup_logging(level="INFO", json_lines=True, stream=open(os.devnull, "w"))  # noqa: SIM115

    async def main(tmp: Path) -> None:
        nodes = []
        for key in keys:
            address = Account.from_key(key).address
            config = ProviderSection(
                listen=f"127.0.0.1:{free_port()}",
                models=[ModelEntry(name="mlp", onnx=SAMPLE_MODELS / "mlp" / "model.onnx", model_id=MODEL_ID)],
                store=tmp / f"jobs{KEYS.index(key)}.db",
                proving_workers=1,
                proving_warmup=False,
                max_jobs=64,
            )
            nodes.append(ProviderNode(config, chain=BenchChain(address), key=key))  # type: ignore[arg-type]
        tasks = [asyncio.create_task(supervise(n)) for n in nodes]
        ports.put([(f"p{KEYS.index(k)}", n.config.port, n.address) for k, n in zip(keys, nodes, strict=True)])
        loop = asyncio.get_running_loop()
        while not await loop.run_in_executor(None, stop.wait, 0.5):
            pass
        reads.put(sum(n.chain.head_reads for n in nodes))  # type: ignore[union-attr]
        for node in nodes:
            node.request_stop()
        await asyncio.gather(*tasks)

    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(main(Path(tmp)))


def start_providers(count: int, processes: int) -> tuple[list[ProviderEntry], list[Any], Any, Any]:
    """``count`` real provider nodes spread over ``processes`` processes."""
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    queue = ctx.Queue()
    reads = ctx.Queue()
    groups = [KEYS[i:count:processes] for i in range(processes)]
    procs = [ctx.Process(target=_serve, args=(g, queue, stop, reads), daemon=True) for g in groups if g]
    for proc in procs:
        proc.start()
    entries: list[ProviderEntry] = []
    for _ in procs:
        for name, port, address in queue.get(timeout=300):
            entries.append(ProviderEntry(name=name, url=f"http://127.0.0.1:{port}", address=address))
    entries.sort(key=lambda e: int(e.name[1:]))
    asyncio.run(_until_healthy(entries))
    return entries, procs, stop, reads


async def _until_healthy(entries: list[ProviderEntry], *, within: float = 300) -> None:
    import httpx

    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=5) as client:
        for entry in entries:
            while True:
                try:
                    if (await client.get(entry.url + "/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{entry.name} did not answer /health")
                await asyncio.sleep(0.1)


def request(n: int) -> QuoteRequest:
    intent = IntentWire(
        requester="0x" + "11" * 20,
        modelId=MODEL_ID,
        inputCommitment="7",
        maxPrice=str(10**18),
        auctionType=0,
        auctionWindow=10,
        deadline=2**40,
        proofMode=1,
        priceWeightBps=5000,
        nonce=str(n),
        expiry=2**40,
    )
    return QuoteRequest(jobId="0x" + f"{n:064x}", market=MARKET, chainId=31337, intent=intent)


def load_average() -> list[float]:
    """``uptime``'s three load averages (1, 5, 15 minutes)."""
    return [round(x, 2) for x in os.getloadavg()]


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


def bench_fanout(rounds: int, *, processes: int) -> tuple[list[dict[str, Any]], int, int]:
    """Quote rounds against real provider nodes; returns the rows, the quotes answered and the
    chain-head reads the nodes made while serving (start-up and background refreshes included)."""
    entries, procs, stop, reads = start_providers(64, processes=processes)
    results = []
    head_reads = 0
    quotes = 0
    try:
        for backend in ("aiohttp", "httpx"):
            for count in (1, 4, 16, 64):
                load = load_average()
                times, answered = asyncio.run(fanout_round(entries[:count], backend, rounds))
                quotes += answered
                row = {
                    "backend": backend,
                    "providers": count,
                    "p50_ms": pct(times, 0.5),
                    "p95_ms": pct(times, 0.95),
                    "load_avg": load,
                }
                print(json.dumps(row))
                results.append(row)
    finally:
        stop.set()
        for proc in procs:
            if proc.is_alive() or proc.exitcode == 0:
                with contextlib.suppress(queue.Empty):
                    head_reads += reads.get(timeout=60)
        for proc in procs:
            proc.join(timeout=30)
    return results, quotes, head_reads


def bench_overhead(rounds: int) -> dict[str, float]:
    """The solver's CPU work for one intent with 16 quotes, network excluded."""
    from tests.harness.solver import sign_quote

    providers = [StubProvider(k, price=100 + i, latency_s=5 + i) for i, k in enumerate(KEYS[:16])]
    entries = [ProviderEntry(name=p.name, url="http://127.0.0.1:1", address=p.address) for p in providers]
    ask = request(1)
    bodies = [
        sign_quote(
            Quote(
                jobId=ask.jobId,
                provider=p.address,
                price=str(p.price),
                latency_s=p.latency_s,
                capacity=1,
                region="0x0000",
                expires_at=int(time.time()) + 600,
                signature="0x",
            ),
            p.key,
        )
        .model_dump_json()
        .encode()
        for p in providers
    ]
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
        solver = Solver(
            env.solver_section(db, poll_interval_s=0.05),
            env.chain_section(),
            key=SOLVER_KEYS[0],
            deployment=env.deployment,
        )
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


def table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'backend':<8} {'providers':>9} {'p50 ms':>8} {'p95 ms':>8}  load average (1/5/15 min)"]
    for r in rows:
        load = " ".join(f"{x:.2f}" for x in r["load_avg"])
        lines.append(f"{r['backend']:<8} {r['providers']:>9} {r['p50_ms']:>8.2f} {r['p95_ms']:>8.2f}  {load}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (< 1 minute)")
    parser.add_argument("--fanout-only", action="store_true", help="only the quote rounds (no Anvil)")
    parser.add_argument(
        "--processes",
        type=int,
        default=os.cpu_count() or 2,
        help="processes the 64 provider nodes are spread over",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "solver.json")
    args = parser.parse_args()
    rounds = 20 if args.quick else 400
    fanout_rounds = 100 if args.quick else 400
    result: dict[str, Any] = {"quick": args.quick, "rounds": rounds, "fanout_rounds": fanout_rounds}
    result["fanout_providers"] = (
        f"real provider nodes (provider.ProviderNode: MLP on onnxruntime, its own HTTP server), "
        f"{args.processes} processes; chain head read in {HEAD_READ_S * 1000:.1f} ms"
    )
    result["load_avg_start"] = load_average()
    fanout, quotes, head_reads = bench_fanout(fanout_rounds, processes=args.processes)
    result["fanout"], result["fanout_quotes"], result["fanout_head_reads"] = fanout, quotes, head_reads
    for backend in ("aiohttp", "httpx"):
        rows = [r for r in result["fanout"] if r["backend"] == backend]
        for key, count in (
            ("fanout_p95_ms_16", 16),
            ("fanout_p50_ms_16", 16),
            ("fanout_p95_ms_64", 64),
            ("fanout_p50_ms_64", 64),
        ):
            which = "p95_ms" if "p95" in key else "p50_ms"
            result.setdefault(key, {})[backend] = next(r[which] for r in rows if r["providers"] == count)
    print(table(result["fanout"]))
    if not args.fanout_only:
        result["overhead_ms"] = bench_overhead(rounds * 8)
        print(json.dumps({"overhead_ms": result["overhead_ms"]}))
        e2e = bench_e2e(count=12 if args.quick else 60, live=5 if args.quick else 20)
        print(json.dumps(e2e))
        result["intents_per_s"] = e2e["intents_per_s"]
        result["e2e"] = e2e
    result["load_avg_end"] = load_average()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
