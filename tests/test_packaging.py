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

import pytest

from tender.cli import error_line
from tender.extras import EXTRAS

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
    assert line == "this command (ezkl) needs the zk extra: pip install 'tender[zk]'"
    assert "tender[provider]" in error_line(ModuleNotFoundError("x", name="fastapi.responses"))
