"""Benchmark the sample model bundles: circuit size, setup, proving, verification, gas.

Builds (or reuses) the bundles of ``models/mlp`` and ``models/cnn`` with the default input
binding (``polycommit``) plus, for comparison, the MLP with a hashed (Poseidon) and a public
input, then measures on this machine and on a fresh Anvil:

- ``prove_s`` / ``verify_s``: median seconds over ``--runs`` proofs (witness + proof) and
  off-chain verifications;
- ``verify_gas``: gas used by a transaction calling the EZKL verifier's ``verifyProof``
  (21,000 intrinsic + calldata + execution);
- ``prove_over_infer``: proving time over plain onnxruntime inference time (batch 1, warm);
- ``commit_ms`` / ``commit_cached_ms``: ``input_commitment`` of a new input (KZG commitment with
  the bundle's vk and SRS for polycommit, Poseidon for hashed) and of the same input again.

Prints a rich table and writes ``benchmarks/results/models.json``::

    .venv/bin/python benchmarks/models.py [--runs 5]

``--sweep`` instead builds variants of one sample model's EZKL recipe (run args, calibration
target, scales, input visibility, solc optimizer runs, reusable verifier) into a temporary
folder, deploys each verifier on Anvil and records ``verifyProof`` gas, proving time (wall and
CPU), pk size, circuit-vs-onnxruntime agreement on the samples plus 16 calibration inputs, and
whether the input binding holds (docs/MODELS.md, "Verifier gas sweep")::

    .venv/bin/python benchmarks/models.py --sweep [--model mlp] [--only NAME ...] [--out FILE]

``--kinds`` instead takes model kinds Tender does not ship (``tests/harness/zoo.py``: an LSTM, an
average-pooling regressor, a softmax layer, a two-head model, a conv net, a scikit-learn MLP;
plus the sample MLP under the new default recipe) through :func:`tender.models.build` at the
default recipe (target ``accuracy``, the largest scale within 2^17 rows) and at ``--target
resources``, and records logrows, scale, pk size, setup and proving time, ``verifyProof`` gas
on Anvil and the card's error against onnxruntime; next to each, plain EZKL's defaults
(``gen_settings`` + ``calibrate_settings`` with its default scales and run arguments: logrows,
scale and error from the witness, no keys). Writes ``benchmarks/results/models_kinds.json``::

    .venv/bin/python benchmarks/models.py --kinds [--only lstm ...] [--runs 2]

``--batch`` instead measures batched settlement (issue #17): the sample MLP proved one job per
proof (N = 1) and N jobs per proof (``build(..., batch=N)``, N = 4, 16): prove wall seconds
(median of ``--runs``), CPU seconds per query (all threads), ``verifyProof`` gas of the whole
transaction on Anvil (``eth_estimateGas`` and the mined receipt) per query, keys' sizes, with
each job's commitment and outputs checked in its slot, for both input bindings. Its rows
(``model`` ``mlp-batch<N>`` and ``mlp-batch<N>-hashed``)
replace earlier batch rows in ``benchmarks/results/models.json``; other rows stay::

    .venv/bin/python benchmarks/models.py --batch [--sizes 1 4 16] [--visibilities polycommit hashed] [--runs 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

# The harness (tests/harness: the zoo of model kinds) is imported from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from rich.console import Console
from rich.table import Table
from web3 import Web3
from web3.types import TxParams

from tender.anvil import DEV_KEYS, Anvil
from tender.chain import TxSender
from tender.models import (
    BatchProof,
    Bundle,
    Recipe,
    _runtime,
    _solc,
    build,
    deploy_verifier,
    infer,
    input_commitment,
    prove,
    prove_batch,
    verify,
    verify_batch,
)
from tender.models._build import RECIPE, ezkl_input_shape
from tender.models._ezkl import captured_output, dev_srs, ezkl, run_coroutine, write_evm_verifier
from tender.models._felt import dequantize, felt_from_hex, poseidon, quantize
from tender.paths import ROOT, SAMPLE_MODELS, cache_dir
from tests.harness import zoo

RESULTS = ROOT / "benchmarks" / "results" / "models.json"
KINDS_RESULTS = ROOT / "benchmarks" / "results" / "models_kinds.json"

#: (label, model folder, input visibility)
CASES = (
    ("mlp", "mlp", "polycommit"),
    ("mlp-hashed-input", "mlp", "hashed"),
    ("mlp-public-input", "mlp", "public"),
    ("cnn", "cnn", "polycommit"),
)

#: The sweep's base recipe keeps the input hashed, as measured for issue #6 (docs/MODELS.md);
#: its ``input polycommit`` variants are the default recipe of :func:`tender.models.build`.
SWEEP_BASE_VISIBILITY = "hashed"


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
    commit_ms: float | None = None
    commit_cached_ms: float | None = None
    if card.input_binding is not None:
        fresh = [list(np.random.default_rng(seed).random(card.input_size)) for seed in range(runs)]
        started = time.perf_counter()
        for x_new in fresh:  # new inputs: nothing cached (vk, SRS read and MSM each time)
            input_commitment(bundle, x_new)
        commit_ms = (time.perf_counter() - started) / runs * 1000
        commit_cached_ms = _median_time(lambda: input_commitment(bundle, fresh[0]), runs) * 1000
        assert input_commitment(bundle, samples[0]["input"]) == proofs[0].input_commitment
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
        "commit_ms": None if commit_ms is None else round(commit_ms, 2),
        "commit_cached_ms": None if commit_cached_ms is None else round(commit_cached_ms, 3),
        "accuracy": card.accuracy,
        "circuit_agreement": card.circuit_agreement,
        "insecure_srs": card.insecure_srs,
        "cpu_cores": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


#: Variants of the bundle recipe measured by ``--sweep``: (name, changes). Keys of the changes:
#: ``run_args`` (PyRunArgs fields set before ``gen_settings``), ``target`` and ``scales`` /
#: ``rebase`` (calibration), ``calibrate`` (False: keep ``gen_settings``' settings), ``post``
#: (run args overwritten after calibration), ``solc`` (compiler settings), ``reusable``
#: (EZKL's reusable verifier with a separately registered VK artifact).
SWEEP: tuple[tuple[str, dict[str, Any]], ...] = (
    ("default", {}),
    ("num_inner_cols=2", {"run_args": {"num_inner_cols": 2}}),
    ("logrows=13", {"post": {"logrows": 13}}),
    ("target=resources", {"target": "resources"}),
    ("decomp 512x4", {"run_args": {"decomp_base": 512, "decomp_legs": 4}}),
    ("decomp 2048x2", {"run_args": {"decomp_base": 2048, "decomp_legs": 2}}),
    ("scale 5", {"scales": [5]}),
    ("input_scale 4", {"calibrate": False, "run_args": {"input_scale": 4, "param_scale": 7, "logrows": 12}}),
    ("scale_rebase_multiplier 1", {"rebase": [1]}),
    ("bounded_log_lookup", {"run_args": {"bounded_log_lookup": True}}),
    ("lookup_range +-2^15", {"run_args": {"lookup_range": (-32768, 32768)}}),
    ("check_mode SAFE", {"run_args": {"check_mode": "SAFE"}}),
    ("disable_freivalds", {"run_args": {"disable_freivalds": True}}),
    ("ignore_range_check_io", {"run_args": {"ignore_range_check_inputs_outputs": True}}),
    ("reusable verifier + VKA", {"reusable": True}),
    ("solc runs 1e5", {"solc": {"optimizer": {"enabled": True, "runs": 100_000}}}),
    ("input public", {"run_args": {"input_visibility": "public"}}),
    (
        "input public, runs 1e5",
        {
            "run_args": {"input_visibility": "public"},
            "solc": {"optimizer": {"enabled": True, "runs": 100_000}},
        },
    ),
    ("input polycommit", {"run_args": {"input_visibility": "polycommit"}}),
    (
        "input polycommit, runs 1e5",
        {
            "run_args": {"input_visibility": "polycommit"},
            "solc": {"optimizer": {"enabled": True, "runs": 100_000}},
        },
    ),
)


def _sweep_build(onnx: Path, calibration: Path, changes: dict[str, Any], work: Path) -> dict[str, Any]:
    """Settings, calibration, circuit, keys and a compiled verifier for one recipe variant."""
    log = work / "build.log"
    run_args = ezkl.PyRunArgs()
    fields = {
        "input_visibility": SWEEP_BASE_VISIBILITY,
        **{k: RECIPE[k] for k in ("output_visibility", "param_visibility", "num_inner_cols")},
        **{k: RECIPE[k] for k in ("decomp_base", "decomp_legs")},
        **changes.get("run_args", {}),
    }
    for key, value in fields.items():
        setattr(run_args, key, value)
    settings = work / "settings.json"
    with captured_output(log):
        ezkl.gen_settings(str(onnx), str(settings), py_run_args=run_args)
        if changes.get("calibrate", True):
            options: dict[str, Any] = {"scales": changes.get("scales", RECIPE["scales"])}
            if "rebase" in changes:
                options["scale_rebase_multiplier"] = changes["rebase"]
            target = changes.get("target", RECIPE["target"])
            ezkl.calibrate_settings(str(calibration), str(onnx), str(settings), target, **options)
    values = json.loads(settings.read_text())
    values["run_args"].update(changes.get("post", {}))
    settings.write_text(json.dumps(values))
    compiled, vk, pk, sol = work / "network.ezkl", work / "vk.key", work / "pk.key", work / "Verifier.sol"
    with captured_output(log):
        ezkl.compile_circuit(str(onnx), str(compiled), str(settings))
    logrows = int(values["run_args"]["logrows"])
    srs = dev_srs(cache_dir() / "srs", logrows)
    with captured_output(log):
        ezkl.setup(str(compiled), str(vk), str(pk), srs_path=str(srs))
    reusable = bool(changes.get("reusable", False))
    with captured_output(log):
        if reusable:

            async def verifier() -> Any:
                return await ezkl.create_evm_verifier(
                    str(vk), str(settings), str(sol), str(work / "abi.json"), srs_path=str(srs), reusable=True
                )

            async def vka() -> Any:
                return await ezkl.create_evm_vka(
                    str(vk), str(settings), str(work / "vka.bin"), srs_path=str(srs)
                )

            for render in (verifier, vka):
                with contextlib.suppress(RuntimeError):  # renders, then fails to download solc
                    run_coroutine(render)
        else:
            write_evm_verifier(vk, settings, srs, sol, work / "abi.json")
    saved = json.loads(json.dumps(_solc.SOLC_SETTINGS))
    _solc.SOLC_SETTINGS.update(changes.get("solc", {}))
    try:
        artefact = _solc.compile_solidity(sol, "Halo2VerifierReusable" if reusable else "Halo2Verifier")
    finally:
        _solc.SOLC_SETTINGS.clear()
        _solc.SOLC_SETTINGS.update(saved)
    return {
        "settings": values,
        "compiled": compiled,
        "pk": pk,
        "vk": vk,
        "srs": srs,
        "artefact": artefact,
        "reusable": reusable,
        "visibility": fields["input_visibility"],
    }


def _sweep_measure(
    folder: Path, built: dict[str, Any], work: Path, w3: Web3, sender: TxSender, *, runs: int
) -> dict[str, Any]:
    settings = built["settings"]
    input_scale, output_scale = settings["model_input_scales"][0], settings["model_output_scales"][0]
    onnx = folder / "model.onnx"
    shape = ezkl_input_shape(onnx)
    size = int(np.prod(shape))
    samples = json.loads((folder / "samples.json").read_text())["samples"]
    calibration = json.loads((folder / "calibration.json").read_text())["input_data"][0]
    inputs = [np.asarray(s["input"], dtype=np.float64).reshape(-1) for s in samples]
    inputs += list(np.asarray(calibration, dtype=np.float64).reshape(-1, size)[:16])
    batch = np.asarray(inputs, dtype=np.float32).reshape((-1, *shape[1:]))
    reference = _runtime.run(onnx, batch).reshape(len(inputs), -1)
    agree, max_error = 0, 0.0
    data, witness = work / "input.json", work / "witness.json"
    for x, ref in zip(inputs, reference, strict=True):
        data.write_text(json.dumps({"input_data": [[float(v) for v in x]]}))
        out = ezkl.gen_witness(str(data), str(built["compiled"]), str(witness))["outputs"][0]
        circuit = np.asarray([dequantize(felt_from_hex(f), output_scale) for f in out])
        agree += int(np.argmax(circuit) == np.argmax(ref))
        max_error = max(max_error, float(np.max(np.abs(circuit - ref))))
    x = inputs[0]
    data.write_text(json.dumps({"input_data": [[float(v) for v in x]]}))
    times = []
    before = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(runs):
        started = time.perf_counter()
        ezkl.gen_witness(str(data), str(built["compiled"]), str(witness))
        raw = ezkl.prove(
            str(witness),
            str(built["compiled"]),
            str(built["pk"]),
            str(work / "proof.json"),
            srs_path=str(built["srs"]),
        )
        times.append(time.perf_counter() - started)
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / runs
    verified = ezkl.verify(
        str(work / "proof.json"), str(work / "settings.json"), str(built["vk"]), srs_path=str(built["srs"])
    )
    proof = (
        bytes.fromhex(raw["proof"].removeprefix("0x"))
        if isinstance(raw["proof"], str)
        else bytes(raw["proof"])
    )
    instances = [felt_from_hex(f) for f in raw["instances"][0]]
    quantized = quantize(x, input_scale)
    if built["visibility"] == "hashed":
        binding = "instance 0 = Poseidon(x)" if instances[0] == poseidon(quantized) else "BROKEN"
    elif built["visibility"] == "polycommit":
        commit = ezkl.kzg_commit(quantized, str(built["vk"]), str(work / "settings.json"), str(built["srs"]))
        point = commit[0]
        expected = bytes.fromhex(point.x)[::-1] + bytes.fromhex(point.y)[::-1]
        binding = "proof[0:64] = KZG(x), no instance" if proof[:64] == expected else "BROKEN"
    else:
        binding = f"x as {size} instances"
    artefact = built["artefact"]
    address, _ = sender.deploy(bytes.fromhex(artefact["bytecode"].removeprefix("0x")))
    contract = w3.eth.contract(address=Web3.to_checksum_address(address), abi=artefact["abi"])
    extra: list[Any] = []
    if built["reusable"]:
        vka = (work / "vka.bin").read_bytes()  # u64 word count (LE), then 32-byte words
        words = [vka[8 + 32 * i : 40 + 32 * i] for i in range(int.from_bytes(vka[:8], "little"))]
        sender.send(contract.functions.registerVka(words))
        extra = [words]

    def accepted(candidate: bytes) -> tuple[bool, str]:
        # the reusable verifier returns raw words, not its declared ABI: read the first word
        call = contract.functions.verifyProof(candidate, instances, *extra)._encode_transaction_data()
        try:
            result = bytes(w3.eth.call({"to": contract.address, "data": call}))
        except Exception:  # a revert is a refusal
            return False, call
        return int.from_bytes(result[:32], "big") == 1, call

    ok, call = accepted(proof)
    flipped = bytearray(proof)
    flipped[len(proof) // 2] ^= 1
    receipt = sender.send(cast(TxParams, {"to": contract.address, "data": call})) if ok else None
    return {
        "logrows": settings["run_args"]["logrows"],
        "num_rows": settings["num_rows"],
        "input_scale": input_scale,
        "output_scale": output_scale,
        "instances": len(instances),
        "binding": binding,
        "verify_gas": int(receipt["gasUsed"]) if receipt else None,
        "verifier_bytes": len(bytes.fromhex(artefact["deployed_bytecode"].removeprefix("0x"))),
        "proof_bytes": len(proof),
        "pk_bytes": built["pk"].stat().st_size,
        "prove_s": round(statistics.median(times), 3),
        "prove_cpu_s": round(cpu, 3),
        "verified": bool(verified) and ok,
        "flipped_refused": not accepted(bytes(flipped))[0],
        "agreement": f"{agree}/{len(inputs)}",
        "max_abs_error": round(max_error, 4),
    }


def sweep(model: str, only: list[str], out: Path | None, runs: int, console: Console) -> int:
    """Measure the :data:`SWEEP` variants of one sample model (see the module docstring)."""
    folder = SAMPLE_MODELS / model
    rows: list[dict[str, Any]] = []
    with Anvil() as anvil, tempfile.TemporaryDirectory(prefix="tender-sweep-") as tmp:
        w3 = Web3(Web3.HTTPProvider(anvil.rpc_url))
        sender = TxSender(w3, DEV_KEYS[0])
        for name, changes in SWEEP:
            if only and name not in only:
                continue
            work = Path(tmp) / str(len(rows))
            work.mkdir()
            row: dict[str, Any] = {"model": model, "variant": name}
            with console.status(f"{model} / {name}: build, prove, verify on Anvil"):
                try:
                    built = _sweep_build(folder / "model.onnx", folder / "calibration.json", changes, work)
                    row.update(_sweep_measure(folder, built, work, w3, sender, runs=runs))
                except Exception as exc:  # one failed variant does not stop the sweep
                    row["error"] = f"{type(exc).__name__}: {exc}"[:300]
            row["load_avg_1m"] = round(os.getloadavg()[0], 2)
            rows.append(row)
            console.print(json.dumps(row))
    table = Table(title=f"{model}: EZKL recipe variants (ezkl {ezkl.__version__}, Anvil cancun, dev SRS)")
    columns = (
        "variant",
        "logrows",
        "instances",
        "binding",
        "verify_gas",
        "verifier_bytes",
        "proof_bytes",
        "pk_bytes",
        "prove_s",
        "prove_cpu_s",
        "agreement",
        "max_abs_error",
    )
    for column in columns:
        table.add_column(column, justify="left" if column in ("variant", "binding") else "right")
    for row in rows:
        cells = [row.get(c, row.get("error", "") if c == "binding" else "") for c in columns]
        table.add_row(*(f"{v:,}" if isinstance(v, int) else str(v) for v in cells))
    console.print(table)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


#: Tasks the zoo's kinds are built with (``None``: inferred: a final softmax means classify).
KIND_TASKS: dict[str, str | None] = {"convnet": "classify", "mlp": "classify"}


def _kind_sources(kind: str) -> tuple[Path, Path]:
    if kind == "mlp":  # the sample, under the new default recipe instead of its pinned one
        return SAMPLE_MODELS / "mlp" / "model.onnx", SAMPLE_MODELS / "mlp" / "calibration.json"
    folder = cache_dir() / "zoo" / kind
    onnx = zoo.KINDS[kind](folder)
    return onnx, folder / "calibration.json"


def plain_ezkl(onnx: Path, calibration: Path, work: Path) -> dict[str, Any]:
    """EZKL's own defaults: logrows, scale and the witness's error against onnxruntime."""
    settings, compiled, log = work / "settings.json", work / "network.ezkl", work / "ezkl.log"
    started = time.perf_counter()
    with captured_output(log):
        ezkl.gen_settings(str(onnx), str(settings))
        ezkl.calibrate_settings(str(calibration), str(onnx), str(settings), "resources")
        ezkl.compile_circuit(str(onnx), str(compiled), str(settings))
    values = json.loads(settings.read_text())
    shape = ezkl_input_shape(onnx)
    size = int(np.prod(shape))
    flat = json.loads(calibration.read_text())["input_data"][0]
    samples = np.asarray(flat, dtype=np.float64).reshape(-1, size)[:16]
    scale = int(values["model_output_scales"][0])
    max_error = 0.0
    for x in samples:
        data = work / "input.json"
        data.write_text(json.dumps({"input_data": [[float(v) for v in x]]}))
        witness = ezkl.gen_witness(str(data), str(compiled), str(work / "witness.json"))
        circuit = np.asarray([dequantize(felt_from_hex(f), scale) for out in witness["outputs"] for f in out])
        reference = _runtime.run_all(onnx, [float(v) for v in x], shape)
        max_error = max(max_error, float(np.max(np.abs(circuit - reference))))
    return {
        "ezkl_logrows": values["run_args"]["logrows"],
        "ezkl_scale": values["run_args"]["input_scale"],
        "ezkl_max_abs_error": float(f"{max_error:.3g}"),
        "ezkl_settings_s": round(time.perf_counter() - started, 1),
    }


def measure_kind(
    kind: str, target: str, w3: Web3, sender: TxSender, *, runs: int, console: Console
) -> dict[str, Any]:
    onnx, calibration = _kind_sources(kind)
    recipe = Recipe(target=target, task=KIND_TASKS.get(kind))  # type: ignore[arg-type]
    started = time.perf_counter()
    bundle = build(
        onnx, calibration, recipe=recipe, name=kind, progress=lambda line: console.log(f"{kind}: {line}")
    )
    build_s = time.perf_counter() - started
    card = bundle.card
    x = [float(v) for v in json.loads(calibration.read_text())["input_data"][0][: card.input_size]]
    proofs = [prove(bundle, x) for _ in range(runs)]
    assert verify(bundle, proofs[0])
    address = deploy_verifier(w3, sender, bundle)
    contract = w3.eth.contract(address=Web3.to_checksum_address(address), abi=bundle.verifier()["abi"])
    receipt = sender.send(contract.functions.verifyProof(*proofs[0].calldata()))
    timings = json.loads((bundle.path / "build_timings.json").read_text())
    return {
        "model": kind,
        "target": target,
        "task": card.task,
        "scale": card.input_scale,
        "logrows": card.logrows,
        "instances": card.layout.instance_count,
        "pk_bytes": bundle.pk.stat().st_size,
        "build_s": round(build_s, 1),
        "setup_s": round(timings["setup_s"], 1),
        "prove_s": round(statistics.median(p.prove_s for p in proofs), 2),
        "verify_gas": int(receipt["gasUsed"]),
        "max_abs_error": card.max_abs_error,
        "max_rel_error": card.max_rel_error,
        "circuit_agreement": card.circuit_agreement,
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def kinds(only: list[str], out: Path, runs: int, console: Console) -> int:
    """Measure the zoo's kinds at both targets, beside plain EZKL's defaults (module docstring)."""
    names = [k for k in (*zoo.KINDS, "mlp") if not only or k in only]
    rows: list[dict[str, Any]] = []
    plain: dict[str, dict[str, Any]] = {}
    with Anvil() as anvil:
        w3 = Web3(Web3.HTTPProvider(anvil.rpc_url))
        sender = TxSender(w3, DEV_KEYS[0])
        for kind in names:
            with tempfile.TemporaryDirectory(prefix="tender-plain-ezkl-") as tmp:
                try:
                    plain[kind] = plain_ezkl(*_kind_sources(kind), Path(tmp))
                except Exception as exc:  # EZKL's defaults may fail where Tender's recipe does not
                    plain[kind] = {"ezkl_error": f"{type(exc).__name__}: {exc}"[:200]}
            for target in ("accuracy", "resources"):
                row = measure_kind(kind, target, w3, sender, runs=runs, console=console)
                row.update(plain[kind])
                rows.append(row)
                console.print(json.dumps(row))
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps(rows, indent=1) + "\n")
    table = Table(
        title=f"Model kinds: Tender default (accuracy) and --target resources vs plain EZKL defaults "
        f"(ezkl {ezkl.__version__}, {os.cpu_count()} cores, dev SRS)"
    )
    columns = (
        "model",
        "target",
        "scale",
        "logrows",
        "pk_bytes",
        "setup_s",
        "prove_s",
        "verify_gas",
        "max_abs_error",
        "max_rel_error",
        "circuit_agreement",
        "ezkl_scale",
        "ezkl_logrows",
        "ezkl_max_abs_error",
    )
    for column in columns:
        table.add_column(column, justify="left" if column in ("model", "target") else "right")
    for row in rows:
        cells = [row.get(c, "-") for c in columns]
        table.add_row(*(f"{v:,}" if isinstance(v, int) else str(v) for v in cells))
    console.print(table)
    console.print(f"load average {os.getloadavg()[0]:.1f} -> {out}")
    return 0


def measure_batch(n: int, visibility: str, w3: Web3, sender: TxSender, *, runs: int) -> dict[str, Any]:
    """One row of ``--batch``: N jobs of the sample MLP per proof (N = 1: the ordinary bundle)."""
    mlp = SAMPLE_MODELS / "mlp"
    samples = [s["input"] for s in json.loads((mlp / "samples.json").read_text())["samples"]]
    calibration = np.asarray(json.loads((mlp / "calibration.json").read_text())["input_data"][0]).reshape(
        -1, 64
    )
    pool = [list(map(float, x)) for x in samples] + [list(map(float, x)) for x in calibration]
    bundle = build(mlp / "model.onnx", mlp / "calibration.json", batch=n, input_visibility=visibility)  # type: ignore[arg-type]
    card = bundle.card
    groups = [[pool[(r * n + i) % len(pool)] for i in range(n)] for r in range(runs)]
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    proofs: list[Any] = [prove(bundle, b[0]) if n == 1 else prove_batch(bundle, b) for b in groups]
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    proof = proofs[0]
    if isinstance(proof, BatchProof):  # every slot holds its own job, as the market will read it
        commitments = [input_commitment(bundle, x) for x in groups[0]]
        assert verify_batch(bundle, proof, commitments) == [True] * n
        for job, x in zip(proof.jobs, groups[0], strict=True):
            assert max(abs(a - b) for a, b in zip(job.output, infer(bundle, x), strict=True)) < 0.2
    else:
        assert verify(bundle, proof)
        assert proof.input_commitment == input_commitment(bundle, groups[0][0])
    address = deploy_verifier(w3, sender, bundle)
    contract = w3.eth.contract(address=Web3.to_checksum_address(address), abi=bundle.verifier()["abi"])
    call = contract.functions.verifyProof(*proof.calldata())
    assert call.call() is True
    estimate = int(call.estimate_gas({"from": sender.address}))
    receipt = sender.send(call)
    timings = json.loads((bundle.path / "build_timings.json").read_text())
    gas = int(receipt["gasUsed"])
    return {
        "model": f"mlp-batch{n}" + ("-hashed" if visibility == "hashed" else ""),
        "batch": n,
        "input_visibility": visibility,
        "logrows": card.logrows,
        "instances": card.layout.instance_count,
        "pk_bytes": bundle.pk.stat().st_size,
        "vk_bytes": bundle.vk.stat().st_size,
        "srs_bytes": bundle.srs.stat().st_size,
        "proof_bytes": len(proof.proof),
        "calldata_bytes": len(bytes.fromhex(contract.encode_abi("verifyProof", args=proof.calldata())[2:])),
        "setup_s": round(timings["setup_s"], 3),
        "prove_s": round(statistics.median(p.prove_s for p in proofs), 3),
        "prove_s_per_query": round(statistics.median(p.prove_s for p in proofs) / n, 3),
        "prove_cpu_s_per_query": round(cpu_s / runs / n, 3),
        "prove_wall_s_total": round(wall, 2),
        "verify_gas": gas,
        "verify_gas_estimate": estimate,
        "verify_gas_per_query": gas // n,
        "verifier_deploy_bytes": len(bytes.fromhex(bundle.verifier()["deployed_bytecode"][2:])),
        "max_abs_error": card.max_abs_error,
        "circuit_agreement": card.circuit_agreement,
        "runs": runs,
        "insecure_srs": card.insecure_srs,
        "cpu_cores": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def batches(sizes: list[int], visibilities: list[str], out: Path, runs: int, console: Console) -> int:
    """``--batch``: measure, print, and merge the rows into ``out`` (other rows kept)."""
    rows = []
    with Anvil() as anvil:
        w3 = Web3(Web3.HTTPProvider(anvil.rpc_url))
        sender = TxSender(w3, DEV_KEYS[0])
        for visibility in visibilities:
            for n in sizes:
                with console.status(
                    f"batch {n} {visibility}: build (cached after the first run), {runs} proofs"
                ):
                    rows.append(measure_batch(n, visibility, w3, sender, runs=runs))
                console.print(json.dumps(rows[-1]))
    table = Table(title=f"Batched settlement, sample MLP ({os.cpu_count()} CPU cores, dev SRS: insecure)")
    columns = (
        "input_visibility",
        "batch",
        "logrows",
        "instances",
        "pk_bytes",
        "proof_bytes",
        "prove_s",
        "prove_s_per_query",
        "prove_cpu_s_per_query",
        "verify_gas",
        "verify_gas_per_query",
        "load_avg_1m",
    )
    for column in columns:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*(f"{row[c]:,}" if isinstance(row[c], int) else str(row[c]) for c in columns))
    console.print(table)
    kept = json.loads(out.read_text()) if out.is_file() else []
    names = {row["model"] for row in rows}
    out.write_text(json.dumps([r for r in kept if r.get("model") not in names] + rows, indent=1) + "\n")
    console.print(f"load average {os.getloadavg()[0]:.1f} -> {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5, help="proofs per model (median reported)")
    parser.add_argument("--quick", action="store_true", help="two proofs per model")
    parser.add_argument(
        "--out", type=Path, default=None, help=f"JSON results (default {RESULTS}; none for --sweep)"
    )
    parser.add_argument("--sweep", action="store_true", help="measure recipe variants instead (see above)")
    parser.add_argument("--model", default="mlp", help="sample model for --sweep")
    parser.add_argument(
        "--kinds", action="store_true", help="measure model kinds Tender does not ship (see above)"
    )
    parser.add_argument(
        "--only", nargs="*", default=[], help="--sweep / --kinds: only these variants / kinds"
    )
    parser.add_argument("--batch", action="store_true", help="measure batched proofs instead (see above)")
    parser.add_argument("--sizes", nargs="*", type=int, default=[1, 4, 16], help="--batch: jobs per proof")
    parser.add_argument(
        "--visibilities", nargs="*", default=["polycommit", "hashed"], help="--batch: input bindings measured"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.runs = 2
    if args.batch:
        console = Console() if sys.stdout.isatty() else Console(width=200)
        return batches(args.sizes, args.visibilities, args.out or RESULTS, min(args.runs, 3), console)
    if args.kinds:
        console = Console() if sys.stdout.isatty() else Console(width=240)
        return kinds(args.only, args.out or KINDS_RESULTS, min(args.runs, 2), console)
    if args.sweep:
        console = Console() if sys.stdout.isatty() else Console(width=220)
        return sweep(args.model, args.only, args.out, min(args.runs, 3), console)
    args.out = args.out or RESULTS
    console = Console() if sys.stdout.isatty() else Console(width=180)
    rows = []
    with Anvil() as anvil:
        w3 = Web3(Web3.HTTPProvider(anvil.rpc_url))
        sender = TxSender(w3, DEV_KEYS[0])
        for label, folder, visibility in CASES:
            with console.status(f"{label}: build (cached after the first run)"):
                bundle = build(
                    SAMPLE_MODELS / folder / "model.onnx",
                    SAMPLE_MODELS / folder / "calibration.json",
                    input_visibility=visibility,  # type: ignore[arg-type]
                )
            with console.status(f"{label}: {args.runs} proofs, verification, gas"):
                rows.append(measure(label, bundle, w3, sender, runs=args.runs))

    table = Table(
        title=f"Tender sample models (ezkl, {os.cpu_count()} CPU cores, dev SRS: insecure, development only)"
    )
    columns = (
        "model",
        "input_visibility",
        "params",
        "logrows",
        "instances",
        "pk_bytes",
        "setup_s",
        "prove_s",
        "prove_cpu_s",
        "verify_s",
        "verify_gas",
        "prove_over_infer",
        "commit_ms",
    )
    for column in columns:
        table.add_column(column, justify="left" if column in ("model", "input_visibility") else "right")
    for row in rows:
        table.add_row(*(f"{row[c]:,}" if isinstance(row[c], int) else str(row[c]) for c in columns))
    console.print(table)
    mlp = next(row for row in rows if row["model"] == "mlp")
    console.print(
        f"mlp ({mlp['input_visibility']}): verify gas {mlp['verify_gas']:,} (target < 450,000: "
        f"{'met' if mlp['verify_gas'] < 450_000 else 'NOT met'}), prove {mlp['prove_s']} s (target < 3 s: "
        f"{'met' if mlp['prove_s'] < 3 else 'NOT met'})"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1) + "\n")
    load = os.getloadavg()[0]
    console.print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, load average {load:.1f} -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
