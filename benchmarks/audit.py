#!/usr/bin/env python3
"""Benchmark: what the verifier agent's duties cost in gas, and how fast ``tender audit`` checks jobs.

On a private Anvil with the real MLP (EZKL Halo2 verifier contract, real proofs):

1. gas of every agent duty, measured on the agent's own receipts: ``challenge`` of a wrong
   optimistic output, ``expire`` after an unanswered challenge (the slash), ``expire`` of a
   silent provider, ``finalize`` of an unchallenged delivery; for reference the provider's
   zk ``deliver`` (on-chain proof verification) and ``prove`` after a challenge;
2. audit throughput: jobs per second for a full audit (all five checks on every job, EZKL
   off-chain verification included) of a history of N jobs through every ending, with 1 and
   with 8 worker threads, and without the off-chain EZKL step.

Run: ``python benchmarks/audit.py [--quick]`` (writes ``benchmarks/results/audit.json``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# The harness (tests/harness) is imported from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console
from rich.table import Table

from tender.anvil import Anvil
from tender.config import ChainSection
from tender.intents import ProofMode
from tender.models import FIELD_MODULUS
from tests.harness.verifier import Env, build_history, make_env, proof_of, samples
from verifier import VerifierConfig, VerifierSection
from verifier._agent import Agent
from verifier._audit import Auditor
from verifier._models import witness_outputs

RESULTS = Path(__file__).resolve().parent / "results" / "audit.json"


def _agent(env: Env, folder: Path) -> Agent:
    deployment = env.deployment.save(folder / "deployment.json")
    config = VerifierConfig(
        chain=ChainSection(rpc_url=env.chain.rpc_url, deployment=deployment),
        verifier=VerifierSection(store=folder / "agent.db"),
    )
    agent = Agent(config, key=env.agent_key)
    agent._setup_sync()
    return agent


def _gas(env: Env, tx_hash: Any) -> int:
    return int(env.w3.eth.get_transaction_receipt(tx_hash)["gasUsed"])


def measure_gas(env: Env, folder: Path) -> dict[str, int]:
    """Gas of each duty, from the agent's receipts (and the provider's for reference)."""
    agent = _agent(env, folder)
    xs = samples()
    wrong_job = env.open_job(xs[1], mode=ProofMode.OPTIMISTIC)
    wrong = list(witness_outputs(env.bundle, xs[1]))
    wrong[0] = (wrong[0] + 5 * 2**env.bundle.card.output_scale) % FIELD_MODULUS
    env.deliver_optimistic(wrong_job, wrong)
    honest_job = env.open_job(xs[2], mode=ProofMode.OPTIMISTIC)
    env.deliver_optimistic(honest_job, witness_outputs(env.bundle, xs[2]))
    silent_job = env.open_job(xs[3], mode=ProofMode.ZK, latency=60)
    zk_job = env.open_job(xs[0], mode=ProofMode.ZK)
    deliver = env.provider.market.deliver(zk_job, proof_of(0).output_felts, proof_of(0).proof)
    proved_job = env.open_job(xs[0], mode=ProofMode.OPTIMISTIC)
    env.deliver_optimistic(proved_job, proof_of(0).output_felts)
    env.bystander.market.challenge(proved_job)
    prove = env.provider.market.prove(proved_job, proof_of(0).proof)
    agent.step()  # judges both optimistic deliveries, challenges the wrong one
    env.advance(400)
    agent.step()  # slash, expire, finalize
    agent.step()
    by_kind = {a.kind.split(":")[0]: a for a in agent.store.actions() if a.status == "mined"}
    gas = {kind: _gas(env, action.tx_hash) for kind, action in by_kind.items()}
    expected = {"challenge", "slash", "expire", "finalize"}
    if set(gas) != expected:
        raise SystemExit(f"agent actions {sorted(gas)} differ from {sorted(expected)}")
    del silent_job, honest_job, wrong_job
    return {
        "challenge": gas["challenge"],
        "expire_unproven_challenge (slash)": gas["slash"],
        "expire_silent_provider": gas["expire"],
        "finalize": gas["finalize"],
        "deliver_zk (provider, on-chain EZKL verify)": int(deliver["gasUsed"]),
        "prove_after_challenge (provider)": int(prove["gasUsed"]),
    }


def measure_audit(env: Env, *, jobs: int, repeats: int) -> dict[str, Any]:
    """Build a history of about ``jobs`` jobs, then time full audits of it."""
    share = max(1, jobs // 10)
    started = time.perf_counter()
    history = build_history(
        env,
        zk=jobs - 5 * share,
        finalized=2 * share,
        slashed=share // 2 or 1,
        proved=share // 2 or 1,
        expired=share,
        refunded=share,
    )
    build_s = time.perf_counter() - started
    out: dict[str, Any] = {"jobs": len(history.all), "history_build_s": round(build_s, 2), "runs": {}}
    for label, workers, offchain in (
        ("1 worker", 1, True),
        ("8 workers", 8, True),
        ("8 workers, no EZKL", 8, False),
    ):
        times = []
        for _ in range(repeats):
            report = Auditor(env.w3, env.deployment, workers=workers, offchain=offchain).run()
            if not report.ok:
                raise SystemExit(f"audit of a clean history failed: {[j.job_id for j in report.failed_jobs]}")
            times.append(report.seconds)
        best, median = min(times), statistics.median(times)
        out["runs"][label] = {
            "workers": workers,
            "offchain_ezkl": offchain,
            "seconds_best": round(best, 3),
            "seconds_median": round(median, 3),
            "jobs_per_s_best": round(len(history.all) / best, 1),
            "jobs_per_s_median": round(len(history.all) / median, 1),
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="20 jobs, 2 repeats")
    parser.add_argument("--jobs", type=int, default=60)
    args = parser.parse_args()
    jobs, repeats = (20, 2) if args.quick else (args.jobs, 3)
    console = Console()
    logging.getLogger("verifier").setLevel(logging.ERROR)  # the agent's judgements are expected here
    with tempfile.TemporaryDirectory() as tmp, Anvil() as chain:
        env = make_env(chain)
        snapshot = chain.rpc("evm_snapshot", [])
        gas = measure_gas(env, Path(tmp))
        chain.rpc("evm_revert", [snapshot])
        from tender.chain import resync_nonces

        resync_nonces(env.w3)
        audit = measure_audit(env, jobs=jobs, repeats=repeats)
    result = {
        "benchmark": "audit",
        "model": env.bundle.card.name,
        "gas": gas,
        "audit": audit,
        "machine": {
            "cpus": os.cpu_count(),
            "load_avg_1m": round(os.getloadavg()[0], 2),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "notes": "Anvil, real EZKL proofs (dev SRS), web3 over HTTP; audit = events, model, input, proof "
        "(verifier contract eth_call + EZKL off-chain, or re-execution for unproven optimistic jobs), amounts.",
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    table = Table(title="verifier duties: gas")
    table.add_column("action")
    table.add_column("gas", justify="right")
    for name, value in gas.items():
        table.add_row(name, f"{value:,}")
    console.print(table)
    table = Table(title=f"tender audit: {audit['jobs']} jobs")
    table.add_column("run")
    table.add_column("best s", justify="right")
    table.add_column("jobs/s (best)", justify="right")
    table.add_column("jobs/s (median)", justify="right")
    for label, run in audit["runs"].items():
        table.add_row(
            label, str(run["seconds_best"]), str(run["jobs_per_s_best"]), str(run["jobs_per_s_median"])
        )
    console.print(table)
    console.print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
