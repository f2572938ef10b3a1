"""``tender model``: build bundles, prove, verify, register.

Private keys come from ``TENDER_PRIVATE_KEY`` (or the keystore named in the config), never
from a flag.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from tender.config import ChainSection
from tender.models._batch import MAX_BATCH
from tender.models._build import DEFAULT_INPUT_VISIBILITY, VISIBILITIES, build
from tender.models._bundle import INSECURE_SRS_WARNING, Bundle
from tender.models._prove import Proof, input_commitment, prove, verify
from tender.models._recipe import DEFAULT_MAX_LOGROWS, SCALES, TARGETS, TASKS
from tender.paths import cache_dir

_console = Console()
_errors = Console(stderr=True)

#: A file that must exist (an ONNX model, a JSON input, a proof).
_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)

#: The bundle folder the subcommand works on.
_bundle_argument = click.argument(
    "bundle_path", metavar="BUNDLE", type=click.Path(exists=True, path_type=Path)
)

#: The ModelRegistry to read or register in.
_registry_option = click.option(
    "--registry", "registry", default=None, help="ModelRegistry address (default: the deployment's)"
)

_INPUT_HELP = "JSON: a list, {'input': [...]}, or EZKL {'input_data': [[...]]}"


def _input_option(*, required: bool = True, help: str = _INPUT_HELP) -> Callable[[Any], Any]:
    """``--input``: the JSON file of one input (:func:`_read_input`)."""
    return click.option("--input", "input_path", required=required, default=None, type=_FILE, help=help)


def _read_input(path: Path) -> list[float]:
    """One input from JSON: a list, ``{"input": [...]}`` or EZKL's ``{"input_data": [[...]]}``."""
    data: Any = json.loads(path.read_text())
    if isinstance(data, dict):
        if "input_data" in data:
            data = data["input_data"][0]
        elif "input" in data:
            data = data["input"]
        elif "samples" in data:
            data = data["samples"][0]["input"]
    return [float(v) for v in _flat(data)]


def _flat(data: Any) -> list[Any]:
    if isinstance(data, list):
        return [v for item in data for v in _flat(item)]
    return [data]


def _warn_insecure(bundle: Bundle) -> None:
    if bundle.insecure_srs:
        _errors.print(f"[bold red]warning:[/] bundle {bundle.name} is {INSECURE_SRS_WARNING}")


@click.group("model")
def cli_group() -> None:
    """Model bundles: EZKL circuits, keys and verifiers for ONNX models."""


@cli_group.command("build")
@click.argument("onnx_path", metavar="MODEL.onnx", type=_FILE)
@click.option(
    "--calibration",
    "calibration",
    required=True,
    type=_FILE,
    help="EZKL input JSON with calibration samples",
)
@click.option(
    "--srs",
    default="dev",
    show_default=True,
    help="'dev' (generated locally: insecure, development only) or a Powers-of-Tau SRS file",
)
@click.option("--name", default=None, help="model name (default: the ONNX file's folder)")
@click.option(
    "--input-visibility",
    "visibility",
    type=click.Choice(VISIBILITIES),
    default=DEFAULT_INPUT_VISIBILITY,
    show_default=True,
    help="how proofs bind the input: KZG point (polycommit), Poseidon instance "
    "(hashed), or the input as instances (public: not for the market)",
)
@click.option(
    "--target",
    type=click.Choice(TARGETS),
    default=None,
    help="accuracy: the largest scale within --max-logrows (default); resources: the smallest circuit",
)
@click.option(
    "--scale",
    type=click.IntRange(0, 20),
    default=None,
    help=f"fixed input/param scale (values x 2^scale; default: chosen from {SCALES[0]}-{SCALES[-1]})",
)
@click.option(
    "--max-logrows",
    type=click.IntRange(6, 26),
    default=None,
    help=f"size budget: refuse circuits over 2^N rows (default {DEFAULT_MAX_LOGROWS})",
)
@click.option(
    "--task",
    type=click.Choice(TASKS),
    default=None,
    help="classify (argmax agreement on the card) or regress (default: classify when the model "
    "ends in a softmax)",
)
@click.option(
    "--batch",
    type=click.IntRange(1, MAX_BATCH),
    default=1,
    show_default=True,
    help="jobs per proof: one circuit over N inputs sharing the weights, each job's input "
    "committed by its own KZG point (polycommit); named <name>-batch<N>",
)
@click.option(
    "--progress/--no-progress", default=True, show_default=True, help="a line per build step on stderr"
)
def build_command(
    onnx_path: Path,
    calibration: Path,
    srs: str,
    name: str | None,
    visibility: str,
    target: str | None,
    scale: int | None,
    max_logrows: int | None,
    task: str | None,
    batch: int,
    progress: bool,
) -> None:
    """Build (or reuse from the cache) the bundle of MODEL.onnx and print its card.

    A recipe.json next to MODEL.onnx pins target, scale, max_logrows or task; options override it.
    """
    bundle = build(
        onnx_path,
        calibration,
        srs=srs,
        name=name,
        input_visibility=visibility,  # type: ignore[arg-type]
        target=target,  # type: ignore[arg-type]
        scale=scale,
        max_logrows=max_logrows,
        task=task,  # type: ignore[arg-type]
        batch=batch,
        progress=progress,
    )
    _console.print(bundle)
    _console.print(f"bundle: {bundle.path}")
    _warn_insecure(bundle)


@cli_group.command("show")
@_bundle_argument
@click.option("--json", "as_json", is_flag=True, help="print card.json")
def show_command(bundle_path: Path, as_json: bool) -> None:
    """Print a bundle's model card."""
    bundle = Bundle.load(bundle_path)
    if as_json:
        click.echo(json.dumps(bundle.card.to_dict(), indent=1))
    else:
        _console.print(bundle)


@cli_group.command("commit")
@_bundle_argument
@_input_option()
def commit_command(bundle_path: Path, input_path: Path) -> None:
    """Print the input commitment (the uint256 an intent carries) for an input."""
    click.echo(hex(input_commitment(Bundle.load(bundle_path), _read_input(input_path))))


@cli_group.command("prove")
@_bundle_argument
@_input_option()
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("proof.json"),
    show_default=True,
)
def prove_command(bundle_path: Path, input_path: Path, out: Path) -> None:
    """Prove one inference and write the proof JSON."""
    bundle = Bundle.load(bundle_path)
    _warn_insecure(bundle)
    proof = prove(bundle, _read_input(input_path))
    proof.save(out)
    table = Table(title=f"{bundle.name}: proved in {proof.prove_s:.2f} s")
    table.add_column("output", justify="right")
    table.add_column("value", justify="right")
    # the argmax is a classifier's answer; a regressor's outputs are all the answer
    best = (
        max(range(len(proof.output)), key=proof.output.__getitem__) if bundle.card.task != "regress" else -1
    )
    for i, value in enumerate(proof.output):
        table.add_row(str(i), f"[bold]{value:.4f}[/]" if i == best else f"{value:.4f}")
    _console.print(table)
    _console.print(f"proof: {out}")
    if proof.input_commitment is not None:
        _console.print(f"input commitment: {hex(proof.input_commitment)}")


@cli_group.command("verify")
@_bundle_argument
@click.option("--proof", "proof_path", required=True, type=_FILE)
@_input_option(required=False, help="also require the proof to be of this input (its commitment)")
def verify_command(bundle_path: Path, proof_path: Path, input_path: Path | None) -> None:
    """Verify a proof off-chain; exit code 1 when it is invalid.

    The proof must verify against the bundle's verifying key for its instances, and carry the
    input commitment its JSON states (polycommit: keccak256 of its first 64 bytes; hashed: the
    instance at the commitment index). With --input, that commitment must be the input's.
    """
    bundle = Bundle.load(bundle_path)
    _warn_insecure(bundle)
    proof = Proof.load(proof_path)
    if input_path is not None:
        commitment = input_commitment(bundle, _read_input(input_path))
        if proof.input_commitment is not None and proof.input_commitment != commitment:
            _console.print(f"[red]invalid[/]: the proof commits to another input than {input_path}")
            sys.exit(1)
        proof = replace(proof, input_commitment=commitment)
    if verify(bundle, proof):
        _console.print("[green]valid[/]")
    else:
        _console.print("[red]invalid[/]")
        sys.exit(1)


@cli_group.command("register")
@_bundle_argument
@click.option("--rpc", "rpc_url", required=True, help="JSON-RPC endpoint")
@_registry_option
@click.option(
    "--onnx",
    "onnx_path",
    default=None,
    type=_FILE,
    help="check this ONNX file against the card (default: the bundle's copy)",
)
@click.option("--audit-rate-bps", default=0, show_default=True, type=click.IntRange(0, 10_000))
@click.option("--allow-insecure-srs", is_flag=True, help="accept a dev-SRS bundle on a non-local chain")
def register_command(
    bundle_path: Path,
    rpc_url: str,
    registry: str | None,
    onnx_path: Path | None,
    audit_rate_bps: int,
    allow_insecure_srs: bool,
) -> None:
    """Deploy the bundle's verifier and register the model (key: TENDER_PRIVATE_KEY)."""
    from tender.chain import Deployment, connect
    from tender.models._register import register_model

    bundle = Bundle.load(bundle_path)
    _warn_insecure(bundle)
    chain = ChainSection(rpc_url=rpc_url)
    w3 = connect(rpc_url)
    registry = registry or Deployment.load(int(w3.eth.chain_id)).registry
    result = register_model(
        w3,
        chain.private_key(),
        registry,
        bundle,
        audit_rate_bps=audit_rate_bps,
        onnx_path=onnx_path,
        allow_insecure_srs=allow_insecure_srs,
    )
    done = f"tx {result.tx_hash}" if result.tx_hash else "already registered"
    _console.print(f"model {bundle.name}: id 0x{result.model_id.hex()}, verifier {result.verifier} ({done})")


@cli_group.command("list")
@click.option("--rpc", "rpc_url", default=None, help="list the models registered on this chain instead")
@_registry_option
@click.option(
    "--cache",
    "cache",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="bundle cache (default: the Tender cache)",
)
def list_command(rpc_url: str | None, registry: str | None, cache: Path | None) -> None:
    """List the bundles built on this machine, or (with --rpc) the models registered on chain."""
    if rpc_url is not None:
        _list_registered(rpc_url, registry, cache)
        return
    root = (cache or cache_dir()) / "models"
    table = Table(title=f"bundles in {root}")
    for column in (
        "name",
        "input",
        "logrows",
        "scale",
        "onnx sha256",
        "accuracy",
        "max error",
        "SRS",
        "path",
    ):
        table.add_column(column)
    for card, folder in _local_cards(root):
        srs = "[red]dev (insecure)[/]" if card.insecure_srs else "[green]file[/]"
        acc = "-" if card.accuracy is None else f"{card.accuracy:.2%}"
        error = "-" if card.max_abs_error is None else f"{card.max_abs_error:.2g}"
        table.add_row(
            card.name,
            card.input_visibility,
            str(card.logrows),
            str(card.input_scale),
            card.onnx_sha256[:16],
            acc,
            error,
            srs,
            str(folder),
        )
    _console.print(table)


def _local_cards(root: Path) -> list[tuple[Any, Path]]:
    cards = []
    for folder in sorted(root.glob("*")) if root.is_dir() else []:
        if folder.name.startswith(".") or not (folder / "card.json").is_file():
            continue
        cards.append((Bundle.load(folder).card, folder))
    return cards


def _list_registered(rpc_url: str, registry: str | None, cache: Path | None) -> None:
    from tender.chain import Deployment, connect
    from tender.chain._structs import INPUT_BINDINGS, INPUT_HASHED
    from tender.models._register import registered_models

    w3 = connect(rpc_url)
    block = 0
    if registry is None:
        deployment = Deployment.load(int(w3.eth.chain_id))
        registry, block = deployment.registry, deployment.block
    known = {card.onnx_sha256: card for card, _ in _local_cards((cache or cache_dir()) / "models")}
    table = Table(title=f"models in ModelRegistry {registry}")
    for column in (
        "model id",
        "name (local bundle)",
        "onnx sha256",
        "verifier",
        "input",
        "layout",
        "modes",
        "audit bps",
    ):
        table.add_column(column)
    for model_id, info in registered_models(w3, registry, from_block=block):
        card = known.get(info.onnx_sha256.hex())
        name = "-" if card is None else card.name + (" [red](dev SRS)[/]" if card.insecure_srs else "")
        binding = INPUT_BINDINGS.get(info.input_binding, f"unknown ({info.input_binding})")
        commitment = f"c@{info.commitment_index} " if info.input_binding == INPUT_HASHED else ""
        layout = f"{commitment}out@{info.output_offset}+{info.output_length} /{info.instance_count}"
        modes = "+".join(m for m, bit in (("zk", 1), ("optimistic", 2)) if info.proof_modes & bit)
        table.add_row(
            "0x" + model_id.hex()[:12],
            name,
            info.onnx_sha256.hex()[:16],
            info.verifier,
            binding,
            layout,
            modes,
            str(info.audit_rate_bps),
        )
    _console.print(table)
