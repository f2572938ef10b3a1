"""``pip install tender`` is the light requester SDK and CLI; everything heavy is an extra.

The light install is simulated in a subprocess whose import system refuses every module the
base dependencies do not bring (a ``sys.meta_path`` finder): the SDK and the CLI must work
without them, and a command that needs an extra must say which, in one line, exit code 2.
``tender.extras`` (what the CLI checks) must agree with ``pyproject.toml``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path
from typing import Any, cast

import pytest

from tender.chain import _artifacts, deploy_artifact, export_abis, load_artifact
from tender.cli import error_line
from tender.errors import ArtifactError
from tender.extras import EXTRAS
from tender.paths import ARTIFACTS, CHECKOUT

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

#: Distributions the base install must not pull (normalised names; ``ape-*`` by prefix).
HEAVY = {
    "ezkl",
    "onnxruntime",
    "onnxruntime-gpu",
    "onnx",
    "fastapi",
    "uvicorn",
    "starlette",
    "eth-ape",
    "matplotlib",
    "scikit-learn",
    "torch",
}
#: Modules the light install lacks: the heavy ones and what only the extras bring.
REFUSED = (
    "ezkl",
    "onnxruntime",
    "onnx",
    "fastapi",
    "starlette",
    "uvicorn",
    "ape",
    "ape_solidity",
    "ape_foundry",
    "matplotlib",
    "sklearn",
    "torch",
    "numpy",
    "prometheus_client",
)

LIGHT = textwrap.dedent(
    """
    import importlib.abc, sys

    REFUSED = set(sys.argv[1].split(","))

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in REFUSED:
                raise ModuleNotFoundError(f"No module named {name!r} (light install)", name=name)
            return None

    sys.meta_path.insert(0, Refuse())
    args = sys.argv[2:]
    if args[:1] == ["-c"]:
        exec(args[1])
    else:
        sys.argv = ["tender", *args]
        from tender.cli import main

        main()
    """
)


def _light(*args: str) -> subprocess.CompletedProcess[str]:
    """``tender *args`` (or ``-c CODE``) in a process that cannot import the extras."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-c", LIGHT, ",".join(REFUSED), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_base_dependencies_pull_nothing_heavy() -> None:
    base = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
    assert base & HEAVY == set()
    assert [n for n in base if n.startswith("ape-")] == []
    assert {"web3", "eth-account", "httpx", "click", "tomli-w"} <= base


def test_extras_match_what_the_cli_checks() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert set(EXTRAS) | {"dev"} == set(extras)
    assert extras["train"] == ["torch==2.13.0"]
    # `make setup` installs .[dev]: it must bring every runtime extra (train aside).
    (everything,) = [r for r in extras["dev"] if _name(r) == "tender"]
    assert set(everything[everything.index("[") + 1 : everything.index("]")].split(",")) == set(EXTRAS) - {
        "train"
    }


def test_the_sdk_imports_without_the_extras() -> None:
    code = (
        "import sys; import tender, tender.client, tender.chain, tender.intents, tender.cli;"
        "from tender import Client; from tender.client import Client;"
        f"assert not {{m.split('.')[0] for m in sys.modules}} & {set(REFUSED)!r}; print('ok')"
    )
    done = _light("-c", code)
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr


@pytest.mark.parametrize("args", [["--help"], ["request", "run", "--help"]])
def test_the_light_cli_helps(args: list[str]) -> None:
    done = _light(*args)
    assert done.returncode == 0, done.stderr
    assert "Usage: tender" in done.stdout


def test_the_light_cli_lists_what_needs_an_extra() -> None:
    listing = _light("--help").stdout
    assert re.search(r"devnet\s+\(not installed: pip install 'tender\[devnet\]'\)", listing)
    assert re.search(r"request\s+Buy inferences", listing)


@pytest.mark.parametrize(
    ("args", "extra"),
    [
        (["devnet"], "devnet"),
        (["devnet", "--requests", "3"], "devnet"),
        (["provider", "run", "--help"], "provider"),
        (["model", "build", "x.onnx"], "provider"),
        (["verifier", "run"], "verifier"),
    ],
)
def test_a_command_needing_an_extra_says_which(args: list[str], extra: str) -> None:
    done = _light(*args)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"error: tender {args[0]} needs the {extra} extra: pip install 'tender[{extra}]'"
    ]


def test_a_missing_module_at_run_time_names_its_extra() -> None:
    """A path the CLI cannot check up front (a requester's polycommit commitment needs EZKL)."""
    line = error_line(ModuleNotFoundError("No module named 'ezkl'", name="ezkl"))
    assert line == "this command needs the zk extra (ezkl is not installed): pip install 'tender[zk]'"
    assert "tender[provider]" in error_line(ModuleNotFoundError("x", name="fastapi.responses"))


def test_package_data_ships_the_abis() -> None:
    assert "abi/*.json" in PYPROJECT["tool"]["setuptools"]["package-data"]["tender.chain"]
    assert CHECKOUT  # this test run imports the checkout, not an installed wheel


class _NeverSends:
    def deploy(self, data: bytes) -> None:
        raise AssertionError("an ABI-only artefact reached a transaction")


@pytest.mark.skipif(not (ARTIFACTS / "Staking.sol").is_dir(), reason="contracts not built: make contracts")
def test_an_installed_tender_reads_the_packaged_abis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ``contracts/out`` (an installed wheel) the ABIs come from ``tender/chain/abi``:
    the same ABIs, no bytecode, and deploying from them is refused with the reason. (The two
    folders are module constants of ``tender.chain._artifacts``, pointed elsewhere here.)"""
    written = export_abis(tmp_path / "abi")
    assert sorted(p.stem for p in written) == sorted(_artifacts.PACKAGED_CONTRACTS)
    monkeypatch.setattr(_artifacts, "ARTIFACTS", tmp_path / "no-checkout")
    monkeypatch.setattr(_artifacts, "PACKAGED_ABIS", tmp_path / "abi")
    for name in _artifacts.PACKAGED_CONTRACTS:
        packaged = load_artifact(name)
        assert packaged.path == tmp_path / "abi" / f"{name}.json"
        assert packaged.abi == load_artifact(name, artifacts_dir=ARTIFACTS).abi
        assert packaged.bytecode == b""
    with pytest.raises(ArtifactError, match="ABI only; deploying needs the checkout's contracts/out"):
        deploy_artifact(cast(Any, _NeverSends()), "TestToken", named={})
    # an explicit folder never falls back
    with pytest.raises(ArtifactError, match="no build artefact"):
        load_artifact("Staking", artifacts_dir=tmp_path / "no-checkout")
    # a package installed from a tree where `make contracts` never ran says how to get the ABIs
    monkeypatch.setattr(_artifacts, "PACKAGED_ABIS", tmp_path / "empty")
    with pytest.raises(ArtifactError, match=r"no ABI for contract 'Staking'.*after `make contracts`"):
        load_artifact("Staking")


def test_no_requirement_is_listed_twice() -> None:
    project = PYPROJECT["project"]
    for group, requirements in {
        "dependencies": project["dependencies"],
        **project["optional-dependencies"],
    }.items():
        names = [_name(r) for r in requirements]
        assert len(names) == len(set(names)), f"{group} lists a distribution twice: {names}"
