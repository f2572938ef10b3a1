"""Contract build artefacts: ABI and bytecode from Foundry's ``contracts/out``.

An installed ``tender`` (a wheel, no checkout) carries the ABIs of :data:`TENDER_CONTRACTS` in
``tender/chain/abi`` (written by ``make contracts``, :func:`export_abis`): enough to talk to a
deployment; deploying contracts needs the checkout's ``contracts/out``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from tender.errors import ArtifactError
from tender.paths import ARTIFACTS

#: ABI-only artefacts shipped inside the package (``make contracts`` writes them).
PACKAGED_ABIS = Path(__file__).resolve().parent / "abi"

#: EIP-170: the most runtime code a contract may have on Ethereum and its L2s.
MAX_CODE_SIZE = 24_576

#: The contracts every Tender deployment holds; their errors and events make up the
#: combined ABI used to decode reverts and logs.
TENDER_CONTRACTS: tuple[str, ...] = (
    "TestToken",
    "ModelRegistry",
    "Staking",
    "ReverseAuctionMarket",
    "DutchAuctionMarket",
    "QuoteMarket",
    "TokenMarket",
)
#: The contracts whose ABIs an installed ``tender`` carries: those and the SDK's on-chain agent.
PACKAGED_CONTRACTS: tuple[str, ...] = (*TENDER_CONTRACTS, "TenderAgent")


@dataclass(frozen=True, slots=True)
class Artifact:
    """A compiled contract: its ABI and creation bytecode.

    Attributes:
        name: the contract name (``"Staking"``).
        abi: the JSON ABI entries.
        bytecode: creation code, ready to deploy (libraries already linked).
        path: the artefact file it was read from.
        runtime: the deployed (runtime) code; EIP-170 caps it at 24,576 bytes.
    """

    name: str
    abi: tuple[dict[str, Any], ...]
    bytecode: bytes
    path: Path
    runtime: bytes = b""

    def entries(self, kind: str) -> list[dict[str, Any]]:
        """The ABI entries of one kind (``"function"``, ``"event"``, ``"error"``)."""
        return [entry for entry in self.abi if entry.get("type") == kind]


def _find(name: str, root: Path, *, packaged: bool = False) -> Path:
    direct = root / f"{name}.sol" / f"{name}.json"
    if direct.is_file():
        return direct
    matches = sorted(root.glob(f"*/{name}.json"))
    if matches:
        return matches[0]
    if packaged and (PACKAGED_ABIS / f"{name}.json").is_file():
        return PACKAGED_ABIS / f"{name}.json"
    if packaged and not root.is_dir():  # an installed tender, built without `make contracts`
        raise ArtifactError(
            f"this tender has no ABI for contract {name!r} ({PACKAGED_ABIS} is empty): install it "
            "from a checkout after `make contracts`, which writes the ABIs the package ships"
        )
    raise ArtifactError(
        f"no build artefact for contract {name!r} under {root}: run `make contracts` "
        "(or `cd contracts && forge build`)"
    )


@cache
def _load(name: str, path: Path, mtime_key: float) -> Artifact:
    del mtime_key  # part of the cache key only: a rebuilt artefact is read again
    try:
        data = json.loads(path.read_text())
        abi = tuple(data["abi"])
        code = data.get("bytecode", "")  # absent from a packaged ABI
        hex_code = code["object"] if isinstance(code, dict) else str(code)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"unreadable artefact {path}: {exc}; run `make contracts`") from exc
    if isinstance(code, dict) and code.get("linkReferences"):
        raise ArtifactError(f"{name} needs linked libraries, which Tender does not deploy separately")
    deployed = data.get("deployedBytecode", {})
    hex_runtime = deployed.get("object", "") if isinstance(deployed, dict) else str(deployed)
    try:
        bytecode = bytes.fromhex(hex_code.removeprefix("0x"))
        runtime = bytes.fromhex(hex_runtime.removeprefix("0x"))
    except ValueError as exc:
        raise ArtifactError(f"{path}: bytecode is not hex: {exc}") from exc
    return Artifact(name=name, abi=abi, bytecode=bytecode, path=path, runtime=runtime)


def load_artifact(name: str, *, artifacts_dir: Path | None = None) -> Artifact:
    """The artefact of contract ``name`` (``contracts/out/<name>.sol/<name>.json``).

    Raises:
        ArtifactError: the artefact is missing (the message says to run ``make contracts``).
    """
    root = (artifacts_dir or ARTIFACTS).resolve()
    path = _find(name, root, packaged=artifacts_dir is None)
    return _load(name, path, path.stat().st_mtime)


def combined_abi(
    names: tuple[str, ...] = TENDER_CONTRACTS, *, artifacts_dir: Path | None = None
) -> list[dict[str, Any]]:
    """The error and event entries of several contracts, without duplicates."""
    seen: set[str] = set()
    out: list[dict[str, Any]] = []
    for name in names:
        for entry in load_artifact(name, artifacts_dir=artifacts_dir).abi:
            if entry.get("type") not in ("error", "event"):
                continue
            key = json.dumps(entry, sort_keys=True)
            if key not in seen:
                seen.add(key)
                out.append(entry)
    return out


def export_abis(dest: Path = PACKAGED_ABIS, *, artifacts_dir: Path | None = None) -> list[Path]:
    """Write the ABI of each of :data:`PACKAGED_CONTRACTS` to ``dest/<name>.json`` (what an
    installed ``tender`` reads, :data:`PACKAGED_ABIS`); ``make contracts`` runs it after
    ``forge build``. Returns the files written."""
    dest.mkdir(parents=True, exist_ok=True)
    root = (artifacts_dir or ARTIFACTS).resolve()
    written = []
    for name in PACKAGED_CONTRACTS:
        abi = list(load_artifact(name, artifacts_dir=root).abi)
        path = dest / f"{name}.json"
        path.write_text(json.dumps({"abi": abi}, indent=1, sort_keys=True) + "\n")
        written.append(path)
    return written
