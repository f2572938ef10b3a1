"""The ``[provider]`` config section, validated once at start-up.

::

    [provider]
    listen = "127.0.0.1:7001"
    region = "0x0001"
    hardware = "cpu"

    [[provider.models]]
    name = "mlp"
    onnx = "models/mlp/model.onnx"
    bundle = ".cache/tender/bundles/mlp"
    batch_bundle = ".cache/tender/bundles/mlp-batch4"   # optional: settle 4 jobs per proof
    batch_wait_s = 30                                   # the longest a job waits for a full batch

    [provider.pricing]
    gpu_hour_cost = 2_000_000_000_000_000_000   # token base units per GPU-hour
    proof_cost = 10_000_000_000_000_000          # token base units per proof
    margin = 0.2

    [provider.backend]
    kind = "onnxruntime"      # or "kserve" with url = "http://127.0.0.1:8080"

The markets credit a job's price to the provider instead of sending it; the node withdraws the
credit itself once a market owes it ``provider.withdraw_threshold`` (token base units; 0: never,
withdraw it with ``tender market withdraw``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from tender.bounds import HttpLimits
from tender.config import ChainSection, Section, load_role_config
from tender.paths import cache_dir


class ModelEntry(Section):
    """One model served by this node."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    onnx: Path = Field(description="the ONNX file the backend runs")
    bundle: Path | None = Field(default=None, description="built model bundle (circuit, keys, card)")
    model_id: str | None = Field(
        default=None,
        pattern=r"^0x[0-9a-fA-F]{64}$",
        description="the registry's bytes32 model id; defaults to the bundle card's id",
    )
    kserve_name: str | None = Field(default=None, description="the model's name on the KServe server")
    batch_bundle: Path | None = Field(
        default=None,
        description="a batch bundle of this model (``tender model build --batch N``): quote-market jobs "
        "naming its model id are collected and settled N at a time by one proof (``deliverBatch``)",
    )
    batch_model_id: str | None = Field(
        default=None,
        pattern=r"^0x[0-9a-fA-F]{64}$",
        description="the batch model's registry id; defaults to the ids registered with its card's hashes",
    )
    batch_wait_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="the longest a job waits for others to fill its batch (it also waits no longer "
        "than its deadline allows: the measured batch proving time and the delivery headroom before it)",
    )

    @model_validator(mode="after")
    def _batch_needs_bundle(self) -> ModelEntry:
        if self.batch_model_id is not None and self.batch_bundle is None:
            raise ValueError("batch_model_id needs batch_bundle")
        return self


class PricingSection(Section):
    """What a job costs us and what we ask (token base units)."""

    gpu_hour_cost: int = Field(default=2 * 10**18, ge=0, description="cost of one GPU-hour")
    proof_cost: int = Field(default=10**16, ge=0, description="fixed cost of one proof")
    margin: float = Field(default=0.2, ge=0, le=100)
    queue_penalty: float = Field(default=0.05, ge=0, le=10, description="extra margin per queued proof")
    quote_ttl_s: int = Field(default=30, gt=0, le=3600)
    latency_slack: float = Field(default=1.5, ge=1, le=100, description="safety factor on quoted latency")
    delivery_s: float = Field(
        default=4.0, ge=0, description="time allowed for the delivery transaction to be mined (tx inclusion)"
    )
    restart_s: float = Field(
        default=15.0, ge=0, description="headroom for a restart of the node mid-job (kill -9, then resume)"
    )


class BatchingSection(Section):
    """Micro-batching of concurrent requests for the same model."""

    enabled: bool = True
    max_batch: int = Field(default=64, ge=1, le=4096)
    max_wait_ms: float = Field(default=2.0, ge=0, le=1000)


class BackendSection(Section):
    """Which inference backend runs the models."""

    kind: Literal["onnxruntime", "kserve"] = "onnxruntime"
    url: str | None = Field(default=None, description="KServe / Open Inference Protocol base URL")
    timeout_s: float = Field(default=30.0, gt=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    inline_ms: float = Field(
        default=0.5, ge=0, le=50, description="onnxruntime runs shorter than this stay on the loop"
    )

    @model_validator(mode="after")
    def _url_for_kserve(self) -> BackendSection:
        if self.kind == "kserve" and not self.url:
            raise ValueError("backend.kind = 'kserve' needs backend.url")
        return self


class HealthSection(Section):
    """When ``/health`` answers 503 (unhealthy) instead of 200."""

    chain_stale_s: float = Field(
        default=10.0, gt=0, description="the chain is unreachable: no head read for this many seconds"
    )
    stuck_tx_s: float = Field(
        default=60.0, gt=0, description="a transaction of the node's key is unmined for this many seconds"
    )
    proof_wait_s: float = Field(
        default=120.0, gt=0, description="the proof queue is behind: a proof waits this many seconds"
    )
    rpc_margin_s: float = Field(
        default=2.0, ge=0, description="RPC errors on a job's path are retried until its deadline less this"
    )


class MisbehaveSection(Section):
    """Deliberate faults for devnet demonstrations (never set these in production)."""

    silent_on_job: int | None = Field(
        default=None, ge=1, description="accept the N-th job, then never deliver"
    )
    wrong_output_on_job: int | None = Field(
        default=None, ge=1, description="deliver a wrong output for the M-th optimistic job"
    )


class ProviderSection(Section):
    """The provider node: HTTP API, models, pricing, batching, proving, store."""

    listen: str = Field(default="127.0.0.1:7001", pattern=r"^[^:\s]+:[0-9]{1,5}$")
    public_url: str | None = Field(default=None, description="URL solvers reach us at (default: listen)")
    region: str = Field(default="0x0000", pattern=r"^0x[0-9a-fA-F]{4}$")
    hardware: str = Field(default="cpu", max_length=64)
    models: list[ModelEntry] = Field(default_factory=list)
    pricing: PricingSection = Field(default_factory=PricingSection)
    batching: BatchingSection = Field(default_factory=BatchingSection)
    backend: BackendSection = Field(default_factory=BackendSection)
    health: HealthSection = Field(default_factory=HealthSection)
    misbehave: MisbehaveSection = Field(default_factory=MisbehaveSection)
    max_payload_bytes: int = Field(default=1 << 20, ge=256, description="bytes of one HTTP request body")
    max_json_depth: int = Field(default=32, ge=8, le=1_000, description="nesting of a JSON request body")
    max_number_chars: int = Field(
        default=64, ge=24, le=4_000, description="characters of one number literal in a JSON body"
    )
    max_jobs: int = Field(default=64, ge=1, description="jobs in flight before quotes say no capacity")
    proving_workers: int | None = Field(
        default=None, ge=1, le=256, description="proofs in parallel (default: half the CPUs, at least one)"
    )
    proving_warmup: bool = Field(default=True, description="start the proving workers at start-up")
    proving_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="niceness the proving workers add to the node's: proofs take the cycles the "
        "real-time path leaves (0 on a machine shared with other busy work, where they would starve)",
    )
    prove_before_award: bool = Field(
        default=True,
        description="prove a zk reverse-auction job this node's bid leads a second before its auction "
        "ends, so that the award finds the proof under way (a lead lost at the last moment costs one "
        "unused proof)",
    )
    proving_idle: bool = Field(
        default=False,
        description="run the proving workers under SCHED_IDLE (Linux): only the cycles nothing else on "
        "the machine wants, so a busy node's quotes and outputs never wait behind a proof (a machine "
        "that serves the node alone; elsewhere proofs could starve)",
    )
    confirmations: int | None = Field(default=None, ge=0, le=64, description="default: chain.confirmations")
    store: Path | None = Field(default=None, description="SQLite job store (default: cache/provider/jobs.db)")
    poll_interval_s: float = Field(
        default=0.5, gt=0, le=60, description="how often jobs are checked on-chain"
    )
    withdraw_threshold: int = Field(
        default=10**18,
        ge=0,
        lt=2**256,
        description="after a settlement, withdraw what the market owes once it reaches this many token "
        "base units (0: never; `tender market withdraw` withdraws it by hand)",
    )

    @field_validator("models")
    @classmethod
    def _unique_names(cls, models: list[ModelEntry]) -> list[ModelEntry]:
        names = [m.name for m in models]
        if len(set(names)) != len(names):
            raise ValueError(f"model names must be unique: {names}")
        return models

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

    def http_limits(self) -> HttpLimits:
        """The bounds of every HTTP request the node serves (see :mod:`tender.bounds`)."""
        return HttpLimits(
            max_body_bytes=self.max_payload_bytes,
            max_json_depth=self.max_json_depth,
            max_number_chars=self.max_number_chars,
        )

    def store_path(self) -> Path:
        return self.store or cache_dir() / "provider" / "jobs.db"

    def workers(self) -> int:
        """Proving processes: the configured count, else half the CPUs (at least one)."""
        return self.proving_workers or max(1, (os.cpu_count() or 2) // 2)


class ProviderConfig(Section):
    """A whole provider config file: ``[chain]`` and ``[provider]`` (the devnet writes its files from it)."""

    chain: ChainSection = ChainSection()
    provider: ProviderSection = ProviderSection()


def load_config(path: Path) -> tuple[ChainSection, ProviderSection]:
    """Read the ``[chain]`` and ``[provider]`` sections of one TOML file (paths as written)."""
    return load_role_config(path, ProviderSection, name="provider")
