"""The ``[verifier]`` config section (the agent reads ``[chain]`` too)::

[chain]
rpc_url = "http://127.0.0.1:8545"
deployment = "deployments/31337.json"

[verifier]
store = ".cache/tender/verifier.db"
relay_listen = "127.0.0.1:7301"
challenge_margin_s = 2
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from tender.config import ChainSection, Section, parse_section, read_toml
from tender.paths import cache_dir


class VerifierSection(Section):
    """What the verifier agent watches and which duties it takes on."""

    store: Path | None = Field(default=None, description="SQLite store (default: cache/verifier-<chain>.db)")
    markets: tuple[str, ...] = Field(default=("reverse", "dutch"), description="market names to follow")
    from_block: int | None = Field(
        default=None, ge=0, description="first block to scan (default: deployment block)"
    )
    bundles: tuple[Path, ...] = Field(
        default=(), description="folders with model bundles (the cache's models/ is always searched)"
    )
    poll_interval_s: float = Field(default=0.5, gt=0, le=60)
    log_chunk: int = Field(default=2_000, ge=1, le=100_000, description="blocks per eth_getLogs request")
    challenge: bool = Field(default=True, description="challenge wrong optimistic deliveries")
    expire: bool = Field(default=True, description="expire jobs past their delivery deadline")
    finalize: bool = Field(default=True, description="finalize jobs whose challenge window closed")
    award: bool = Field(
        default=True,
        description="award a reverse auction with bids still open keeper_grace_s after its end",
    )
    refund: bool = Field(
        default=True,
        description="refund a job still open keeper_grace_s after its auction, once no award is possible",
    )
    keeper_grace_s: int = Field(
        default=10,
        ge=0,
        description="seconds past an auction's end left to its solver before the keeper acts",
    )
    challenge_margin_s: int = Field(
        default=2, ge=0, description="give up on a challenge this many seconds before the window closes"
    )
    max_input_bytes: int = Field(default=4 << 20, gt=0, description="largest input fetched from a URI")
    input_timeout_s: float = Field(default=10.0, gt=0)
    relay_listen: str | None = Field(
        default=None, description="host:port of the proof relay (off when unset)"
    )
    relay_max_proof_bytes: int = Field(default=1 << 20, gt=0)
    stuck_after_s: float = Field(
        default=60.0, gt=0, description="/v1/health turns 503 when a signed action stays unmined this long"
    )
    max_feed_lag_blocks: int = Field(
        default=32, ge=1, description="/v1/health turns 503 when the feed is further behind the head"
    )
    fault_crash_after_persist: bool = Field(
        default=False,
        description="testing only: exit right after the first signed transaction is stored, before it is sent",
    )

    def store_path(self, chain_id: int) -> Path:
        return self.store or cache_dir() / f"verifier-{chain_id}.db"


class VerifierConfig(Section):
    """A whole verifier config file: ``[chain]`` and ``[verifier]``."""

    chain: ChainSection = ChainSection()
    verifier: VerifierSection = VerifierSection()


def load_config(path: Path) -> VerifierConfig:
    """Read and validate ``path`` once (errors name the field: ``verifier.relay_listen: ...``)."""
    data = read_toml(path)
    return VerifierConfig(
        chain=parse_section(ChainSection, data.get("chain", {}), name="chain"),
        verifier=parse_section(VerifierSection, data.get("verifier", {}), name="verifier"),
    )
