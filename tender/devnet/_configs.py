"""The devnet's TOML config files: one per process, written into the run folder.

Keys never go into these files: each process reads its key from ``TENDER_PRIVATE_KEY`` in its
environment (``[chain].key_env``), which the supervisor sets.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ProviderPlan",
    "dump_toml",
    "provider_config",
    "solver_config",
    "verifier_config",
    "write_config",
]


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Path):
        return json.dumps(str(value))
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def dump_toml(data: Mapping[str, Any]) -> str:
    """Write nested dicts as TOML: tables, arrays of tables and scalars (no ``None``)."""
    lines: list[str] = []

    def table(prefix: str, body: Mapping[str, Any], *, array: bool = False) -> None:
        scalars = {k: v for k, v in body.items() if v is not None and not _is_table(v) and not _is_tables(v)}
        if prefix:
            lines.append(f"[[{prefix}]]" if array else f"[{prefix}]")
        for key, value in scalars.items():
            lines.append(f"{key} = {_scalar(value)}")
        if prefix or scalars:
            lines.append("")
        for key, value in body.items():
            name = f"{prefix}.{key}" if prefix else key
            if _is_table(value):
                table(name, value)
            elif _is_tables(value):
                for item in value:
                    table(name, item, array=True)

    table("", data)
    return "\n".join(lines).rstrip() + "\n"


def _is_table(value: Any) -> bool:
    return isinstance(value, Mapping)


def _is_tables(value: Any) -> bool:
    return isinstance(value, list | tuple) and bool(value) and all(isinstance(v, Mapping) for v in value)


def write_config(path: Path, data: Mapping[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_toml(data))
    return path


@dataclass(frozen=True)
class ProviderPlan:
    """One devnet provider: its name, key index, prices, speed, region and faults."""

    name: str
    key_index: int
    region: str
    price_factor: float
    delay_ms: int = 0
    misbehave: dict[str, int] = field(default_factory=dict)


def _chain(rpc_url: str, deployment: Path) -> dict[str, Any]:
    return {"rpc_url": rpc_url, "deployment": deployment, "poll_interval_s": 0.1}


def provider_config(
    plan: ProviderPlan,
    *,
    rpc_url: str,
    deployment: Path,
    port: int,
    models: Sequence[Mapping[str, Any]],
    run_dir: Path,
    workers: int = 1,
) -> dict[str, Any]:
    """The ``[chain]`` and ``[provider]`` sections of one devnet provider."""
    base_proof_cost = 5 * 10**15
    provider: dict[str, Any] = {
        "listen": f"127.0.0.1:{port}",
        "region": plan.region,
        "hardware": "cpu",
        "models": [dict(m) for m in models],
        "pricing": {
            "gpu_hour_cost": int(2 * 10**18 * plan.price_factor),
            "proof_cost": int(base_proof_cost * plan.price_factor),
            "margin": 0.2,
            "quote_ttl_s": 30,
            # Three provers share a small machine in the demo: promise generous latencies.
            "latency_slack": 3.0,
        },
        "batching": {"enabled": False},
        "backend": {"kind": "onnxruntime", "device": "cpu"},
        "store": run_dir / f"{plan.name}.db",
        "proving_workers": workers,
        "poll_interval_s": 0.2,
        # earnings are credited in the markets: withdraw them every 0.1 token or so (demo prices
        # are 0.01 to 0.2 tokens); the devnet withdraws what is left at the end
        "withdraw_threshold": 10**17,
    }
    if plan.misbehave:
        provider["misbehave"] = dict(plan.misbehave)
    return {"chain": _chain(rpc_url, deployment), "provider": provider}


def solver_config(
    *,
    rpc_url: str,
    deployment: Path,
    port: int,
    providers: Sequence[Mapping[str, str]],
    run_dir: Path,
    name: str,
    margin_bps: int,
) -> dict[str, Any]:
    """The ``[chain]`` and ``[solver]`` sections of one devnet solver."""
    return {
        "chain": _chain(rpc_url, deployment),
        "solver": {
            "listen": f"127.0.0.1:{port}",
            "db_path": run_dir / f"{name}.sqlite",
            "markets": ["reverse", "dutch"],
            "margin_bps": margin_bps,
            "poll_interval_s": 0.1,
            "job_poll_s": 0.25,
            "quote_timeout_s": 2.0,
            "start_block": 0,
            "providers": [dict(p) for p in providers],
        },
    }


def verifier_config(*, rpc_url: str, deployment: Path, run_dir: Path) -> dict[str, Any]:
    """The ``[chain]`` and ``[verifier]`` sections of the devnet's verifier agent."""
    return {
        "chain": _chain(rpc_url, deployment),
        "verifier": {
            "state": run_dir / "verifier.db",
            "poll_interval_s": 0.2,
            "challenge_margin_s": 1,
        },
    }
