"""Prometheus metrics of one node (its own registry, so several nodes can share a process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from tender.bounds import http_5xx_counter

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_PROOF_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)


class Metrics:
    """The node's counters, gauges and histograms."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.quotes = Counter("provider_quotes", "Quote requests by outcome", ["outcome"], registry=r)
        self.jobs = Counter("provider_jobs", "Jobs reaching a state", ["state"], registry=r)
        self.rejected = Counter(
            "provider_rejected_requests", "Requests refused with 4xx", ["error"], registry=r
        )
        self.http_5xx = http_5xx_counter(r)
        self.inference = Histogram(
            "provider_inference_batch_seconds",
            "Inference time per batch",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "provider_batch_size",
            "Requests per inference batch",
            ["model"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=r,
        )
        self.proof = Histogram(
            "provider_proof_seconds", "Proving time per job", ["model"], buckets=_PROOF_BUCKETS, registry=r
        )
        self.proving_queue = Gauge("provider_proving_queue", "Proofs submitted and not finished", registry=r)
        self.active_jobs = Gauge("provider_active_jobs", "Jobs neither settled nor failed", registry=r)
        self.withdrawals = Counter(
            "provider_withdrawals", "Withdrawals of the markets' credit by outcome", ["outcome"], registry=r
        )
        self.withdrawn = Counter(
            "provider_withdrawn_tokens", "Token base units withdrawn from the markets", registry=r
        )
        self.owed = Gauge(
            "provider_owed_tokens",
            "What each market owes the node (base units), as last read",
            ["market"],
            registry=r,
        )
