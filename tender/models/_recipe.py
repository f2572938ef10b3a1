"""How a circuit is sized: the recipe (scale, calibration target, size budget, task) and the
calibration that picks a scale within the budget or refuses the model up front.

EZKL represents every value as ``round(x * 2**scale)``. A larger scale means smaller rounding
errors but larger integers, so larger lookup tables for nonlinearities (Tanh, Sigmoid, Exp:
one row per possible input) and so more rows: ``logrows`` (the circuit has ``2**logrows``
rows), which sets the SRS, the proving key, setup and proving time. Tender calibrates one
candidate scale at a time (each takes a fraction of a second to a few seconds: EZKL runs the
calibration data through the graph, no keys) and keeps:

- target ``accuracy`` (the default): the largest scale of :data:`SCALES` whose circuit fits
  ``max_logrows`` (the smallest scale is tried first: if it does not fit, nothing does, and the
  refusal comes after one calibration; then from the largest down);
- target ``resources``: the smallest circuit, and at that size the largest scale;
- ``scale=N``: that scale, if it fits.

If nothing fits, :class:`CircuitTooLarge` says so in one line before any key is made.

Rescaling after every multiplication (``scale_rebase_multiplier`` 1) keeps lookup inputs near
``2**scale``: EZKL's calibration otherwise prefers deferring it (multiplier 10), which let the
products of an LSTM's gates reach millions and its Tanh/Sigmoid tables 2^22 rows.

A model folder may pin its recipe in ``recipe.json`` next to ``model.onnx`` (the committed
sample models pin scale 7 and EZKL's own rebase candidates, the recipe their bundles, model
ids and verifier gas figures were measured with); explicit options override it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal, cast

from tender.models._errors import BundleError, CircuitTooLarge, UnsupportedModel
from tender.models._ezkl import captured_output, ezkl

Target = Literal["accuracy", "resources"]
Task = Literal["classify", "regress"]
TARGETS: tuple[Target, ...] = ("accuracy", "resources")
TASKS: tuple[Task, ...] = ("classify", "regress")

#: Candidate scales (EZKL's default calibration tops out at 13 too).
SCALES: tuple[int, ...] = tuple(range(7, 14))

#: The default size budget: 2**15 rows, where EZKL's own defaults land for the small models
#: measured (docs/MODELS.md): proving key ~0.2 GB, proofs in seconds to tens of seconds on 2
#: cores. Each step up doubles setup, proving time and key size.
DEFAULT_MAX_LOGROWS = 15

RECIPE_FILE = "recipe.json"

#: The run arguments every Tender circuit shares (see tender/models/_build.py).
RUN_ARGS: dict[str, Any] = {
    "output_visibility": "public",
    "param_visibility": "fixed",
    "num_inner_cols": 1,
    "decomp_base": 1024,
    "decomp_legs": 3,
}

#: The recipe of the first Tender bundles (scale 7, EZKL's rebase candidates); the committed
#: sample models pin it, and a pinned build's cache key is the one it always had.
RECIPE: dict[str, Any] = {"recipe": 1, **RUN_ARGS, "scales": [7], "target": "accuracy"}

Report = Callable[[str], None]


def _ezkl_failure(exc: BaseException) -> bool:
    """An EZKL error or panic, as opposed to an interruption."""
    return not isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit))


@dataclass(frozen=True)
class Recipe:
    """How to size a model's circuit.

    Attributes:
        target: ``"accuracy"`` (largest scale within the budget) or ``"resources"`` (smallest
            circuit).
        scale: a fixed input/param scale, or ``None`` to let the target choose from
            :data:`SCALES`.
        max_logrows: the size budget: refuse circuits over ``2**max_logrows`` rows.
        scale_rebase_multiplier: rescale when a product's scale exceeds this multiple of the
            scale (1: after every multiplication); ``None``: EZKL's candidates (1, 2, 10),
            calibration picks (the pinned sample recipe).
        task: ``"classify"`` (argmax agreement goes on the card) or ``"regress"``; ``None``:
            decided from the model (a final Softmax, or a held-out accuracy in meta.json).

    Example::

        Recipe(target="resources")                    # smallest circuit
        Recipe(scale=10, max_logrows=15, task="regress")
    """

    target: Target = "accuracy"
    scale: int | None = None
    max_logrows: int = DEFAULT_MAX_LOGROWS
    scale_rebase_multiplier: int | None = 1
    task: Task | None = None

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise BundleError(f"target must be one of {', '.join(TARGETS)}, not {self.target!r}")
        if self.task is not None and self.task not in TASKS:
            raise BundleError(f"task must be one of {', '.join(TASKS)}, not {self.task!r}")
        if self.scale is not None and not 0 <= self.scale <= 20:
            raise BundleError(f"scale must be between 0 and 20, not {self.scale}")
        if not 6 <= self.max_logrows <= 26:
            raise BundleError(f"max_logrows must be between 6 and 26, not {self.max_logrows}")

    @classmethod
    def for_model(cls, onnx_path: Path, **overrides: Any) -> Recipe:
        """The recipe pinned next to the model (``recipe.json``), with ``overrides`` (options
        left ``None`` keep the pinned or default value).

        Raises:
            BundleError: ``recipe.json`` is malformed.
        """
        pinned: dict[str, Any] = {}
        path = onnx_path.parent / RECIPE_FILE
        if path.is_file():
            try:
                pinned = dict(json.loads(path.read_text()))
                recipe = cls(**pinned)
            except (TypeError, ValueError) as exc:
                raise BundleError(f"{path} is not a recipe ({', '.join(asdict(cls()))}): {exc}") from exc
        else:
            recipe = cls()
        return replace(recipe, **{k: v for k, v in overrides.items() if v is not None})

    @property
    def pinned_v1(self) -> bool:
        """Whether this is the first recipe (scale 7, EZKL's rebase candidates)."""
        return self.scale == 7 and self.scale_rebase_multiplier is None and self.task is None

    def key_material(self) -> dict[str, Any]:
        """What the recipe puts in the bundle's cache key (the first recipe: as it always did)."""
        if self.pinned_v1 and self.target == "accuracy":
            return dict(RECIPE)
        return {"recipe": 2, **RUN_ARGS, "scales": list(self.candidates()), **asdict(self)}

    def candidates(self) -> tuple[int, ...]:
        return (self.scale,) if self.scale is not None else SCALES


@dataclass(frozen=True)
class Calibrated:
    """The settings a calibration produced for one scale."""

    scale: int
    settings: dict[str, Any]

    @property
    def logrows(self) -> int:
        return int(self.settings["run_args"]["logrows"])

    def describe(self) -> str:
        lookups = sorted({name for entry in self.settings.get("required_lookups", []) for name in entry})
        low, high = self.settings["run_args"]["lookup_range"]
        parts = [f"logrows {self.logrows}", f"{self.settings.get('num_rows', '?')} rows of gates"]
        if lookups:
            parts.append(f"lookup range [{low:,}, {high:,}] for {'/'.join(lookups)}")
        return ", ".join(parts)


def _run_args(input_visibility: str) -> Any:
    run_args = ezkl.PyRunArgs()
    run_args.input_visibility = input_visibility
    for key, value in RUN_ARGS.items():
        setattr(run_args, key, value)
    return run_args


def calibrate(
    onnx: Path,
    calibration: Path,
    settings_path: Path,
    recipe: Recipe,
    *,
    name: str,
    input_visibility: str,
    log: Path,
    report: Report,
) -> Calibrated:
    """Choose the scale (see the module docstring), write its settings to ``settings_path``.

    Raises:
        UnsupportedModel: EZKL cannot turn the graph into a circuit (an operator or shape it
            does not support), or the outputs come at different scales.
        CircuitTooLarge: no candidate scale fits ``recipe.max_logrows``.
    """
    candidates = sorted(recipe.candidates())
    # accuracy: the smallest first (if it does not fit, nothing does), then from the largest down
    order = candidates[:1] + candidates[:0:-1] if recipe.target == "accuracy" else candidates
    tried: list[Calibrated] = []
    chosen: Calibrated | None = None
    for scale in order:
        started = time.perf_counter()
        result = _calibrate_one(onnx, calibration, settings_path, recipe, scale, input_visibility, log)
        tried.append(result)
        fits = result.logrows <= recipe.max_logrows
        report(
            f"calibration: scale {scale} -> {result.describe()} ({time.perf_counter() - started:.1f} s)"
            + ("" if fits else f": over --max-logrows {recipe.max_logrows}")
        )
        if recipe.target == "accuracy":
            if not fits and len(tried) == 1:
                break
            if fits and (len(tried) > 1 or len(order) == 1):
                chosen = result
                break
        elif chosen is None or result.logrows <= chosen.logrows:
            chosen = result  # ascending scales: the largest scale at the smallest size
        else:
            break
    if chosen is None and recipe.target == "accuracy" and tried[0].logrows <= recipe.max_logrows:
        chosen = tried[0]  # only the smallest scale fits
    if chosen is None or chosen.logrows > recipe.max_logrows:
        smallest = min(tried, key=lambda c: (c.logrows, -c.scale))
        option = "a smaller --scale or " if recipe.scale is not None else ""
        rebase = recipe.scale_rebase_multiplier
        hint = (
            "" if rebase == 1 else ', or "scale_rebase_multiplier": 1 in recipe.json (smaller lookup ranges)'
        )
        raise CircuitTooLarge(
            f"{name} needs 2^{smallest.logrows} rows at scale {smallest.scale} ({smallest.describe()}), "
            f"over the budget --max-logrows {recipe.max_logrows}: pass {option}--max-logrows "
            f"{smallest.logrows}{hint} (setup and proving time and key size double with each row doubling)"
        )
    scales = chosen.settings["model_output_scales"]
    if len(set(scales)) > 1:
        raise UnsupportedModel(
            f"{name} has {len(scales)} outputs at different scales {scales}; a bundle has one output "
            "scale: export the outputs concatenated into one tensor, or one model per output"
        )
    if chosen is not tried[-1]:  # the file holds the last scale tried
        settings_path.write_text(json.dumps(chosen.settings))
    return chosen


def _calibrate_one(
    onnx: Path,
    calibration: Path,
    settings_path: Path,
    recipe: Recipe,
    scale: int,
    input_visibility: str,
    log: Path,
) -> Calibrated:
    options: dict[str, Any] = {"scales": [scale]}
    if recipe.scale_rebase_multiplier is not None:
        options["scale_rebase_multiplier"] = [recipe.scale_rebase_multiplier]
    try:
        with captured_output(log):
            ezkl.gen_settings(str(onnx), str(settings_path), py_run_args=_run_args(input_visibility))
    except BaseException as exc:  # EZKL's Rust panics are BaseExceptions
        if not _ezkl_failure(exc):
            raise
        raise UnsupportedModel(f"EZKL cannot turn {onnx.name} into a circuit: {_first_line(exc)}") from exc
    try:
        with captured_output(log):
            ezkl.calibrate_settings(str(calibration), str(onnx), str(settings_path), recipe.target, **options)
    except BaseException as exc:
        if not _ezkl_failure(exc):
            raise
        raise UnsupportedModel(f"EZKL could not calibrate {onnx.name}: {_first_line(exc)}") from exc
    return Calibrated(scale, cast(dict[str, Any], json.loads(settings_path.read_text())))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def check_graph(onnx: Path, name: str) -> list[str]:
    """Refuse graphs a Tender circuit cannot carry, before EZKL runs; returns the output names.

    Raises:
        UnsupportedModel: not one float input, or an output that is not float (skl2onnx's
            int64 ``label``: drop it and keep ``probabilities``).
    """
    import onnx as onnx_lib

    try:
        model = onnx_lib.load(str(onnx))
    except Exception as exc:
        raise UnsupportedModel(f"{onnx} is not an ONNX model: {_first_line(exc)}") from exc
    graph = model.graph
    weights = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in weights]
    floats = {onnx_lib.TensorProto.FLOAT, onnx_lib.TensorProto.DOUBLE, onnx_lib.TensorProto.FLOAT16}
    if len(inputs) != 1:
        raise UnsupportedModel(
            f"{name} takes {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); an intent commits "
            "to one input tensor: concatenate them into one"
        )
    if inputs[0].type.tensor_type.elem_type not in floats:
        raise UnsupportedModel(f"{name}'s input {inputs[0].name} is not a float tensor")
    bad = [o.name for o in graph.output if o.type.tensor_type.elem_type not in floats]
    if bad:
        raise UnsupportedModel(
            f"{name}'s output {', '.join(bad)} is not a float tensor (a label or index output?); "
            "keep the float outputs only (onnx.utils.Extractor, or skl2onnx's probabilities)"
        )
    return [o.name for o in graph.output]


#: Operators that pass a tensor on unchanged in value (looked through to find a final softmax).
_PASS_THROUGH = ("Identity", "Cast", "Reshape", "Flatten", "Squeeze", "Unsqueeze")


def infer_task(onnx: Path, *, meta_accuracy: float | None) -> Task:
    """``classify`` when meta.json gives a held-out accuracy or the graph's only output comes
    from a Softmax/LogSoftmax (through Identity, Cast or reshapes); ``regress`` otherwise."""
    import onnx as onnx_lib

    if meta_accuracy is not None:
        return "classify"
    graph = onnx_lib.load(str(onnx)).graph
    if len(graph.output) != 1:
        return "regress"
    producers = {out: node for node in graph.node for out in node.output}
    node = producers.get(graph.output[0].name)
    while node is not None and node.op_type in _PASS_THROUGH:
        node = producers.get(node.input[0])
    return "classify" if node is not None and node.op_type in ("Softmax", "LogSoftmax") else "regress"
