"""The ``[solver]`` config section (validated once at start-up, with ``[chain]``)::

    [solver]
    listen = "127.0.0.1:7100"
    store = ".cache/tender/solver.sqlite"
    markets = ["reverse", "dutch"]
    margin_bps = 200
    confirmations = 1

    [[solver.providers]]
    name = "gpu-a"
    url = "http://127.0.0.1:7001"
    address = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"

See ``examples/solver.toml`` for every field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from tender.bounds import HttpLimits
from tender.config import ChainSection, Section, load_role_config

MarketName = Literal["reverse", "dutch"]
_ALL_MARKETS: tuple[MarketName, ...] = ("reverse", "dutch")


class ProviderEntry(Section):
    """A GPU provider the solver asks for quotes."""

    name: str = Field(min_length=1, max_length=64)
    url: str = Field(pattern=r"^https?://", description="base URL of its HTTP API")
    address: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$", description="its operator address (signs quotes)")


class GasSection(Section):
    """How the solver prices its own gas into a bid.

    The gas of one job (``bid`` + ``award``, or one ``fill``) is paid in the native coin; it is
    turned into token base units with ``token_per_wei``.
    """

    bid_gas: int = Field(default=120_000, gt=0)
    award_gas: int = Field(default=220_000, gt=0)
    fill_gas: int = Field(default=260_000, gt=0)
    submit_gas: int = Field(default=200_000, gt=0)
    expire_gas: int = Field(default=150_000, gt=0)
    gas_price_wei: int | None = Field(
        default=None, ge=0, description="fixed assumption; None: read the chain"
    )
    max_gas_price_wei: int = Field(default=500 * 10**9, gt=0, description="never pay more per gas")
    token_per_wei: float = Field(default=1.0, ge=0, description="token base units per wei of gas")
    bump_pct: int = Field(default=15, ge=10, le=200, description="fee bump of a replacement (>=10%)")
    stuck_after_s: float = Field(default=30.0, gt=0, description="replace a pending tx after this long")


class BreakerSection(Section):
    """Per-provider circuit breaker: after ``failures`` in a row, skip it with backoff."""

    failures: int = Field(default=3, ge=1)
    backoff_s: float = Field(default=1.0, gt=0)
    backoff_max_s: float = Field(default=60.0, gt=0)


class SolverSection(Section):
    """The solver daemon."""

    providers: list[ProviderEntry] = Field(default_factory=list)
    token_desks: list[ProviderEntry] = Field(
        default_factory=list,
        description="token desks (tender provider tokens) whose best quote POST /tokens/quote answers",
    )
    markets: list[MarketName] = Field(default_factory=lambda: list(_ALL_MARKETS))
    listen: str | None = Field(default="127.0.0.1:7100", description="host:port of POST /intents; None: off")
    store: Path = Field(default=Path(".cache/tender/solver.sqlite"))
    margin_bps: int = Field(default=200, ge=0, le=100_000)
    min_margin: int = Field(default=0, ge=0, description="token base units")
    latency_buffer_s: int = Field(default=0, ge=0)
    confirmations: int = Field(default=0, ge=0, le=64, description="blocks before an event is acted on")
    reorg_depth: int = Field(default=64, ge=1, le=4096, description="block hashes remembered")
    start_block: int | None = Field(default=None, ge=0, description="first block on a fresh store")
    log_chunk: int = Field(default=2_000, ge=1, description="blocks per eth_getLogs")
    poll_interval_s: float = Field(default=0.25, gt=0)
    quote_timeout_s: float = Field(default=1.0, gt=0)
    http_backend: Literal["aiohttp", "httpx"] = "aiohttp"
    max_connections: int = Field(default=256, ge=1)
    submit_signed: bool = Field(
        default=True,
        description="relay signed intents it can serve on-chain (else leave them to the requester)",
    )
    job_poll_s: float = Field(default=0.5, gt=0)
    max_feed_lag_blocks: int = Field(
        default=32, ge=1, description="/health turns 503 when the feed is further behind the head"
    )
    finalize_grace_s: float = Field(default=30.0, ge=0, description="finalize our optimistic jobs this late")
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    max_payload_bytes: int = Field(default=1 << 20, ge=256, description="bytes of one HTTP request body")
    max_json_depth: int = Field(default=32, ge=8, le=1_000, description="nesting of a JSON request body")
    max_number_chars: int = Field(
        default=64, ge=24, le=4_000, description="characters of one number literal in a JSON body"
    )
    gas: GasSection = Field(default_factory=GasSection)
    breaker: BreakerSection = Field(default_factory=BreakerSection)

    @field_validator("providers")
    @classmethod
    def _unique(cls, providers: list[ProviderEntry]) -> list[ProviderEntry]:
        names = [p.name for p in providers]
        if len(set(names)) != len(names):
            raise ValueError("provider names must be unique")
        return providers

    def http_limits(self) -> HttpLimits:
        """The bounds of every request ``POST /intents`` takes (see :mod:`tender.bounds`)."""
        return HttpLimits(
            max_body_bytes=self.max_payload_bytes,
            max_json_depth=self.max_json_depth,
            max_number_chars=self.max_number_chars,
        )


class SolverConfig(Section):
    """A whole solver config file: ``[chain]`` and ``[solver]`` (the devnet writes its files from it)."""

    chain: ChainSection = ChainSection()
    solver: SolverSection = SolverSection()


def load_config(path: Path) -> tuple[ChainSection, SolverSection]:
    """Read the ``[chain]`` and ``[solver]`` sections of one TOML file."""
    return load_role_config(path, SolverSection, name="solver")
