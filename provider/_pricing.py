"""Quotes: what a job costs us, what we ask, and how long we promise.

``cost = gpu_hour_cost * compute_s / 3600 + proof_cost`` where ``compute_s`` is the measured
inference plus proving time of the model; ``price = cost * (1 + margin + queue_penalty * queued)``,
never under cost and never over the intent's ``maxPrice`` (then we refuse instead).

The promised latency is what the node will really need, from in-memory counters only (a quote
makes no I/O)::

    latency = (inference + proof + proof * ceil(in_flight / workers)) * latency_slack
              + restart_s + delivery_s

``inference`` and ``proof`` are measured on this machine (moving averages), ``in_flight`` the
proofs already queued or running ahead of ours, drained ``workers`` at a time, ``restart_s`` the
headroom for a restart mid-job and ``delivery_s`` the time a transaction needs to be mined. An
optimistic job is delivered without a proof (one is made only if it is challenged or audited,
within the proof window the market gives then), so its promise leaves the proof and its queue out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from provider._config import PricingSection


class Ewma:
    """An exponentially weighted moving average seeded with a prior."""

    def __init__(self, prior: float, *, alpha: float = 0.2) -> None:
        self.value = prior
        self.alpha = alpha
        self.samples = 0

    def add(self, sample: float) -> None:
        self.value = sample if self.samples == 0 else self.alpha * sample + (1 - self.alpha) * self.value
        self.samples += 1


@dataclass(frozen=True, slots=True)
class Offer:
    """A computed offer: price and latency, or the reason there is none."""

    price: int = 0
    cost: int = 0
    latency_s: int = 0
    refusal: str | None = None


class Pricer:
    """Computes offers from the pricing config and the node's measured timings.

    Args:
        pricing: the ``[provider.pricing]`` section.
        workers: proving processes (the queue drains this many at a time).
    """

    def __init__(self, pricing: PricingSection, *, workers: int) -> None:
        self.pricing = pricing
        self.workers = max(1, workers)
        self.inference_s: dict[str, Ewma] = {}
        self.proof_s: dict[str, Ewma] = {}

    def observe(self, model: str, *, inference_s: float | None = None, proof_s: float | None = None) -> None:
        if inference_s is not None:
            self.inference_s.setdefault(model, Ewma(0.05)).add(inference_s)
        if proof_s is not None:
            self.proof_s.setdefault(model, Ewma(5.0)).add(proof_s)

    def compute_s(self, model: str) -> float:
        inference = self.inference_s.get(model, Ewma(0.05)).value
        proof = self.proof_s.get(model, Ewma(5.0)).value
        return inference + proof

    def cost(self, model: str) -> int:
        p = self.pricing
        return math.ceil(p.gpu_hour_cost * self.compute_s(model) / 3600) + p.proof_cost

    def latency_s(self, model: str, *, queued: int, optimistic: bool = False) -> int:
        """Seconds to promise for one job with ``queued`` proofs in flight ahead of it."""
        inference = self.inference_s.get(model, Ewma(0.05)).value
        if optimistic:
            work = inference
        else:
            proof = self.proof_s.get(model, Ewma(5.0)).value
            waves = math.ceil(queued / self.workers)  # proofs ahead of ours, drained `workers` at a time
            work = inference + proof + proof * waves
        p = self.pricing
        return max(1, math.ceil(work * p.latency_slack + p.restart_s + p.delivery_s))

    def offer(
        self, model: str, *, max_price: int, queued: int, now: int, deadline: int, optimistic: bool = False
    ) -> Offer:
        """The offer for one intent, or the refusal reason."""
        cost = self.cost(model)
        latency = self.latency_s(model, queued=queued, optimistic=optimistic)
        if cost > max_price:
            return Offer(
                cost=cost, latency_s=latency, refusal=f"below cost: maxPrice {max_price} < cost {cost}"
            )
        if now + latency > deadline:
            return Offer(
                cost=cost,
                latency_s=latency,
                refusal=f"deadline too tight: need {latency}s, {deadline - now}s left",
            )
        factor = 1 + self.pricing.margin + self.pricing.queue_penalty * queued
        price = min(max_price, max(cost, math.ceil(cost * factor)))
        return Offer(price=price, cost=cost, latency_s=latency)
