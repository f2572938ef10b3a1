"""Prometheus metrics of the solver, on a registry of their own (served when
``solver.metrics_port`` is set)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from tender.bounds import http_5xx_counter

REGISTRY = CollectorRegistry(auto_describe=True)

QUOTES = Counter(
    "solver_quotes_total", "Provider answers by outcome", ["provider", "outcome"], registry=REGISTRY
)
FANOUT_SECONDS = Histogram(
    "solver_fanout_seconds",
    "Time to gather quotes from every provider for one intent",
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=REGISTRY,
)
DECISIONS = Counter("solver_decisions_total", "Policy decisions by kind", ["kind"], registry=REGISTRY)
JOBS = Counter(
    "solver_jobs_total", "Jobs by outcome (won, lost, settled, expired)", ["outcome"], registry=REGISTRY
)
TXS = Counter(
    "solver_txs_total", "Transactions by purpose and event", ["purpose", "event"], registry=REGISTRY
)
FEED_BLOCK = Gauge("solver_feed_block", "Last block the intent feed processed", registry=REGISTRY)
REORGS = Counter("solver_reorgs_total", "Reorgs the feed rolled back", registry=REGISTRY)
BREAKER_OPEN = Gauge(
    "solver_provider_breaker_open", "1 while a provider is skipped", ["provider"], registry=REGISTRY
)
HTTP_5XX = http_5xx_counter(REGISTRY)
