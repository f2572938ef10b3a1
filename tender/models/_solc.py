"""Compile Solidity through the repository's ``scripts/solc`` shim (solc-js 0.8.28).

EZKL writes its Halo2 verifier as one Solidity file; :func:`compile_solidity` turns such a
file into ``{"abi", "bytecode", "deployed_bytecode"}`` with the optimizer on and the
``cancun`` EVM, through the standard-JSON interface.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tender.models._errors import SolcError
from tender.paths import ROOT

#: Settings every Tender verifier is compiled with (recorded in the compiled artefact).
SOLC_SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": "cancun",
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}},
}


def solc_path() -> Path:
    """The compiler: ``TENDER_SOLC`` if set, else ``scripts/solc``, else ``solc`` on the PATH."""
    override = os.environ.get("TENDER_SOLC")
    if override:
        return Path(override)
    shim = ROOT / "scripts" / "solc"
    if shim.exists():
        return shim
    found = shutil.which("solc")
    if not found:
        raise SolcError("no Solidity compiler: scripts/solc is missing and solc is not on the PATH")
    return Path(found)


def solc_version() -> str:
    """The compiler's version line (``0.8.28+commit...``)."""
    result = subprocess.run([str(solc_path()), "--version"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SolcError(f"solc --version failed: {result.stderr.strip()}")
    for line in result.stdout.splitlines():
        if line.startswith("Version:"):
            return line.split(":", 1)[1].strip()
    return result.stdout.strip()


def compile_solidity(source: Path, contract: str, *, timeout: float = 600.0) -> dict[str, Any]:
    """Compile one Solidity file and return one contract's artefact.

    Args:
        source: the ``.sol`` file (self-contained: no imports).
        contract: the contract's name in that file (EZKL's is ``Halo2Verifier``).
        timeout: seconds before the compiler is given up on.

    Returns:
        ``{"contract", "abi", "bytecode", "deployed_bytecode", "compiler", "settings"}``, the
        bytecodes as ``0x`` hex.

    Raises:
        SolcError: the compiler failed, reported an error, or the contract is missing.
    """
    standard_input = {
        "language": "Solidity",
        "sources": {source.name: {"content": source.read_text()}},
        "settings": SOLC_SETTINGS,
    }
    try:
        result = subprocess.run(
            [str(solc_path()), "--standard-json"],
            input=json.dumps(standard_input),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SolcError(f"solc could not run on {source}: {exc}") from exc
    if result.returncode != 0:
        raise SolcError(f"solc failed on {source}: {result.stderr.strip()[:2000]}")
    try:
        output = json.loads(result.stdout)
    except json.JSONDecodeError as exc:
        raise SolcError(f"solc wrote no JSON for {source}: {result.stdout[:500]}") from exc
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        shown = "\n".join(e.get("formattedMessage", e.get("message", "")) for e in errors)
        raise SolcError(f"{source} does not compile:\n{shown}")
    try:
        built = output["contracts"][source.name][contract]
    except KeyError as exc:
        raise SolcError(f"{source} has no contract {contract!r}") from exc
    return {
        "contract": contract,
        "abi": built["abi"],
        "bytecode": "0x" + built["evm"]["bytecode"]["object"],
        "deployed_bytecode": "0x" + built["evm"]["deployedBytecode"]["object"],
        "compiler": solc_version(),
        "settings": {k: v for k, v in SOLC_SETTINGS.items() if k != "outputSelection"},
    }
