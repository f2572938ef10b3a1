"""The persistent local network (``tender devnet --keep-running``): what it publishes.

Once the chain, the deployment, the providers and the solvers are up, the devnet writes

* the deployment record where every tool looks for it by default
  (``deployments/<chainId>.json``, :func:`tender.chain.default_path`), so configs and commands
  may leave ``deployment`` out;
* ``<cache>/network.env`` (shell: ``source .cache/tender/network.env``) and
  ``<cache>/network.json`` (the same values for programs and tests): the RPC URL, the
  deployment path, the solver and provider URLs, the sample models' ids and bundles, and four
  funded development keys for a newcomer (one per role: provider, solver, verifier,
  requester), which the devnet's own roles do not use;

and removes all three when it stops (the deployment record only while it is still its own).
The quickstarts (``docs/quickstart-*.md``) start from these variables and ``tests/docs`` runs
them against such a network.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from eth_account import Account

from tender.paths import cache_dir

__all__ = ["NEWCOMER_KEYS", "NEWCOMER_TOKENS", "Network", "env_path", "json_path", "network_lines", "read"]

#: Anvil development accounts 10-13 (``m/44'/60'/0'/0/<n>`` of the public development mnemonic;
#: devnet only): the keys a newcomer uses in the quickstarts, by role. The devnet's own roles
#: use accounts 0-9 (see ``tender.devnet._run``), so these start with no stake and no jobs.
NEWCOMER_KEYS: dict[str, str] = {
    "provider": "0xf214f2b2cd398c806f84e317254e0f0b801d0643303237d97a22a48e01628897",
    "solver": "0x701b615bbdfb9de65240bc28bd21bbc0d996645a3dd57e7b12bc2bdf6f192c82",
    "verifier": "0xa267530f49f8280200edf313ee7af6b827f2a8bce2897751d06a843f644967b1",
    "requester": "0x47c99abed3324a2707c28affff1267e45918ec8c3f20b8aa892e8b065d2942dd",
}

#: Test tokens minted to each newcomer key (whole tokens).
NEWCOMER_TOKENS = 10_000


def env_path() -> Path:
    """``<cache>/network.env``: the running network, as shell ``export`` lines."""
    return cache_dir() / "network.env"


def json_path() -> Path:
    """``<cache>/network.json``: the running network, for programs."""
    return cache_dir() / "network.json"


@dataclass
class Network:
    """What a kept-running devnet offers; :meth:`write` publishes it, :meth:`remove` withdraws it."""

    rpc_url: str
    chain_id: int
    deployment: Path
    token: str
    run_dir: Path
    pid: int
    solvers: dict[str, str] = field(default_factory=dict)  # name -> URL
    providers: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> {url, address}
    models: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> {model_id, bundle}

    def variables(self) -> dict[str, str]:
        """The shell variables of ``network.env`` (names documented in the quickstarts)."""
        out = {
            "TENDER_RPC_URL": self.rpc_url,
            "TENDER_DEPLOYMENT": str(self.deployment),
            "TENDER_TOKEN": self.token,
            "TENDER_RUN_DIR": str(self.run_dir),
            # the cache holding the model bundles, for a `pip install`ed SDK outside the checkout
            "TENDER_CACHE": str(cache_dir()),
            "TENDER_SOLVER_URL": next(iter(self.solvers.values()), ""),
            "TENDER_SOLVER_URLS": ",".join(self.solvers.values()),
        }
        for name, provider in self.providers.items():
            tag = name.upper().replace("-", "_")
            out[f"TENDER_{tag}_URL"] = provider["url"]
            out[f"TENDER_{tag}_ADDRESS"] = provider["address"]
        for name, model in self.models.items():
            out[f"TENDER_{name.upper()}_MODEL_ID"] = model["model_id"]
            out[f"TENDER_{name.upper()}_BUNDLE"] = model["bundle"]
        for role, key in NEWCOMER_KEYS.items():
            out[f"TENDER_{role.upper()}_KEY"] = key
            out[f"TENDER_{role.upper()}_ADDRESS"] = str(Account.from_key(key).address)
        return out

    def write(self) -> tuple[Path, Path]:
        """Write ``network.env`` and ``network.json``; returns both paths."""
        variables = self.variables()
        lines = [
            f"# The local Tender network of `tender devnet --keep-running` (pid {self.pid}); removed",
            "# when it stops. Development keys (Anvil's public mnemonic): never use them elsewhere.",
            *(f"export {name}={shlex.quote(value)}" for name, value in variables.items()),
        ]
        env, data = env_path(), json_path()
        _write(env, "\n".join(lines) + "\n")
        _write(data, json.dumps({"pid": self.pid, "chain_id": self.chain_id, **variables}, indent=2) + "\n")
        return env, data

    def remove(self, deployment_record: Path | None) -> None:
        """Remove what :meth:`write` wrote (and ``deployment_record`` if it is still ours)."""
        for path in (env_path(), json_path()):
            if _owner(path) in (self.pid, None):
                path.unlink(missing_ok=True)
        if deployment_record is not None and deployment_record.exists():
            try:
                mine = self.run_dir / "deployment.json"
                ours = json.loads(deployment_record.read_text()) == json.loads(mine.read_text())
            except (OSError, ValueError):
                ours = False
            if ours:
                deployment_record.unlink(missing_ok=True)


def read(path: Path | None = None) -> Mapping[str, object]:
    """The ``network.json`` of the running network (``{}`` when there is none)."""
    try:
        data = json.loads((path or json_path()).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _owner(path: Path) -> int | None:
    if path.suffix == ".json":
        value = read(path).get("pid")
        return value if isinstance(value, int) else None
    try:
        first = path.read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    marker = "(pid "
    if marker not in first:
        return None
    digits = first.split(marker, 1)[1].split(")", 1)[0]
    return int(digits) if digits.isdigit() else None


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def network_lines(network: Network, env: Path) -> list[str]:
    """What a person needs to join the network, one ``name  value`` line each (keys and ids are
    printed whole, never wrapped, so that they can be copied)."""
    rows: list[tuple[str, str]] = [
        ("RPC URL", network.rpc_url),
        ("deployment", str(network.deployment)),
        ("token", f"{network.token} (TestToken: anyone may mint, `tender token mint`)"),
    ]
    rows += [(name, url) for name, url in network.solvers.items()]
    rows += [(name, f"{p['url']} {p['address']}") for name, p in network.providers.items()]
    for name, model in network.models.items():
        rows += [(f"model {name}", model["model_id"]), ("", model["bundle"])]
    for role, key in NEWCOMER_KEYS.items():
        rows += [(f"{role} key", key), ("", f"{Account.from_key(key).address}: {NEWCOMER_TOKENS:,} tokens")]
    rows += [("run folder", str(network.run_dir)), ("all of it", f"source {env}")]
    return [f"    {name:<14}{value}" for name, value in rows]
