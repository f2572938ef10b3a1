"""Build a model bundle with EZKL: settings, calibration, circuit, SRS, keys, EVM verifier.

The run arguments every Tender circuit shares (:data:`tender.models._recipe.RUN_ARGS`):

- input visibility ``polycommit`` (the default): the quantized input sits in an unblinded
  advice column whose KZG commitment is the proof's first point; the requester computes the
  same point off-chain with the bundle's vk and SRS and signs ``keccak256(x, y)`` of it (the
  input commitment), which the market compares with ``keccak256(proof[0:64])``. ``hashed``
  (a Poseidon hash of the input as an instance) stays available for comparison: ~115k more
  verifier gas (docs/MODELS.md);
- output visibility ``public``: the outputs (all of them, concatenated) are instances the
  market reads;
- parameter visibility ``fixed``: the weights are fixed columns, so they are committed in the
  verifying key and a verifier accepts proofs of these weights only;
- one inner column and a 1024-base three-leg decomposition: the fewest columns and rows.

The scale (accuracy against size) comes from the :class:`~tender.models._recipe.Recipe`:
by default the largest scale whose circuit fits ``max_logrows`` (docs/MODELS.md, "Bring your
own model"). The EZKL work runs in a child process, so Ctrl-C (SIGINT) stops a build at once,
mid-SRS or mid-setup, and leaves no partial folder behind; each step is reported as a line.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import math
import multiprocessing
import os
import shutil
import signal
import sys
import threading
import time
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Literal

import numpy as np
from eth_utils import keccak

from tender.models import _errors, _runtime
from tender.models._batch import JOB_ONNX, MAX_BATCH, batch_calibration, batch_graph
from tender.models._batch import self_check as batch_self_check
from tender.models._bundle import CARD_FILE, Bundle, InstanceLayout, ModelCard, sha256_file
from tender.models._commit import ensure_commit_basis, kzg_points
from tender.models._commit import proof_bytes as _proof_bytes
from tender.models._errors import BundleError, SrsError, UnsupportedModel
from tender.models._ezkl import (
    captured_output,
    dev_srs,
    ezkl,
    self_check_proof,
    srs_logrows,
    write_evm_verifier,
)
from tender.models._felt import dequantize, felt_from_hex, poseidon, quantize
from tender.models._kind import model_kind
from tender.models._recipe import RECIPE, Recipe, Report, Target, Task, calibrate, check_graph, infer_task
from tender.models._solc import compile_solidity
from tender.paths import cache_dir as default_cache_dir

Visibility = Literal["polycommit", "hashed", "public"]

#: What :func:`build` uses unless told otherwise (and what the sample models and devnet use).
DEFAULT_INPUT_VISIBILITY: Visibility = "polycommit"
VISIBILITIES: tuple[Visibility, ...] = ("polycommit", "hashed", "public")

__all__ = ["RECIPE", "build", "build_key"]

#: Calibration samples checked circuit-vs-onnxruntime at build time.
AGREEMENT_SAMPLES = 16

PROOF_MODES = ("zk", "optimistic")

#: Seconds without news from the build process before a "still working" line.
HEARTBEAT_S = 20.0

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _model_name(onnx_path: Path) -> str:
    """The ONNX file's folder name (``models/mlp/model.onnx`` -> ``mlp``), as ``--name`` says."""
    folder = onnx_path.resolve().parent.name
    return folder or onnx_path.stem


def build_key(
    onnx_bytes: bytes,
    calibration_bytes: bytes,
    srs_choice: str,
    *,
    name: str,
    input_visibility: str,
    recipe: Recipe | None = None,
    batch: int = 1,
) -> str:
    """The cache key of a bundle: hashes of everything that changes what gets built (a
    single-job bundle's key is the one it had before batches existed)."""
    material = {
        "onnx": _sha256_bytes(onnx_bytes),
        "calibration": _sha256_bytes(calibration_bytes),
        "srs": srs_choice,
        "ezkl": ezkl.__version__,
        "name": name,
        "input_visibility": input_visibility,
        **(recipe or Recipe()).key_material(),
        **({"batch": batch} if batch > 1 else {}),
    }
    return _sha256_bytes(json.dumps(material, sort_keys=True).encode())


def _calibration_samples(path: Path, size: int) -> np.ndarray[Any, Any]:
    data = json.loads(path.read_text())
    try:
        flat = np.asarray(data["input_data"][0], dtype=np.float64).reshape(-1)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise BundleError(f"{path} is not EZKL input JSON ({{'input_data': [[...]]}}): {exc}") from exc
    if flat.size == 0 or flat.size % size:
        raise BundleError(f"{path} holds {flat.size} values, not a multiple of the input size {size}")
    return flat.reshape(-1, size)


def _params(onnx_path: Path) -> int:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_path))
    return int(sum(numpy_helper.to_array(t).size for t in model.graph.initializer))


def _accuracy(onnx_path: Path) -> float | None:
    meta = onnx_path.parent / "meta.json"
    if not meta.is_file():
        return None
    value = json.loads(meta.read_text()).get("heldout_accuracy")
    return None if value is None else float(value)


def _reporter(progress: bool | Report, name: str) -> Report:
    if callable(progress):
        return progress
    if not progress:
        return lambda _: None

    def line(message: str) -> None:
        print(f"[{name}] {message}", file=sys.stderr, flush=True)

    return line


def build(
    onnx_path: str | Path,
    calibration_path: str | Path,
    *,
    srs: Literal["dev"] | str | Path = "dev",
    cache_dir: str | Path | None = None,
    name: str | None = None,
    input_visibility: Visibility = DEFAULT_INPUT_VISIBILITY,
    recipe: Recipe | None = None,
    target: Target | None = None,
    scale: int | None = None,
    max_logrows: int | None = None,
    task: Task | None = None,
    batch: int = 1,
    progress: bool | Report = False,
) -> Bundle:
    """Build (or reuse) the bundle for one ONNX model.

    Args:
        onnx_path: the model: one float input (batch 1), float outputs; several outputs are
            concatenated in the instances when they share a scale.
        calibration_path: EZKL input JSON, ``{"input_data": [[x0, x1, ...]]}``; several
            samples may be concatenated into the one flat list.
        srs: ``"dev"`` to generate an SRS locally (insecure, development only), or a public
            Powers-of-Tau SRS in halo2 KZG format: one file with ``k >= logrows`` (best
            ``k == logrows``), or a folder of ``kzg{k}.srs`` files (the one matching is used).
        cache_dir: where bundles live (default: ``tender.paths.cache_dir()``).
        name: the model's name (default: the ONNX file's folder).
        input_visibility: ``"polycommit"`` (default: the input's KZG commitment is the proof's
            first point), ``"hashed"`` (a Poseidon hash of the input as instance 0), both
            accepted by the market, or ``"public"`` (the input as instances: comparison only).
        recipe: how to size the circuit (default: ``recipe.json`` next to the model, else
            :class:`Recipe`'s defaults); ``target``, ``scale``, ``max_logrows`` and ``task``
            override single fields of it.
        batch: jobs per proof. ``N > 1`` builds one circuit over ``N`` inputs of the model
            sharing its weights (not for public inputs): job ``i``'s input commitment is the
            proof's point ``i`` (polycommit) or its Poseidon hash at instance ``i`` (hashed), its
            outputs the ``i``-th slice of the instances (``tender.models._batch``);
            named ``<name>-batch<N>``; its default size budget is ``max_logrows`` plus
            ``ceil(log2 N)`` (the rows grow with ``N``).
        progress: ``True`` to print a line per step (and a heartbeat during long ones) on
            stderr, or a callable taking each line.

    Returns:
        The bundle. A second call with the same inputs returns the cached one at once.

    Raises:
        UnsupportedModel: the graph cannot become a Tender circuit (said before EZKL runs where
            the ONNX shows it, else after its settings step).
        CircuitTooLarge: the circuit would exceed ``max_logrows`` (after calibration, before any
            SRS or key).
        BundleError: an input is missing or malformed, or EZKL failed.
        SrsError: the SRS file is missing, unreadable or too small.
        SolcError: the verifier did not compile.
        KeyboardInterrupt: the build was interrupted; nothing was left behind.

    Example::

        bundle = build("models/mlp/model.onnx", "models/mlp/calibration.json")
        print(bundle.card.layout)
        build("lstm/model.onnx", "lstm/calibration.json", max_logrows=15, progress=True)
    """
    onnx_path, calibration_path = Path(onnx_path), Path(calibration_path)
    for path in (onnx_path, calibration_path):
        if not path.is_file():
            raise BundleError(f"{path} does not exist")
    if model_kind(onnx_path) == "tokens":
        raise UnsupportedModel(
            f"{onnx_path} is a token model (kind tokens): it is served by tender.tokens and audited by "
            "re-execution, not built into an EZKL bundle"
        )
    if input_visibility not in VISIBILITIES:
        raise BundleError(
            f"input_visibility must be one of {', '.join(VISIBILITIES)}, not {input_visibility!r}"
        )
    if not 1 <= batch <= MAX_BATCH:
        raise BundleError(f"batch must be between 1 and {MAX_BATCH}, not {batch}")
    if batch > 1 and input_visibility == "public":
        raise BundleError(
            "a batch binds each job's input by its own commitment: input_visibility must be polycommit or "
            "hashed, not 'public'"
        )
    overrides = {"target": target, "scale": scale, "max_logrows": max_logrows, "task": task}
    if recipe is None:
        recipe = Recipe.for_model(onnx_path, **overrides)
    else:
        recipe = Recipe(**{**recipe.__dict__, **{k: v for k, v in overrides.items() if v is not None}})
    if batch > 1 and max_logrows is None:  # the budget is per job: N jobs need ~log2(N) more rows
        recipe = replace(recipe, max_logrows=min(26, recipe.max_logrows + math.ceil(math.log2(batch))))
    name = name or _model_name(onnx_path) + (f"-batch{batch}" if batch > 1 else "")
    srs_file: Path | None = None
    if str(srs) == "dev":
        srs_choice = "dev"
    else:
        srs_file = Path(srs)
        if srs_file.is_dir():
            files = sorted(srs_file.glob("*.srs"))
            if not files:
                raise SrsError(f"SRS folder {srs_file} holds no *.srs files")
            srs_choice = "dir:" + ",".join(f"{srs_logrows(f)}={sha256_file(f)}" for f in files)
        elif srs_file.is_file():
            srs_logrows(srs_file)
            srs_choice = "file:" + sha256_file(srs_file)
        else:
            raise SrsError(f"SRS file {srs_file} does not exist")

    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    onnx_bytes, calibration_bytes = onnx_path.read_bytes(), calibration_path.read_bytes()
    key = build_key(
        onnx_bytes,
        calibration_bytes,
        srs_choice,
        name=name,
        input_visibility=input_visibility,
        recipe=recipe,
        batch=batch,
    )
    final = root / "models" / f"{name}-{key[:16]}"
    if (final / CARD_FILE).is_file():
        return _with_basis(Bundle.load(final))
    check_graph(onnx_path, name)

    report = _reporter(progress, name)
    work = final.with_name(f".{final.name}.{os.getpid()}.partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    started = time.perf_counter()
    try:
        _in_child(
            report,
            work=work,
            onnx_src=onnx_path,
            calibration_src=calibration_path,
            srs_file=srs_file,
            root=root,
            name=name,
            key=key,
            input_visibility=input_visibility,
            recipe=recipe,
            batch=batch,
        )
        try:
            os.replace(work, final)
        except OSError:
            if not (final / CARD_FILE).is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(f"built in {time.perf_counter() - started:.1f} s: {final}")
    return _with_basis(Bundle.load(final))


def _with_basis(bundle: Bundle) -> Bundle:
    """The bundle, with the commitment basis the light SDK needs (written once, then kept)."""
    ensure_commit_basis(bundle)
    return bundle


def _in_child(report: Report, **kwargs: Any) -> None:
    """Run :func:`_build_into` in a spawned process; relay its step lines; on any interruption
    (Ctrl-C) stop it at once and remove what it was writing (the dev SRS it may be making)."""
    if multiprocessing.current_process().daemon:  # a daemonic process may not start children
        _build_into(report, **kwargs)
        return
    context = multiprocessing.get_context("spawn")
    restore = None
    if threading.current_thread() is threading.main_thread():  # SIGTERM (timeout, kill) cleans up too
        restore = signal.signal(signal.SIGTERM, _terminated)
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(
        target=_child_main, args=(sender, kwargs), name="tender-model-build", daemon=True
    )
    process.start()
    sender.close()
    step, since = "starting", time.perf_counter()
    try:
        while True:
            if not receiver.poll(HEARTBEAT_S):
                if not process.is_alive():
                    break
                report(f"{step}: still working ({time.perf_counter() - since:.0f} s)")
                continue
            try:
                kind, payload = receiver.recv()
            except EOFError:
                break
            if kind == "step":
                step, since = payload, time.perf_counter()
                report(payload)
            elif kind == "error":
                cls_name, message = payload
                error_cls = getattr(_errors, cls_name, BundleError)
                raise error_cls(message)
            else:
                process.join()
                return
        process.join()
        raise BundleError(
            f"the build process of {kwargs['name']} ended without a bundle (exit code {process.exitcode})"
        )
    except BaseException:
        _stop(process, Path(kwargs["root"]))
        raise
    finally:
        receiver.close()
        if restore is not None:
            signal.signal(signal.SIGTERM, restore)


def _terminated(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _stop(process: Any, root: Path) -> None:
    if process.is_alive():
        process.terminate()  # SIGTERM: EZKL's native code holds no handler for it
        process.join(5)
        if process.is_alive():
            process.kill()
            process.join()
    for partial in (root / "srs").glob(f".dev-k*.{process.pid}.partial"):
        partial.unlink(missing_ok=True)


def _child_main(conn: Connection, kwargs: dict[str, Any]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides (a terminal's Ctrl-C reaches both)
    if sys.platform == "linux":  # and if the parent is killed outright, the kernel ends this process
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    try:
        _build_into(lambda line: conn.send(("step", line)), **kwargs)
        conn.send(("done", None))
    except _errors.ModelError as exc:
        conn.send(("error", (type(exc).__name__, str(exc))))
    except Exception as exc:
        conn.send(("error", ("BundleError", f"{type(exc).__name__}: {exc}")))
    finally:
        conn.close()


def _build_into(
    report: Report,
    *,
    work: Path,
    onnx_src: Path,
    calibration_src: Path,
    srs_file: Path | None,
    root: Path,
    name: str,
    key: str,
    input_visibility: str,
    recipe: Recipe,
    batch: int = 1,
) -> None:
    shutil.copyfile(calibration_src, work / "calibration.json")
    partial = Bundle(work, None)  # type: ignore[arg-type]  # paths only until the card exists
    log = work / "build.log"
    calibration_data = partial.calibration
    job_onnx = work / "model.onnx"
    if batch > 1:  # model.onnx: the batched graph the circuit is compiled from; job.onnx: one job
        job_onnx = work / JOB_ONNX
        shutil.copyfile(onnx_src, job_onnx)
        batch_graph(job_onnx, partial.onnx, batch)
        job_shape = tuple(int(d) for d in ezkl_input_shape(job_onnx))
        calibration_data = work / "calibration.batch.json"
        batch_calibration(
            _calibration_samples(calibration_src, int(np.prod(job_shape))), calibration_data, batch
        )
    else:
        shutil.copyfile(onnx_src, partial.onnx)
    timings: dict[str, float] = {}
    clock = [time.perf_counter()]

    def step(message: str) -> None:
        report(message)
        clock[0] = time.perf_counter()

    def timed(label: str) -> None:
        timings[label] = round(time.perf_counter() - clock[0], 3)

    try:
        step(
            f"settings and calibration ({recipe.target}, scales {'-'.join(map(str, recipe.candidates()))}, "
            f"max logrows {recipe.max_logrows})"
        )
        chosen = calibrate(
            partial.onnx,
            calibration_data,
            partial.settings,
            recipe,
            name=name,
            input_visibility=input_visibility,
            log=log,
            report=report,
        )
        timed("settings_s")
        step(f"compile circuit (scale {chosen.scale}, logrows {chosen.logrows})")
        with captured_output(log):
            ezkl.compile_circuit(str(partial.onnx), str(partial.compiled), str(partial.settings))
        timed("compile_s")
        settings = json.loads(partial.settings.read_text())
        logrows = int(settings["run_args"]["logrows"])

        step(f"SRS (k={logrows}{', generating a dev SRS' if srs_file is None else ''})")
        if srs_file is None:
            shutil.copyfile(dev_srs(root / "srs", logrows), partial.srs)
        else:
            shutil.copyfile(pick_srs(srs_file, logrows), partial.srs)
        timed("srs_s")
        step(f"keys (setup, 2^{logrows} rows)")
        with captured_output(log):
            ezkl.setup(str(partial.compiled), str(partial.vk), str(partial.pk), srs_path=str(partial.srs))
        timed("setup_s")
        step("EVM verifier (render + solc)")
        with captured_output(log):
            write_evm_verifier(
                partial.vk, partial.settings, partial.srs, partial.verifier_source, work / "abi.json"
            )
        artefact = compile_solidity(partial.verifier_source, "Halo2Verifier")
        partial.verifier_artifact.write_text(json.dumps(artefact, indent=1))
        timed("verifier_s")
    except RuntimeError as exc:
        raise BundleError(f"EZKL failed building {name}: {exc} (see {log})") from exc

    input_shape = tuple(int(d) for d in ezkl_input_shape(job_onnx))
    # the instance shapes are the public input's (if any), then one per graph output (per job)
    outputs = len(check_graph(job_onnx, name))
    shapes = settings["model_instance_shapes"][-outputs * batch :][:outputs]
    output_shapes = [tuple(int(d) for d in shape) for shape in shapes]
    output_length = sum(int(np.prod(shape)) for shape in output_shapes)
    output_shape = output_shapes[0] if len(output_shapes) == 1 else (output_length,)
    # instances before the outputs: the Poseidon hash (hashed), the input (public), none (polycommit)
    before = {"hashed": batch, "public": int(np.prod(input_shape)), "polycommit": 0}[input_visibility]
    layout = InstanceLayout(
        commitment_index=0 if input_visibility == "hashed" else -1,
        output_offset=before,
        output_length=output_length,
        instance_count=before + output_length * batch,
    )
    input_scale = int(settings["model_input_scales"][0])
    output_scale = int(settings["model_output_scales"][0])
    accuracy = _accuracy(onnx_src)
    task = recipe.task or infer_task(job_onnx, meta_accuracy=accuracy)

    step(f"self-check (witness, prove, verify; {task} error on {AGREEMENT_SAMPLES} calibration samples)")
    if batch > 1:
        errors = _Errors()
        samples = _calibration_samples(calibration_src, int(np.prod(input_shape)))[:AGREEMENT_SAMPLES]
        for circuit, reference in batch_self_check(partial, samples, input_shape, input_scale, log):
            errors.add(circuit, reference)
        errors.max_abs = round(errors.max_abs, 6)
    else:
        errors = _check(
            partial,
            calibration_src,
            input_shape,
            input_scale,
            output_scale,
            layout,
            visibility=input_visibility,
            log=log,
        )
    timed("check_s")

    runtime = bytes.fromhex(artefact["deployed_bytecode"][2:])
    card = ModelCard(
        name=name,
        onnx_sha256=sha256_file(partial.onnx),
        input_shape=input_shape,
        output_shape=output_shape,
        input_scale=input_scale,
        output_scale=output_scale,
        input_visibility=input_visibility,
        logrows=logrows,
        layout=layout,
        settings_sha256=sha256_file(partial.settings),
        vk_sha256=sha256_file(partial.vk),
        verifier_bytecode_sha256=_sha256_bytes(bytes.fromhex(artefact["bytecode"][2:])),
        verifier_runtime_keccak256="0x" + keccak(runtime).hex(),
        srs_sha256=sha256_file(partial.srs),
        insecure_srs=srs_file is None,
        accuracy=accuracy,
        circuit_agreement=errors.agreement if task == "classify" else None,
        max_abs_error=errors.max_abs,
        proof_modes=PROOF_MODES,
        ezkl_version=ezkl.__version__,
        build_key=key,
        params=_params(job_onnx),
        run_args=settings["run_args"],
        max_rel_error=errors.max_rel,
        task=task,
        output_shapes=tuple(output_shapes) if len(output_shapes) > 1 else None,
        recipe={
            "target": recipe.target,
            "scale": chosen.scale,
            "max_logrows": recipe.max_logrows,
            "scale_rebase_multiplier": settings["run_args"]["scale_rebase_multiplier"],
        },
        batch=batch,
        job_onnx_sha256=sha256_file(job_onnx) if batch > 1 else None,
    )
    (work / "build_timings.json").write_text(json.dumps(timings, indent=1))
    (work / CARD_FILE).write_text(json.dumps(card.to_dict(), indent=1))


def pick_srs(source: Path, logrows: int) -> Path:
    """The SRS file to use for a circuit of ``2**logrows`` rows.

    ``source`` is one SRS file or a folder of them (as EZKL publishes the Powers-of-Tau SRS:
    one ``kzg{k}.srs`` per ``k``). A file with exactly ``k = logrows`` is preferred: a larger
    one works, but EZKL then shrinks it on every load (seconds per proof).

    Raises:
        SrsError: no file is large enough.
    """
    candidates = sorted(source.glob("*.srs")) if source.is_dir() else [source]
    sized = sorted((srs_logrows(f), f) for f in candidates)
    usable = [(k, f) for k, f in sized if k >= logrows]
    if not usable:
        largest = sized[-1][0] if sized else 0
        raise SrsError(f"SRS {source} goes up to k={largest}; the circuit needs k >= {logrows}")
    return usable[0][1]


def ezkl_input_shape(onnx_path: Path) -> list[int]:
    """The model's input shape with symbolic (batch) dimensions set to 1, as EZKL runs it."""
    sess = _runtime.session(str(onnx_path))
    return [d if isinstance(d, int) and d > 0 else 1 for d in sess.get_inputs()[0].shape]


class _Errors:
    """Circuit against onnxruntime on the calibration samples."""

    def __init__(self) -> None:
        self.agree = 0
        self.samples = 0
        self.max_abs = 0.0
        self.peak = 0.0

    def add(self, circuit: np.ndarray[Any, Any], reference: np.ndarray[Any, Any]) -> None:
        self.samples += 1
        self.agree += int(np.argmax(circuit) == np.argmax(reference))
        self.max_abs = max(self.max_abs, float(np.max(np.abs(circuit - reference))))
        self.peak = max(self.peak, float(np.max(np.abs(reference))))

    @property
    def agreement(self) -> float:
        return self.agree / self.samples

    @property
    def max_rel(self) -> float:
        """The largest absolute error over the largest absolute reference output."""
        return float(f"{self.max_abs / self.peak:.3g}") if self.peak > 0 else 0.0


def _check(
    bundle: Bundle,
    calibration: Path,
    input_shape: tuple[int, ...],
    input_scale: int,
    output_scale: int,
    layout: InstanceLayout,
    *,
    visibility: str,
    log: Path,
) -> _Errors:
    """Prove one calibration sample and compare the circuit to onnxruntime on a few more.

    The proof must verify, carry every output where the layout says, and carry the input
    commitment where the binding says: the Poseidon hash at ``commitment_index`` (hashed), or
    the KZG commitment of the quantized input as its first point, the input fitting one column
    (polycommit: the market binds that one point only).

    Returns:
        argmax agreement, the largest absolute output error and the largest reference output.
    """
    size = int(np.prod(input_shape))
    samples = _calibration_samples(calibration, size)[:AGREEMENT_SAMPLES]
    errors = _Errors()
    scratch = bundle.path / "check"
    scratch.mkdir()
    for i, sample in enumerate(samples):
        values = [float(v) for v in sample]
        reference = _runtime.run_all(bundle.onnx, values, input_shape)
        (scratch / "input.json").write_text(json.dumps({"input_data": [values]}))
        keys = (str(bundle.vk), str(bundle.srs)) if visibility == "polycommit" else (None, None)
        witness = ezkl.gen_witness(
            str(scratch / "input.json"), str(bundle.compiled), str(scratch / "witness.json"), *keys
        )
        outputs = [felt_from_hex(f) for output in witness["outputs"] for f in output]
        errors.add(np.asarray([dequantize(v, output_scale) for v in outputs]), reference)
        if i == 0:
            proof, ok = self_check_proof(scratch, bundle, log)
            instances = [felt_from_hex(f) for f in proof["instances"][0]]
            if not ok:
                raise BundleError("self-check failed: the proof of a calibration sample does not verify")
            if len(instances) != layout.instance_count:
                raise BundleError(
                    f"self-check failed: the proof has {len(instances)} instances, the layout expects "
                    f"{layout.instance_count} ({layout.output_length} outputs after {layout.output_offset})"
                )
            if instances[layout.output_offset : layout.output_offset + layout.output_length] != outputs:
                raise BundleError("self-check failed: the proof's outputs are not where the layout says")
            felts = quantize(values, input_scale)
            if visibility == "hashed" and instances[layout.commitment_index] != poseidon(felts):
                raise BundleError("self-check failed: the input commitment is not the proof's instance")
            if visibility == "polycommit":
                points = kzg_points(bundle, felts)
                if len(points) != 1:
                    raise BundleError(
                        f"the input spans {len(points)} polycommit columns; the market binds one "
                        "(build with input_visibility='hashed')"
                    )
                if _proof_bytes(proof["proof"])[:64] != points[0]:
                    raise BundleError(
                        "self-check failed: the proof's first point is not the input's KZG commitment"
                    )
    shutil.rmtree(scratch)
    errors.max_abs = round(errors.max_abs, 6)
    return errors
