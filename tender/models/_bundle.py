"""Model bundles on disk and their cards.

A bundle is one folder holding everything needed to prove and verify one model::

    card.json           the model card (:class:`ModelCard`): hashes, shapes, scales, layout
    model.onnx          the exact network the card names
    calibration.json    the data EZKL calibrated on
    settings.json       EZKL circuit settings
    network.ezkl        the compiled circuit
    kzg.srs             the structured reference string the keys were made with
    vk.key, pk.key      verifying and proving keys
    Verifier.sol        EZKL's Halo2 verifier; ``verifier.json`` is its compiled artefact
    build.log           what EZKL printed while building

:class:`Bundle` is a frozen dataclass of plain values (a path and the card), so it pickles
into process pools.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, overload

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from tender.chain._structs import INPUT_HASHED, INPUT_POLYCOMMIT, market_instances
from tender.models._errors import BundleError

#: Shown with every bundle built on the locally generated SRS.
INSECURE_SRS_WARNING = "insecure, development only: the SRS was generated locally (--srs dev)"

#: Proof-mode bits, as the registry stores them.
PROOF_MODE_BITS = {"zk": 1, "optimistic": 2}

CARD_FILE = "card.json"

#: Input visibility (EZKL) -> ``ModelInfo.inputBinding`` (the registry); ``public`` has none.
INPUT_BINDINGS = {"hashed": INPUT_HASHED, "polycommit": INPUT_POLYCOMMIT}


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class InstanceLayout:
    """Where things sit in the proof's public instance vector.

    Attributes:
        commitment_index: index of the Poseidon commitment to the input (hashed inputs); -1
            when the input has no instance (``polycommit``: its commitment is the proof's first
            point; ``public``: the input is the instances before the outputs).
        output_offset: index of the first output element.
        output_length: number of output elements.
        instance_count: length of the whole vector.
    """

    commitment_index: int
    output_offset: int
    output_length: int
    instance_count: int


@dataclass(frozen=True)
class ModelCard:
    """What a bundle proves, in numbers anyone can check (written as ``card.json``).

    Attributes:
        name: short model name (``"mlp"``).
        onnx_sha256: sha256 of the ONNX file; the registry stores it.
        input_shape: the circuit's input shape (batch 1).
        output_shape: the circuit's output shape.
        input_scale: fixed-point scale of the input (value = felt / 2**scale).
        output_scale: fixed-point scale of the outputs.
        input_visibility: ``"polycommit"`` (KZG commitment of the input column, the proof's
            first point), ``"hashed"`` (Poseidon hash as an instance) or ``"public"``.
        logrows: log2 of the circuit's rows.
        layout: the instance layout.
        settings_sha256: sha256 of ``settings.json``; the registry stores it.
        vk_sha256: sha256 of the verifying key.
        verifier_bytecode_sha256: sha256 of the verifier's creation bytecode.
        verifier_runtime_keccak256: keccak256 of its runtime code (what ``EXTCODEHASH`` gives).
        srs_sha256: sha256 of the SRS file the keys were made with.
        insecure_srs: true when that SRS was generated locally (development only).
        accuracy: held-out accuracy of the float model, from the model's ``meta.json``.
        circuit_agreement: share of calibration samples whose circuit argmax equals
            onnxruntime's (classifiers only; ``None`` for regressors).
        max_abs_error: largest absolute output difference circuit vs onnxruntime on them.
        proof_modes: proof modes the model may be bought in (``"zk"``, ``"optimistic"``).
        ezkl_version: the EZKL that built the bundle.
        build_key: the cache key the bundle was built under.
        params: parameter count of the network.
        run_args: the EZKL run arguments after calibration.
        max_rel_error: ``max_abs_error`` over the largest absolute onnxruntime output on the
            same samples (``None`` on cards built before it was measured).
        task: ``"classify"`` or ``"regress"`` (decides whether agreement is measured).
        output_shapes: each output's shape when the model has several (their values are
            concatenated, in order, in the instances); ``None`` for one output.
        recipe: how the circuit was sized: target, chosen scale, size budget, rebase multiplier.
        batch: jobs per proof (``build(..., batch=N)``); for ``N > 1`` the shapes, scales and
            ``layout.output_length`` are one job's, ``layout.instance_count`` the whole batch's,
            and job ``i`` sits in slot ``i`` (:meth:`batch_layout`).
        job_onnx_sha256: sha256 of one job's model (``job.onnx``) in a batch bundle, whose
            ``onnx_sha256`` is the batched graph the circuit was compiled from.
    """

    name: str
    onnx_sha256: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    input_scale: int
    output_scale: int
    input_visibility: str
    logrows: int
    layout: InstanceLayout
    settings_sha256: str
    vk_sha256: str
    verifier_bytecode_sha256: str
    verifier_runtime_keccak256: str
    srs_sha256: str
    insecure_srs: bool
    accuracy: float | None
    circuit_agreement: float | None
    max_abs_error: float | None
    proof_modes: tuple[str, ...]
    ezkl_version: str
    build_key: str
    params: int
    run_args: dict[str, Any] = field(default_factory=dict)
    max_rel_error: float | None = None
    task: str | None = None
    output_shapes: tuple[tuple[int, ...], ...] | None = None
    recipe: dict[str, Any] | None = None
    batch: int = 1
    job_onnx_sha256: str | None = None

    @property
    def input_size(self) -> int:
        """Number of input values."""
        size = 1
        for dim in self.input_shape:
            size *= dim
        return size

    @property
    def input_binding(self) -> int | None:
        """``ModelInfo.inputBinding`` for this model (``None``: public input, not for the market)."""
        return INPUT_BINDINGS.get(self.input_visibility)

    def registry_layout(self) -> dict[str, int]:
        """The layout fields of the registry record (``inputBinding``, ``commitmentIndex``...,
        ``batchSize``). A batch card's is its :meth:`batch_layout` as the registry records it
        (job ``i``'s commitment at ``commitmentIndex + i`` or in the proof's point ``i``, its
        outputs at ``outputOffset + outputLength*i``): settled by ``QuoteMarket.deliverBatch``.

        Raises:
            BundleError: a public-input model (the market binds hashed or polycommit inputs).
        """
        binding = self.input_binding
        if binding is None:
            raise BundleError(
                f"model {self.name} has public inputs; the market needs a hashed or polycommit input"
            )
        layout = self.layout
        return {
            "inputBinding": binding,
            "commitmentIndex": layout.commitment_index if binding == INPUT_HASHED else 0,
            "outputOffset": layout.output_offset,
            "outputLength": layout.output_length,
            "instanceCount": layout.instance_count,
            "batchSize": self.batch,
        }

    def market_instances(self, commitment: int, output: Sequence[int]) -> list[int]:
        """The public instances the market builds for a delivery of ``output`` (field elements)
        under an intent committing to ``commitment``: what a proof must verify against.

        Raises:
            BundleError: a batch card (its instances hold every slot: ``market_batch_instances``).
        """
        if self.batch > 1:
            raise BundleError(
                f"model {self.name} proves {self.batch} jobs per proof; use market_batch_instances"
            )
        layout = self.registry_layout()
        if len(output) != self.layout.output_length:
            raise BundleError(
                f"output has {len(output)} elements, model {self.name} has {self.layout.output_length}"
            )
        return market_instances(
            input_binding=layout["inputBinding"],
            commitment_index=layout["commitmentIndex"],
            output_offset=layout["outputOffset"],
            instance_count=layout["instanceCount"],
            commitment=commitment,
            output=output,
        )

    def batch_layout(self) -> dict[str, int]:
        """Where each job of a (batch) proof sits, for a market that settles ``batchSize`` jobs
        with one proof: job ``i``'s input commitment is ``keccak256(proof[pointStride*i :
        pointStride*i + 64])`` (``inputBinding`` 1, polycommit) or ``instances[commitmentIndex +
        i]`` (``inputBinding`` 0, hashed), its outputs are ``instances[outputOffset +
        outputStride*i : ... + outputLength]``; the proof has ``instanceCount`` instances in all."""
        layout = self.layout
        hashed = self.input_visibility == "hashed"
        return {
            "batchSize": self.batch,
            "inputBinding": INPUT_HASHED if hashed else INPUT_POLYCOMMIT,
            "pointStride": 0 if hashed else 64,
            "commitmentIndex": layout.commitment_index if hashed else 0,
            "outputOffset": layout.output_offset,
            "outputLength": layout.output_length,
            "outputStride": layout.output_length,
            "instanceCount": layout.instance_count,
        }

    @property
    def proof_modes_mask(self) -> int:
        """The proof modes as the registry's bitmask (1 = zk, 2 = optimistic)."""
        mask = 0
        for mode in self.proof_modes:
            mask |= PROOF_MODE_BITS[mode]
        return mask

    def to_dict(self) -> dict[str, Any]:
        """The card as JSON-ready data."""
        data = asdict(self)
        data["input_shape"] = list(self.input_shape)
        data["output_shape"] = list(self.output_shape)
        data["proof_modes"] = list(self.proof_modes)
        if self.output_shapes is not None:
            data["output_shapes"] = [list(shape) for shape in self.output_shapes]
        if self.batch == 1:  # single-job cards read as they always did
            del data["batch"], data["job_onnx_sha256"]
        if self.insecure_srs:
            data["warning"] = INSECURE_SRS_WARNING
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        """Read a card written by :meth:`to_dict`."""
        fields = dict(data)
        fields.pop("warning", None)
        try:
            fields["layout"] = InstanceLayout(**fields["layout"])
            fields["input_shape"] = tuple(fields["input_shape"])
            fields["output_shape"] = tuple(fields["output_shape"])
            fields["proof_modes"] = tuple(fields["proof_modes"])
            if fields.get("output_shapes") is not None:
                fields["output_shapes"] = tuple(tuple(shape) for shape in fields["output_shapes"])
            return cls(**fields)
        except (KeyError, TypeError) as exc:
            raise BundleError(f"model card is malformed: {exc}") from exc

    def _binding_text(self) -> str:
        if self.batch > 1 and self.input_visibility == "polycommit":
            return (
                "polycommit: job i's intent commitment = keccak256(proof[64i:64i+64]), its input's KZG point"
            )
        if self.batch > 1:
            return f"hashed: Poseidon(job i's input) = instance {self.layout.commitment_index} + i"
        if self.input_visibility == "polycommit":
            return "polycommit: intent commitment = keccak256(proof[0:64]), the input column's KZG point"
        if self.input_visibility == "hashed":
            return f"hashed: Poseidon(input) = instance {self.layout.commitment_index}"
        return f"public: the input is instances 0..{self.input_size - 1} (not for the market)"

    def _accuracy_text(self) -> str:
        """The float model's accuracy and the circuit's error against onnxruntime."""
        parts = []
        if self.accuracy is not None:
            parts.append(f"{self.accuracy:.2%} held-out (float)")
        if self.max_abs_error is not None:
            rel = "" if self.max_rel_error is None else f" ({self.max_rel_error:.2%} of the largest output)"
            parts.append(f"circuit vs onnxruntime: max error {self.max_abs_error:.3g}{rel}")
        if self.circuit_agreement is not None and self.task != "regress":
            parts.append(f"argmax agrees on {self.circuit_agreement:.0%} of calibration")
        if self.recipe:
            parts.append(f"scale {self.recipe.get('scale')} ({self.recipe.get('target')})")
        return ", ".join(parts) or "-"

    def __rich__(self) -> Panel:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        shapes = f"out {list(self.output_shape)}"
        if self.output_shapes is not None:
            shapes = "outs " + " + ".join(str(list(shape)) for shape in self.output_shapes)
        rows = [
            ("onnx sha256", self.onnx_sha256),
            (
                "shapes",
                f"in {list(self.input_shape)} (scale {self.input_scale}) -> "
                f"{shapes} (scale {self.output_scale})",
            ),
            ("params", f"{self.params:,}"),
            ("circuit", f"2^{self.logrows} rows, input {self.input_visibility}, ezkl {self.ezkl_version}"),
            ("input binding", self._binding_text()),
            (
                "instances",
                f"outputs @{self.layout.output_offset}..+{self.layout.output_length}, "
                f"{self.layout.instance_count} in all",
            ),
            *(
                [
                    (
                        "batch",
                        f"{self.batch} jobs per proof: job i's input "
                        + (
                            "hash instance i"
                            if self.input_visibility == "hashed"
                            else "point proof[64i:64i+64]"
                        )
                        + f", outputs @{self.layout.output_offset}+{self.layout.output_length}i"
                        f"..+{self.layout.output_length}",
                    )
                ]
                if self.batch > 1
                else []
            ),
            ("accuracy", self._accuracy_text()),
            ("settings sha256", self.settings_sha256),
            ("vk sha256", self.vk_sha256),
            ("verifier keccak", self.verifier_runtime_keccak256),
            ("proof modes", ", ".join(self.proof_modes)),
        ]
        for key, value in rows:
            table.add_row(key, value)
        parts: list[Any] = [table]
        if self.insecure_srs:
            parts.append(Text(f"SRS: {INSECURE_SRS_WARNING}", style="bold red"))
        else:
            parts.append(Text(f"SRS: {self.srs_sha256}", style="green"))
        return Panel(
            Group(*parts), title=f"model {self.name}", border_style="red" if self.insecure_srs else "cyan"
        )


class BundleFile:
    """A file of a bundle's folder, by name: ``bundle.vk`` is ``bundle.path / "vk.key"``."""

    def __init__(self, filename: str) -> None:
        self.filename = filename

    @overload
    def __get__(self, bundle: None, owner: type[Any]) -> BundleFile: ...

    @overload
    def __get__(self, bundle: Bundle, owner: type[Any]) -> Path: ...

    def __get__(self, bundle: Bundle | None, owner: type[Any]) -> Path | BundleFile:
        return self if bundle is None else bundle.path / self.filename


@dataclass(frozen=True)
class Bundle:
    """A built model bundle: its folder and its card.

    Example::

        bundle = Bundle.load(".cache/tender/models/mlp-1a2b3c4d5e6f7a8b")
        bundle.card.layout.instance_count
    """

    path: Path
    card: ModelCard

    @classmethod
    def load(cls, path: str | Path) -> Bundle:
        """Open a bundle folder (or its ``card.json``).

        Raises:
            BundleError: the folder or one of its files is missing, or the card is malformed.
        """
        folder = Path(path)
        if folder.name == CARD_FILE:
            folder = folder.parent
        card_path = folder / CARD_FILE
        if not card_path.is_file():
            raise BundleError(f"{folder} is not a model bundle (no {CARD_FILE})")
        try:
            card = ModelCard.from_dict(json.loads(card_path.read_text()))
        except json.JSONDecodeError as exc:
            raise BundleError(f"{card_path} is not JSON: {exc}") from exc
        bundle = cls(folder.resolve(), card)
        missing = [p.name for p in bundle.files() if not p.is_file()]
        if missing:
            raise BundleError(f"bundle {folder} is incomplete: missing {', '.join(missing)}")
        return bundle

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def insecure_srs(self) -> bool:
        return self.card.insecure_srs

    onnx = BundleFile("model.onnx")
    calibration = BundleFile("calibration.json")
    settings = BundleFile("settings.json")
    compiled = BundleFile("network.ezkl")
    srs = BundleFile("kzg.srs")
    vk = BundleFile("vk.key")
    pk = BundleFile("pk.key")
    verifier_source = BundleFile("Verifier.sol")
    verifier_artifact = BundleFile("verifier.json")

    @property
    def job_onnx(self) -> Path:
        """One job's model: ``model.onnx`` itself, or ``job.onnx`` in a batch bundle."""
        return self.path / "job.onnx" if self.card is not None and self.card.batch > 1 else self.onnx

    def files(self) -> list[Path]:
        """Every file a complete bundle holds."""
        files = [
            self.onnx,
            self.calibration,
            self.settings,
            self.compiled,
            self.srs,
            self.vk,
            self.pk,
            self.verifier_source,
            self.verifier_artifact,
        ]
        return files if self.job_onnx == self.onnx else [*files, self.job_onnx]

    def verifier(self) -> dict[str, Any]:
        """The compiled verifier: ``{"abi", "bytecode", "deployed_bytecode", ...}``."""
        return dict(json.loads(self.verifier_artifact.read_text()))

    def __rich__(self) -> Panel:
        return self.card.__rich__()
