"""Benchmark: settlement gas and proving time per query, batched proofs against one proof per job.

A real provider node (in-process: onnxruntime, EZKL witness, proofs in its proving pool) on Anvil
with the quote market, serving the sample MLP and its batch bundle (``batch_bundle``, hashed
inputs). Requesters (one per job) take the node's quotes and open their jobs with their own
``openAwarded``; the node settles

- ``single``: jobs of the single model, each with its own proof and ``deliver``;
- ``batch{N}_full``: N jobs of the batch model, one proof and one ``deliverBatch``;
- ``batch{N}_half``: N/2 jobs of the batch model (the rest padding), sent once the oldest has
  waited ``batch_wait_s`` (20 s).

Each run takes every job's quote and output first, then the requesters open their jobs one
after the other (as concurrent requests would), so a batch fills within its wait.

``settle_gas_per_query`` is the settlement transaction's gas over the jobs it settled (the
awards are the same transaction for both: ``benchmarks/gas.py`` has the whole lifecycles).
Proving is timed apart from the node, on the same machine: ``prove_s`` is one proof's wall
seconds (median of ``--trials``), ``prove_s_per_query`` that over the jobs it proves and
``prove_cpu_s_per_query`` the CPU seconds (all threads), with the 1-minute load average
(``uptime``) before and after. The single model is the default polycommit bundle, the batch one
hashed (PROTOCOL.md: a hashed job can be settled in any batch of its model).

Run: ``python benchmarks/batch_settlement.py [--trials 3]`` (writes
``benchmarks/results/batch_settlement.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_account import Account
from rich.console import Console
from rich.table import Table

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from provider import ProviderChain, ProviderNode, ProviderSection  # noqa: E402
from tender import models  # noqa: E402
from tender.anvil import DEV_KEYS, Anvil, free_port  # noqa: E402
from tender.chain import (  # noqa: E402
    BatchDelivered,
    Deployment,
    JobState,
    ModelInfo,
    QuoteMarket,
    Registry,
    Token,
    TxSender,
    connect,
)
from tender.daemon import supervise  # noqa: E402
from tender.intents import AuctionType, Intent, NonceSequence, ProofMode, sign_digest, sign_intent  # noqa: E402
from tender.paths import SAMPLE_MODELS  # noqa: E402
from tender.quotes import Quote, quote_digest  # noqa: E402
from tender.rfq import FirmQuote, RunQuoted  # noqa: E402
from tender.wire import SignedIntentWire  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "batch_settlement.json"
PROVIDER_KEY = DEV_KEYS[3]
REQUESTER_KEYS = list(DEV_KEYS[4:10])
UNIT = 10**18


def load() -> float:
    return os.getloadavg()[0]


def register(w3: Any, deployment: Deployment, bundle: models.Bundle) -> str:
    sender = TxSender(w3, DEV_KEYS[0])
    verifier = models.deploy_verifier(w3, sender, bundle)
    entry = models.registry_entry(bundle, verifier=verifier, owner=sender.address, chain_id=31337)
    registry = Registry(w3, deployment.registry, sender=sender)
    receipt = registry.register(ModelInfo.from_dict(entry))
    (event,) = [e for e in registry.events_in(receipt) if e.name == "ModelRegistered"]
    return "0x" + bytes(event.model_id).hex()  # type: ignore[attr-defined]


def samples(count: int = 16) -> list[list[float]]:
    """``count`` inputs: the sample MLP's samples, again as often as needed (each job is its own
    intent whatever its input)."""
    data = json.loads((SAMPLE_MODELS / "mlp" / "samples.json").read_text())
    base = [s["input"] for s in data["samples"]]
    return [base[i % len(base)] for i in range(count)]


class Bench:
    def __init__(self, w3: Any, deployment: Deployment, single: models.Bundle, batch: models.Bundle) -> None:
        self.w3, self.deployment, self.single, self.batch = w3, deployment, single, batch
        self.single_id = register(w3, deployment, single)
        self.batch_id = register(w3, deployment, batch)
        self.nonces = {key: NonceSequence() for key in REQUESTER_KEYS}
        self.address = deployment.market("quote")

    def intent(self, key: str, row: list[float], *, batch: bool) -> Intent:
        now = int(self.w3.eth.get_block("latest")["timestamp"])
        bundle = self.batch if batch else self.single
        return Intent(
            requester=Account.from_key(key).address,
            model_id=bytes.fromhex((self.batch_id if batch else self.single_id)[2:]),
            input_commitment=models.input_commitment(bundle, row),
            max_price=10 * UNIT,
            auction_type=AuctionType.QUOTE,
            auction_window=60,
            deadline=now + 3_600,
            proof_mode=ProofMode.ZK,
            min_stake=UNIT,
            price_weight_bps=8_000,
            nonce=self.nonces[key].next(),
            expiry=now + 600,
            input_location=json.dumps(row).encode(),
        )

    async def take(self, node: ProviderNode, key: str, intent: Intent) -> tuple[bytes, Any]:
        """The requester ``key`` takes the node's quote for ``intent`` (``/rfq/quote``,
        ``/rfq/run``); the job id and how to open it (its own ``openAwarded``)."""
        market = QuoteMarket(self.w3, self.address, sender=TxSender(self.w3, key))
        job = market.job_id(intent)
        signed = {
            "intent": intent.to_json(),
            "signature": "0x" + sign_intent(intent, key, chain_id=31337, market=self.address).hex(),
            "market": self.address,
            "chainId": 31337,
            "jobId": "0x" + job.hex(),
        }
        firm = await node.rfq.quote(SignedIntentWire.model_validate(signed))
        assert isinstance(firm, FirmQuote), firm
        quote = Quote.from_json(firm.quote)
        acceptance = sign_digest(quote_digest(quote, chain_id=31337, market=self.address), key)
        await node.rfq.run(
            RunQuoted.model_validate(
                {
                    "signed": signed,
                    "quote": firm.quote,
                    "quoteSignature": firm.signature,
                    "acceptance": "0x" + acceptance.hex(),
                }
            )
        )
        return job, lambda: market.open_awarded(intent, quote, bytes.fromhex(firm.signature[2:]))

    async def settle(self, node: ProviderNode, rows: list[list[float]], *, batch: bool) -> dict[str, Any]:
        """Take and open one job per row, wait until the node settled them all; the settlement
        transactions' gas over the jobs."""
        market = QuoteMarket(self.w3, self.address)
        start = self.w3.eth.block_number + 1
        taken = [
            await self.take(node, key, self.intent(key, row, batch=batch))
            for key, row in zip(itertools.cycle(REQUESTER_KEYS), rows, strict=False)
        ]
        for _, open_awarded in taken:  # the awards in quick succession, as concurrent requests
            await asyncio.to_thread(open_awarded)
        jobs = [job for job, _ in taken]
        began = time.monotonic()
        await asyncio.gather(*list(node.rfq.runs.values()))  # each ends once its job is delivered
        states = [market.job_state(j) for j in jobs]
        assert all(s is JobState.SETTLED for s in states), states
        events = list(market.events(start, names=["Delivered", "BatchDelivered"]))
        txs = {e.tx_hash for e in events if e.name == "Delivered"}
        gas = sum(int(self.w3.eth.get_transaction_receipt(tx)["gasUsed"]) for tx in txs)
        batches = [e for e in events if isinstance(e, BatchDelivered)]
        return {
            "jobs": len(jobs),
            "settle_txs": len(txs),
            "batches": len(batches),
            "settle_gas": gas,
            "settle_gas_per_query": gas // len(jobs),
            "settled_after_s": round(time.monotonic() - began, 1),
        }


def timed(fn: Callable[[], object], jobs: int, trials: int) -> dict[str, Any]:
    seconds, cpu = [], []
    for _ in range(trials):
        started, cpu_started = time.perf_counter(), time.process_time()
        fn()
        seconds.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
    median = statistics.median(seconds)
    return {
        "prove_s": round(median, 3),
        "prove_s_per_query": round(median / jobs, 3),
        "prove_cpu_s_per_query": round(statistics.median(cpu) / jobs, 3),
        "trials": trials,
        "load": round(load(), 2),
    }


async def settle_all(
    single: models.Bundle, batch: models.Bundle, *, with_single: bool, wait_s: float
) -> dict[str, Any]:
    """One Anvil and one node with ``batch`` as its batch bundle: the settlement runs."""
    from tender.devnet._chain import ChainSetup

    n = batch.card.batch
    runs: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, Anvil(port=free_port()) as anvil:
        w3 = connect(anvil.rpc_url)
        setup = ChainSetup(w3, DEV_KEYS[0])
        deployment = setup.deploy(save=Path(tmp) / "deployment.json")
        bench = Bench(w3, deployment, single, batch)
        setup.mint(
            [Account.from_key(PROVIDER_KEY).address] + [Account.from_key(k).address for k in REQUESTER_KEYS],
            10**24,
        )
        setup.stake(PROVIDER_KEY, 10**22)
        for key in REQUESTER_KEYS:
            Token(w3, deployment.token, sender=TxSender(w3, key)).ensure_allowance(bench.address, 10**23)
        section = ProviderSection.model_validate(
            {
                "listen": f"127.0.0.1:{free_port()}",
                "models": [
                    {
                        "name": "mlp",
                        "onnx": str(single.onnx),
                        "bundle": str(single.path),
                        "batch_bundle": str(batch.path),
                        "batch_wait_s": wait_s,
                    }
                ],
                "store": str(Path(tmp) / "jobs.db"),
                "proving_workers": 1,
                "proving_nice": 0,
                "withdraw_threshold": 0,
                # quotes outlive the run's takes: the node would relay a late award itself
                "pricing": {"quote_ttl_s": 600},
            }
        )
        node = ProviderNode(section, chain=ProviderChain(w3, deployment, PROVIDER_KEY), key=PROVIDER_KEY)
        task = asyncio.create_task(supervise(node))
        while node.pool is None or not node.rfq._bundles:  # noqa: ASYNC110 - the node has no ready event
            await asyncio.sleep(0.1)
        rows = samples()
        try:
            await bench.settle(node, rows[:1], batch=False)  # warm: the provider's owed slot non-zero
            if with_single:
                runs["single"] = await bench.settle(node, rows[:2], batch=False)
            runs[f"batch{n}_full"] = await bench.settle(node, rows[:n], batch=True)
            runs[f"batch{n}_half"] = await bench.settle(node, rows[: n // 2], batch=True)
        finally:
            node.request_stop()
            await asyncio.wait_for(task, 60)
    return runs


async def run(trials: int, sizes: list[int]) -> dict[str, Any]:
    mlp = SAMPLE_MODELS / "mlp"
    single = models.build(mlp / "model.onnx", mlp / "calibration.json")
    rows = samples()
    proving: dict[str, Any] = {"single": timed(lambda: models.prove(single, rows[0]), 1, trials)}
    settlement: dict[str, Any] = {"load_before": round(load(), 2)}
    for i, n in enumerate(sizes):
        batch = models.build(mlp / "model.onnx", mlp / "calibration.json", batch=n, input_visibility="hashed")
        proving[f"batch{n}"] = timed(lambda b=batch, n=n: models.prove_batch(b, rows[:n]), n, trials)  # type: ignore[misc]
        settlement.update(await settle_all(single, batch, with_single=i == 0, wait_s=20))
    settlement["load_after"] = round(load(), 2)
    return {
        "batch_sizes": sizes,
        "binding": "hashed",
        "settlement": settlement,
        "proving": proving,
        "cpus": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 16], help="batch sizes (cached bundles)")
    args = parser.parse_args()
    result = asyncio.run(run(args.trials, args.sizes))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    settlement, proving = result["settlement"], result["proving"]
    table = Table(title=f"Settlement and proving per query (load {settlement['load_before']})")
    for column in (
        "run",
        "jobs",
        "settle txs",
        "settle gas / query",
        "prove s",
        "prove s / query",
        "CPU s / query",
    ):
        table.add_column(column, justify="right", no_wrap=True)
    names = ["single"] + [f"batch{n}_{part}" for n in result["batch_sizes"] for part in ("full", "half")]
    for name in names:
        row = settlement[name]
        timing = proving[name.split("_")[0]]
        share = row["jobs"] if name != "single" else 1
        table.add_row(
            name,
            str(row["jobs"]),
            str(row["settle_txs"]),
            f"{row['settle_gas_per_query']:,}",
            f"{timing['prove_s']:.2f}",
            f"{timing['prove_s'] / share:.2f}",
            f"{timing['prove_cpu_s_per_query'] * (timing['prove_s'] / share) / max(timing['prove_s_per_query'], 1e-9):.2f}",
        )
    Console(width=120).print(table)
    loads = ", ".join(f"{k} {v['load']}" for k, v in proving.items())
    Console(width=120).print(
        f"load average while proving: {loads}; settlement {settlement['load_before']} -> "
        f"{settlement['load_after']} ({result['cpus']} CPUs)"
    )


if __name__ == "__main__":
    main()
