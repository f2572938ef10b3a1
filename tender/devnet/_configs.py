"""The devnet's TOML config files: one per process, written into the run folder.

Each file is one of the roles' own pydantic models (:class:`provider.ProviderConfig`,
:class:`solver.SolverConfig`, :class:`verifier.VerifierConfig`), built from their sections and
written with ``tomli_w``, so a renamed or mistyped field fails mypy (and validation when the
file is built), never the demo at run time.

Keys never go into these files: each process reads its key from ``TENDER_PRIVATE_KEY`` in its
environment (``[chain].key_env``), which the supervisor sets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from provider import (
    BackendSection,
    BatchingSection,
    MisbehaveSection,
    ModelEntry,
    PricingSection,
    ProviderConfig,
    ProviderSection,
)
from solver import ProviderEntry, SolverConfig, SolverSection
from tender.config import ChainSection
from verifier import VerifierConfig, VerifierSection

__all__ = [
    "ProviderPlan",
    "RoleConfig",
    "dump_config",
    "provider_config",
    "solver_config",
    "verifier_config",
    "write_config",
]


#: A whole config file of one role process (each role's own model).
RoleConfig = ProviderConfig | SolverConfig | VerifierConfig


def dump_config(config: RoleConfig) -> str:
    """The TOML text of one config file: the fields that were set (defaults stay implicit)."""
    return tomli_w.dumps(config.model_dump(mode="json", exclude_unset=True, exclude_none=True))


def write_config(path: Path, config: RoleConfig) -> Path:
    """Write ``config`` to ``path`` (folders made as needed) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_config(config))
    return path


@dataclass(frozen=True)
class ProviderPlan:
    """One devnet provider: its name, key index, prices, speed, region and faults."""

    name: str
    key_index: int
    region: str
    price_factor: float
    delay_ms: int = 0
    misbehave: MisbehaveSection | None = None


def _chain(rpc_url: str, deployment: Path) -> ChainSection:
    return ChainSection(rpc_url=rpc_url, deployment=deployment, poll_interval_s=0.1)


def provider_config(
    plan: ProviderPlan,
    *,
    rpc_url: str,
    deployment: Path,
    port: int,
    models: Sequence[ModelEntry],
    run_dir: Path,
    workers: int = 1,
    proving_warmup: bool = True,
    proving_idle: bool = False,
) -> ProviderConfig:
    """The ``[chain]`` and ``[provider]`` sections of one devnet provider."""
    base_proof_cost = 5 * 10**15
    pricing = PricingSection(
        gpu_hour_cost=int(2 * 10**18 * plan.price_factor),
        proof_cost=int(base_proof_cost * plan.price_factor),
        margin=0.2,
        quote_ttl_s=30,
        # Three provers share a small machine in the demo: promise generous latencies.
        latency_slack=3.0,
    )
    provider = ProviderSection(
        listen=f"127.0.0.1:{port}",
        region=plan.region,
        hardware="cpu",
        models=list(models),
        pricing=pricing,
        batching=BatchingSection(enabled=False),
        backend=BackendSection(kind="onnxruntime", device="cpu"),
        store=run_dir / f"{plan.name}.db",
        proving_workers=workers,
        proving_warmup=proving_warmup,
        proving_idle=proving_idle,
        poll_interval_s=0.2,
        # earnings are credited in the markets: withdraw them every 0.1 token or so (demo prices
        # are 0.01 to 0.2 tokens); the devnet withdraws what is left at the end
        withdraw_threshold=10**17,
        misbehave=plan.misbehave or MisbehaveSection(),
    )
    return ProviderConfig(chain=_chain(rpc_url, deployment), provider=provider)


def solver_config(
    *,
    rpc_url: str,
    deployment: Path,
    port: int,
    providers: Sequence[ProviderEntry],
    run_dir: Path,
    name: str,
    margin_bps: int,
    token_desks: Sequence[ProviderEntry] = (),
) -> SolverConfig:
    """The ``[chain]`` and ``[solver]`` sections of one devnet solver (``token_desks``: the token
    desks whose best quote its ``POST /tokens/quote`` answers)."""
    solver = SolverSection(
        listen=f"127.0.0.1:{port}",
        store=run_dir / f"{name}.sqlite",
        markets=["reverse", "dutch"],
        margin_bps=margin_bps,
        poll_interval_s=0.1,
        job_poll_s=0.25,
        quote_timeout_s=2.0,
        start_block=0,
        providers=list(providers),
        token_desks=list(token_desks),
    )
    return SolverConfig(chain=_chain(rpc_url, deployment), solver=solver)


def verifier_config(
    *, rpc_url: str, deployment: Path, run_dir: Path, relay_listen: str | None = None
) -> VerifierConfig:
    """The ``[chain]`` and ``[verifier]`` sections of the devnet's verifier agent."""
    verifier = VerifierSection(
        store=run_dir / "verifier.db",
        poll_interval_s=0.2,
        challenge_margin_s=1,
        relay_listen=relay_listen,
    )
    return VerifierConfig(chain=_chain(rpc_url, deployment), verifier=verifier)
