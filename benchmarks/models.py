"""Benchmark the sample model bundles: circuit size, setup, proving, verification, gas.

Builds (or reuses) the bundles of ``models/mlp`` and ``models/cnn`` plus, for comparison, the
MLP with a public input, then measures on this machine and on a fresh Anvil:

- ``prove_s`` / ``verify_s``: median seconds over ``--runs`` proofs (witness + proof) and
  off-chain verifications;
- ``verify_gas``: gas used by a transaction calling the EZKL verifier's ``verifyProof``
  (21,000 intrinsic + calldata + execution);
- ``prove_over_infer``: proving time over plain onnxruntime inference time (batch 1, warm).

Prints a rich table and writes ``benchmarks/results/models.json``::

    .venv/bin/python benchmarks/models.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from web3 import Web3

from tender.anvil import DEV_KEYS, Anvil
from tender.chain import TxSender
from tender.models import Bundle, build, deploy_verifier, infer, prove, verify
from tender.paths import ROOT, SAMPLE_MODELS

RESULTS = ROOT / "benchmarks" / "results" / "models.json"

#: (label, model folder, input visibility)
CASES = (("mlp", "mlp", "hashed"), ("mlp-public-input", "mlp", "public"), ("cnn", "cnn", "hashed"))


def _median_time(fn: Any, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(label: str, bundle: Bundle, w3: Web3, sender: TxSender, *, runs: int) -> dict[str, Any]:
    samples = json.loads((SAMPLE_MODELS / bundle.name / "samples.json").read_text())["samples"]
    x = samples[0]["input"]
    infer(bundle, x)  # warm the session
    infer_s = _median_time(lambda: infer(bundle, x), 200)
    before = resource.getrusage(resource.RUSAGE_SELF)
    proofs = [prove(bundle, samples[i % len(samples)]["input"]) for i in range(runs)]
    after = resource.getrusage(resource.RUSAGE_SELF)
    # CPU seconds per proof (all threads): a figure that other load on the machine does not inflate
    prove_cpu_s = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / runs
    prove_s = statistics.median(p.prove_s for p in proofs)
    verify_s = _median_time(lambda: verify(bundle, proofs[0]), runs)
    address = deploy_verifier(w3, sender, bundle)
    contract = w3.eth.contract(address=Web3.to_checksum_address(address), abi=bundle.verifier()["abi"])
    receipt = sender.send(contract.functions.verifyProof(*proofs[0].calldata()))
    timings = json.loads((bundle.path / "build_timings.json").read_text())
    card = bundle.card
    return {
        "model": label,
        "input_visibility": card.input_visibility,
        "params": card.params,
        "logrows": card.logrows,
        "instances": card.layout.instance_count,
        "pk_bytes": bundle.pk.stat().st_size,
        "vk_bytes": bundle.vk.stat().st_size,
        "proof_bytes": len(proofs[0].proof),
        "setup_s": round(timings["setup_s"], 3),
        "prove_s": round(prove_s, 3),
        "prove_cpu_s": round(prove_cpu_s, 3),
        "verify_s": round(verify_s, 4),
        "verify_gas": int(receipt["gasUsed"]),
        "verifier_deploy_bytes": len(bytes.fromhex(bundle.verifier()["deployed_bytecode"][2:])),
        "infer_ms": round(infer_s * 1000, 4),
        "prove_over_infer": round(prove_s / infer_s),
        "accuracy": card.accuracy,
        "circuit_agreement": card.circuit_agreement,
        "insecure_srs": card.insecure_srs,
        "cpu_cores": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5, help="proofs per model (median reported)")
    parser.add_argument("--quick", action="store_true", help="two proofs per model")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.runs = 2
    console = Console() if sys.stdout.isatty() else Console(width=180)
    rows = []
    with Anvil() as anvil:
        w3 = Web3(Web3.HTTPProvider(anvil.rpc_url))
        sender = TxSender(w3, DEV_KEYS[0])
        for label, folder, visibility in CASES:
            with console.status(f"{label}: build (cached after the first run)"):
                bundle = build(
                    SAMPLE_MODELS / folder / "model.onnx", SAMPLE_MODELS / folder / "calibration.json",
                    input_visibility=visibility,  # type: ignore[arg-type]
                )  # fmt: skip
            with console.status(f"{label}: {args.runs} proofs, verification, gas"):
                rows.append(measure(label, bundle, w3, sender, runs=args.runs))

    table = Table(
        title=f"Tender sample models (ezkl, {os.cpu_count()} CPU cores, dev SRS: insecure, development only)"
    )
    columns = ("model", "input_visibility", "params", "logrows", "instances", "pk_bytes", "setup_s", "prove_s",
               "prove_cpu_s", "verify_s", "verify_gas", "prove_over_infer")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column in ("model", "input_visibility") else "right")
    for row in rows:
        table.add_row(*(f"{row[c]:,}" if isinstance(row[c], int) else str(row[c]) for c in columns))
    console.print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1) + "\n")
    load = os.getloadavg()[0]
    console.print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, load average {load:.1f} -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
