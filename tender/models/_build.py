"""Build a model bundle with EZKL: settings, calibration, circuit, SRS, keys, EVM verifier.

The recipe (fixed for every Tender model, recorded in the cache key):

- input visibility ``polycommit`` (the default): the quantized input sits in an unblinded
  advice column whose KZG commitment is the proof's first point; the requester computes the
  same point off-chain with the bundle's vk and SRS and signs ``keccak256(x, y)`` of it (the
  input commitment), which the market compares with ``keccak256(proof[0:64])``. ``hashed``
  (a Poseidon hash of the input as an instance) stays available for comparison: ~115k more
  verifier gas (docs/MODELS.md);
- output visibility ``public``: the outputs are instances the market reads;
- parameter visibility ``fixed``: the weights are fixed columns, so they are committed in the
  verifying key and a verifier accepts proofs of these weights only;
- one inner column, a 1024-base three-leg decomposition and scale 7: the smallest circuits
  (fewest columns, fewest rows) that keep the circuit's argmax equal to the float model's
  on the calibration data; see docs/MODELS.md for the measurements behind each choice.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
from eth_utils import keccak
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from tender.models import _runtime
from tender.models._bundle import CARD_FILE, Bundle, InstanceLayout, ModelCard, sha256_file
from tender.models._commit import kzg_points
from tender.models._commit import proof_bytes as _proof_bytes
from tender.models._errors import BundleError, SrsError
from tender.models._ezkl import captured_output, dev_srs, ezkl, srs_logrows, write_evm_verifier
from tender.models._felt import dequantize, felt_from_hex, poseidon, quantize
from tender.models._solc import compile_solidity
from tender.paths import cache_dir as default_cache_dir

Visibility = Literal["polycommit", "hashed", "public"]

#: What :func:`build` uses unless told otherwise (and what the sample models and devnet use).
DEFAULT_INPUT_VISIBILITY: Visibility = "polycommit"
VISIBILITIES: tuple[Visibility, ...] = ("polycommit", "hashed", "public")

#: The EZKL recipe; changing it changes every cache key.
RECIPE: dict[str, Any] = {
    "recipe": 1,
    "output_visibility": "public",
    "param_visibility": "fixed",
    "num_inner_cols": 1,
    "decomp_base": 1024,
    "decomp_legs": 3,
    "scales": [7],
    "target": "accuracy",
}

#: Calibration samples checked circuit-vs-onnxruntime at build time.
AGREEMENT_SAMPLES = 16

PROOF_MODES = ("zk", "optimistic")


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _model_name(onnx_path: Path) -> str:
    return onnx_path.parent.name if onnx_path.stem == "model" else onnx_path.stem


def build_key(
    onnx_bytes: bytes, calibration_bytes: bytes, srs_choice: str, *, name: str, input_visibility: str
) -> str:
    """The cache key of a bundle: hashes of everything that changes what gets built."""
    material = {
        "onnx": _sha256_bytes(onnx_bytes),
        "calibration": _sha256_bytes(calibration_bytes),
        "srs": srs_choice,
        "ezkl": ezkl.__version__,
        "name": name,
        "input_visibility": input_visibility,
        **RECIPE,
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


@contextlib.contextmanager
def _steps(enabled: bool, title: str) -> Iterator[Any]:
    """A rich progress display on the original stderr (EZKL's own output goes to build.log)."""
    if not enabled:

        @contextlib.contextmanager
        def silent(_: str) -> Iterator[None]:
            yield

        yield silent
        return
    stream = os.fdopen(os.dup(2), "w")
    console = Console(file=stream, stderr=True)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    try:
        with Progress(*columns, console=console, transient=False) as progress:

            @contextlib.contextmanager
            def step(description: str) -> Iterator[None]:
                task = progress.add_task(f"{title}: {description}", total=1)
                yield
                progress.update(task, completed=1)

            yield step
    finally:
        stream.close()


def build(
    onnx_path: str | Path,
    calibration_path: str | Path,
    *,
    srs: Literal["dev"] | str | Path = "dev",
    cache_dir: str | Path | None = None,
    name: str | None = None,
    input_visibility: Visibility = DEFAULT_INPUT_VISIBILITY,
    progress: bool = False,
) -> Bundle:
    """Build (or reuse) the bundle for one ONNX model.

    Args:
        onnx_path: the model.
        calibration_path: EZKL input JSON, ``{"input_data": [[x0, x1, ...]]}``; several
            samples may be concatenated into the one flat list.
        srs: ``"dev"`` to generate an SRS locally (insecure, development only), or a public
            Powers-of-Tau SRS in halo2 KZG format: one file with ``k >= logrows`` (best
            ``k == logrows``), or a folder of ``kzg{k}.srs`` files (the one matching is used).
        cache_dir: where bundles live (default: ``tender.paths.cache_dir()``).
        name: the model's name (default: the ONNX file's folder or stem).
        input_visibility: ``"polycommit"`` (default: the input's KZG commitment is the proof's
            first point), ``"hashed"`` (a Poseidon hash of the input as instance 0), both
            accepted by the market, or ``"public"`` (the input as instances: comparison only).
        progress: show a rich progress display on stderr.

    Returns:
        The bundle. A second call with the same inputs returns the cached one at once.

    Raises:
        BundleError: an input is missing or malformed, or EZKL failed.
        SrsError: the SRS file is missing, unreadable or too small.
        SolcError: the verifier did not compile.

    Example::

        bundle = build("models/mlp/model.onnx", "models/mlp/calibration.json")
        print(bundle.card.layout)
    """
    onnx_path, calibration_path = Path(onnx_path), Path(calibration_path)
    for path in (onnx_path, calibration_path):
        if not path.is_file():
            raise BundleError(f"{path} does not exist")
    if input_visibility not in VISIBILITIES:
        raise BundleError(
            f"input_visibility must be one of {', '.join(VISIBILITIES)}, not {input_visibility!r}"
        )
    name = name or _model_name(onnx_path)
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
    key = build_key(onnx_bytes, calibration_bytes, srs_choice, name=name, input_visibility=input_visibility)
    final = root / "models" / f"{name}-{key[:16]}"
    if (final / CARD_FILE).is_file():
        return Bundle.load(final)

    work = final.with_name(f".{final.name}.{os.getpid()}.partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        with _steps(progress, name) as step:
            _build_into(
                work, onnx_path, calibration_path, srs_file, root, step,
                name=name, key=key, input_visibility=input_visibility,
            )  # fmt: skip
        try:
            os.replace(work, final)
        except OSError:
            if not (final / CARD_FILE).is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Bundle.load(final)


def _build_into(
    work: Path,
    onnx_src: Path,
    calibration_src: Path,
    srs_file: Path | None,
    root: Path,
    step: Any,
    *,
    name: str,
    key: str,
    input_visibility: str,
) -> None:
    shutil.copyfile(onnx_src, work / "model.onnx")
    shutil.copyfile(calibration_src, work / "calibration.json")
    partial = Bundle(work, None)  # type: ignore[arg-type]  # paths only until the card exists
    log = work / "build.log"
    timings: dict[str, float] = {}

    def timed(label: str, started: float) -> None:
        timings[label] = round(time.perf_counter() - started, 3)

    try:
        with step("settings and calibration"):
            started = time.perf_counter()
            run_args = ezkl.PyRunArgs()
            run_args.input_visibility = input_visibility
            run_args.output_visibility = RECIPE["output_visibility"]
            run_args.param_visibility = RECIPE["param_visibility"]
            run_args.num_inner_cols = RECIPE["num_inner_cols"]
            run_args.decomp_base = RECIPE["decomp_base"]
            run_args.decomp_legs = RECIPE["decomp_legs"]
            with captured_output(log):
                ezkl.gen_settings(str(partial.onnx), str(partial.settings), py_run_args=run_args)
                ezkl.calibrate_settings(
                    str(partial.calibration), str(partial.onnx), str(partial.settings),
                    RECIPE["target"], scales=RECIPE["scales"],
                )  # fmt: skip
            timed("settings_s", started)
        with step("compile circuit"):
            started = time.perf_counter()
            with captured_output(log):
                ezkl.compile_circuit(str(partial.onnx), str(partial.compiled), str(partial.settings))
            timed("compile_s", started)
        settings = json.loads(partial.settings.read_text())
        logrows = int(settings["run_args"]["logrows"])

        with step(f"SRS (k={logrows})"):
            started = time.perf_counter()
            if srs_file is None:
                shutil.copyfile(dev_srs(root / "srs", logrows), partial.srs)
            else:
                shutil.copyfile(pick_srs(srs_file, logrows), partial.srs)
            timed("srs_s", started)
        with step("keys (setup)"):
            started = time.perf_counter()
            with captured_output(log):
                ezkl.setup(str(partial.compiled), str(partial.vk), str(partial.pk), srs_path=str(partial.srs))
            timed("setup_s", started)
        with step("EVM verifier (render + solc)"):
            started = time.perf_counter()
            with captured_output(log):
                write_evm_verifier(
                    partial.vk, partial.settings, partial.srs, partial.verifier_source, work / "abi.json"
                )
            artefact = compile_solidity(partial.verifier_source, "Halo2Verifier")
            partial.verifier_artifact.write_text(json.dumps(artefact, indent=1))
            timed("verifier_s", started)
    except RuntimeError as exc:
        raise BundleError(f"EZKL failed building {name}: {exc} (see {log})") from exc

    input_shape = tuple(int(d) for d in ezkl_input_shape(partial.onnx))
    output_shapes = settings["model_instance_shapes"]
    output_shape = tuple(int(d) for d in output_shapes[-1])
    output_length = int(np.prod(output_shape))
    # instances before the outputs: the Poseidon hash (hashed), the input (public), none (polycommit)
    before = {"hashed": 1, "public": int(np.prod(input_shape)), "polycommit": 0}[input_visibility]
    layout = InstanceLayout(
        commitment_index=0 if input_visibility == "hashed" else -1,
        output_offset=before,
        output_length=output_length,
        instance_count=before + output_length,
    )
    input_scale = int(settings["model_input_scales"][0])
    output_scale = int(settings["model_output_scales"][0])

    with step("self-check (witness, prove, verify)"):
        started = time.perf_counter()
        agreement, max_error = _check(
            partial, calibration_src, input_shape, input_scale, output_scale, layout,
            visibility=input_visibility, log=log,
        )  # fmt: skip
        timed("check_s", started)

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
        accuracy=_accuracy(onnx_src),
        circuit_agreement=agreement,
        max_abs_error=max_error,
        proof_modes=PROOF_MODES,
        ezkl_version=ezkl.__version__,
        build_key=key,
        params=_params(partial.onnx),
        run_args=settings["run_args"],
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
) -> tuple[float, float]:
    """Prove one calibration sample and compare the circuit to onnxruntime on a few more.

    The proof must carry the input commitment where the layout says: the Poseidon hash at
    ``commitment_index`` (hashed), or the KZG commitment of the quantized input as its first
    point, the input fitting one column (polycommit: the market binds that one point only).

    Returns:
        (share of samples whose argmax agrees, largest absolute output error).
    """
    size = int(np.prod(input_shape))
    samples = _calibration_samples(calibration, size)[:AGREEMENT_SAMPLES]
    reference = _runtime.run(bundle.onnx, samples.reshape((-1, *input_shape[1:])))
    reference = reference.reshape(len(samples), -1)
    agree = 0
    max_error = 0.0
    scratch = bundle.path / "check"
    scratch.mkdir()
    for i, sample in enumerate(samples):
        values = [float(v) for v in sample]
        (scratch / "input.json").write_text(json.dumps({"input_data": [values]}))
        keys = (str(bundle.vk), str(bundle.srs)) if visibility == "polycommit" else (None, None)
        witness = ezkl.gen_witness(
            str(scratch / "input.json"), str(bundle.compiled), str(scratch / "witness.json"), *keys
        )
        outputs = [felt_from_hex(f) for f in witness["outputs"][0]]
        circuit = np.asarray([dequantize(v, output_scale) for v in outputs])
        agree += int(np.argmax(circuit) == np.argmax(reference[i]))
        max_error = max(max_error, float(np.max(np.abs(circuit - reference[i]))))
        if i == 0:
            with captured_output(log):
                proof = ezkl.prove(
                    str(scratch / "witness.json"), str(bundle.compiled), str(bundle.pk),
                    str(scratch / "proof.json"), srs_path=str(bundle.srs),
                )  # fmt: skip
                ok = ezkl.verify(
                    str(scratch / "proof.json"),
                    str(bundle.settings),
                    str(bundle.vk),
                    srs_path=str(bundle.srs),
                )
            instances = [felt_from_hex(f) for f in proof["instances"][0]]
            if not ok or len(instances) != layout.instance_count:
                raise BundleError(f"self-check failed: verified={ok}, {len(instances)} instances")
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
    return agree / len(samples), round(max_error, 6)
