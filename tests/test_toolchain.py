"""The pinned toolchain: one solc for forge and Ape, and Ape compiles every contract offline."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tender.paths import ARTIFACTS, CONTRACTS, ROOT


def _pinned_version() -> str:
    makefile = (ROOT / "Makefile").read_text()
    match = re.search(r"^SOLC_VERSION := (\S+)$", makefile, re.MULTILINE)
    assert match, "Makefile pins SOLC_VERSION"
    return match.group(1)


def _solidity_sources() -> list[Path]:
    return sorted((CONTRACTS / "src").rglob("*.sol"))


def test_solc_shim_answers_version_in_native_format() -> None:
    out = subprocess.run([ROOT / "scripts" / "solc", "--version"], capture_output=True, text=True, check=True)
    assert re.search(
        rf"^Version: {re.escape(_pinned_version())}\+commit\.[0-9a-f]+\.", out.stdout, re.MULTILINE
    )


def test_solc_shim_refuses_unsupported_modes() -> None:
    out = subprocess.run([ROOT / "scripts" / "solc", "--bin", "x.sol"], capture_output=True, text=True)
    assert out.returncode != 0
    assert "only --version and --standard-json" in out.stderr


def test_ape_config_pins_the_same_version() -> None:
    config = (ROOT / "ape-config.yaml").read_text()
    assert f"version: {_pinned_version()}" in config


def test_forge_artifacts_use_the_pinned_compiler() -> None:
    artifacts = [p for p in ARTIFACTS.rglob("*.json") if p.parent.name.endswith(".sol")]
    if not artifacts:
        pytest.skip("contracts not built (run `make contracts`)")
    sources = {p.name for p in _solidity_sources()}
    checked = 0
    for path in artifacts:
        if path.parent.name not in sources:
            continue
        metadata = json.loads(path.read_text()).get("metadata") or {}
        version = metadata.get("compiler", {}).get("version", "")
        assert version.startswith(_pinned_version()), f"{path} built with {version}"
        checked += 1
    assert checked > 0


@pytest.mark.slow
def test_ape_compiles_every_contract_offline(tmp_path: Path) -> None:
    """`ape compile` finds our shim through SOLCX_BINARY_PATH and never downloads a compiler."""
    shim_dir = tmp_path / "solcx"
    shim_dir.mkdir()
    (shim_dir / f"solc-v{_pinned_version()}").symlink_to(ROOT / "scripts" / "solc")
    env = dict(
        os.environ,
        SOLCX_BINARY_PATH=str(shim_dir),
        PATH=f"{ROOT / 'node_modules' / '.bin'}{os.pathsep}{os.environ['PATH']}",
        # any attempt to reach the network fails at once instead of hanging
        HTTP_PROXY="http://127.0.0.1:9",
        HTTPS_PROXY="http://127.0.0.1:9",
    )
    ape = ROOT / ".venv" / "bin" / "ape"
    proc = subprocess.run(
        [ape, "compile", "--force"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    manifest = json.loads((ROOT / ".build" / "__local__.json").read_text())
    assert [c["version"].split("+")[0] for c in manifest["compilers"]] == [_pinned_version()]
    compiled = set(manifest["contractTypes"])
    for source in _solidity_sources():
        for name in re.findall(
            r"^(?:abstract )?(?:contract|interface|library) (\w+)", source.read_text(), re.M
        ):
            assert name in compiled, f"{name} from {source.name} not compiled by ape"
