"""A persistent local network (``tender devnet --keep-running``) for the tests of the docs.

It runs with its own cache folder (``TENDER_CACHE``: the shared cache's model bundles and SRS
linked in, so nothing is rebuilt) and its own deployments folder (``TENDER_DEPLOYMENTS``), so it
never touches a network a person keeps running in this checkout. The documents run in a work
folder that mirrors the repository (every top-level entry linked) with ``.cache/tender`` pointing
at that cache: ``source .cache/tender/network.env`` there reads this network.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tender.anvil import free_port
from tender.paths import ROOT, cache_dir

TENDER = [sys.executable, "-c", "from tender.cli import main; main()"]

#: Cache entries a network of its own must not share (it writes them).
_PRIVATE = {"network.env", "network.json", "devnet", "deployments"}


@dataclass
class LocalNetwork:
    """A running ``tender devnet --keep-running`` and where it keeps things."""

    process: subprocess.Popen[str]
    cache: Path
    deployments: Path
    run_dir: Path
    info: dict[str, object]

    def env(self) -> dict[str, str]:
        """The environment of a newcomer's shell on this network (before ``source``)."""
        return network_env(self.cache, self.deployments)

    def workdir(self, where: Path) -> Path:
        """A folder that looks like the repository, with this network's cache as ``.cache/tender``."""
        where.mkdir(parents=True, exist_ok=True)
        for entry in ROOT.iterdir():
            if entry.name in {".cache", ".git", "deployments"}:
                continue
            (where / entry.name).symlink_to(entry)
        (where / ".cache").mkdir()
        (where / ".cache" / "tender").symlink_to(self.cache)
        (where / "deployments").symlink_to(self.deployments)
        return where


def network_env(cache: Path, deployments: Path) -> dict[str, str]:
    """This environment without Tender's variables, with the network's cache and deployments."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TENDER_", "ANVIL_RPC_URL"))}
    env.update(TENDER_CACHE=str(cache), TENDER_DEPLOYMENTS=str(deployments), PYTHONPATH=str(ROOT))
    bins = [ROOT / ".venv" / "bin", ROOT / "node_modules" / ".bin"]
    env["PATH"] = os.pathsep.join([*map(str, bins), env.get("PATH", "")])
    return env


def start_network(base: Path, *, extra: list[str] | None = None, timeout_s: float = 900) -> LocalNetwork:
    """Start ``tender devnet --keep-running`` on free ports; returns once ``network.json``
    (written when every role answers) names it."""
    cache, deployments, run_dir = base / "cache", base / "deployments", base / "run"
    cache.mkdir(parents=True)
    deployments.mkdir()
    for entry in cache_dir().iterdir():
        if entry.name not in _PRIVATE and not entry.name.endswith((".db", ".sqlite")):
            (cache / entry.name).symlink_to(entry)
    with (base / "devnet.out").open("w") as out:
        process = subprocess.Popen(
            [
                *TENDER,
                "devnet",
                "--keep-running",
                "--port",
                str(free_port()),
                "--run-dir",
                str(run_dir),
                "--no-live",
                *(extra or []),
            ],
            cwd=ROOT,
            env=network_env(cache, deployments),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    network = LocalNetwork(process, cache, deployments, run_dir, {})
    marker = cache / "network.json"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if network.process.poll() is not None:
            raise AssertionError(
                f"the network stopped before it was up:\n{(base / 'devnet.out').read_text()[-4000:]}"
            )
        if marker.exists():
            info = json.loads(marker.read_text())
            if info.get("pid") == network.process.pid:
                network.info = info
                return network
        time.sleep(0.5)
    stop_network(network)
    raise AssertionError(
        f"the network was not up after {timeout_s}s:\n{(base / 'devnet.out').read_text()[-4000:]}"
    )


def stop_network(network: LocalNetwork) -> int:
    """Ctrl-C the network (its whole process group); its exit code."""
    try:
        os.killpg(network.process.pid, signal.SIGINT)
        return network.process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(network.process.pid, signal.SIGKILL)
        return network.process.wait(timeout=30)
    except ProcessLookupError:
        return network.process.wait(timeout=30)
