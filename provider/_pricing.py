"""Quotes: what a job costs us, what we ask, and how long we promise.

``cost = gpu_hour_cost * compute_s / 3600 + proof_cost`` where ``compute_s`` is the measured
inference plus proving time of the model; ``price = cost * (1 + margin + queue_penalty * queued)``,
never under cost and never over the intent's ``maxPrice`` (then we refuse instead).

The promised latency is what the node will really need, from in-memory counters only (a quote
makes no I/O)::

    latency = (inference + proof) * latency_slack + wait + restart + delivery

``inference`` and ``proof`` are what this machine took lately (the highest of the last
:data:`RECENT` measurements, so a machine that just got busier promises for how busy it is now,
not for its average), ``wait`` is when a proving worker frees up for ours after the proofs
``ahead`` of it (each one the measured proof time of its own model, spread over ``workers``;
already a recent highest, so not multiplied by the slack again),
``restart`` the headroom for a restart mid-job (``restart_s``, or what this node's own start-up
took when that was longer) and ``delivery`` the time a delivery
transaction took to be mined lately (at least ``delivery_s``). An optimistic job is delivered
from EZKL's witness without a proof (one is made only if it is challenged or audited, within
the proof window the market gives then), so its promise is the inference and the witness.
When the promise does not fit before the intent's deadline the node declines to quote.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Sequence
from dataclasses import dataclass

from provider._config import PricingSection

#: How many recent measurements the promised latency takes the highest of.
RECENT = 8


class Ewma:
    """An exponentially weighted moving average seeded with a prior (what a job costs), and the
    highest of the last :data:`RECENT` samples (what to promise)."""

    def __init__(self, prior: float, *, alpha: float = 0.2) -> None:
        self.value = prior
        self.alpha = alpha
        self.samples = 0
        self._recent: collections.deque[float] = collections.deque(maxlen=RECENT)

    def add(self, sample: float) -> None:
        self.value = sample if self.samples == 0 else self.alpha * sample + (1 - self.alpha) * self.value
        self.samples += 1
        self._recent.append(sample)

    @property
    def high(self) -> float:
        """What to promise on: the highest of the recent samples (the prior before any)."""
        return max(self._recent) if self._recent else self.value


@dataclass(frozen=True, slots=True)
class Offer:
    """A computed offer: price and latency, or the reason there is none."""

    price: int = 0
    cost: int = 0
    latency_s: int = 0
    refusal: str | None = None


#: Priors until the node has measured its own: inference, witness and proof seconds per job.
INFERENCE_PRIOR_S, WITNESS_PRIOR_S, PROOF_PRIOR_S = 0.05, 0.5, 5.0


def start_after(ahead: Sequence[float], workers: int) -> float:
    """Seconds until one of ``workers`` proving workers is free for a new proof, with the
    proofs ``ahead`` (their durations) handed out first, each to the worker free soonest."""
    free = [0.0] * max(1, workers)
    for seconds in ahead:
        soonest = free.index(min(free))
        free[soonest] += seconds
    return min(free)


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
        self.witness_s: dict[str, Ewma] = {}
        self.proof_s: dict[str, Ewma] = {}
        self.delivery_s = Ewma(pricing.delivery_s)
        self.startup_s = 0.0  # measured start-up of this node (0: not measured)

    def observe(
        self,
        model: str,
        *,
        inference_s: float | None = None,
        proof_s: float | None = None,
        witness_s: float | None = None,
    ) -> None:
        if inference_s is not None:
            self.inference_s.setdefault(model, Ewma(INFERENCE_PRIOR_S)).add(inference_s)
        if witness_s is not None:
            self.witness_s.setdefault(model, Ewma(WITNESS_PRIOR_S)).add(witness_s)
        if proof_s is not None:
            self.proof_s.setdefault(model, Ewma(PROOF_PRIOR_S)).add(proof_s)

    def observe_startup(self, seconds: float) -> None:
        """This node took ``seconds`` from its process start to serving: a restart mid-job takes
        about as long, so the promise's restart headroom is at least that."""
        self.startup_s = seconds

    def observe_delivery(self, seconds: float) -> None:
        """A delivery transaction took ``seconds`` from sending to its receipt."""
        self.delivery_s.add(seconds)

    def compute_s(self, model: str) -> float:
        inference = self.inference_s.get(model, Ewma(INFERENCE_PRIOR_S)).value
        proof = self.proof_s.get(model, Ewma(PROOF_PRIOR_S)).value
        return inference + proof

    def proof_estimate(self, model: str) -> float:
        """Seconds a proof of ``model`` takes lately (what a job waiting behind it waits)."""
        return self.proof_s.get(model, Ewma(PROOF_PRIOR_S)).high

    def cost(self, model: str) -> int:
        p = self.pricing
        return math.ceil(p.gpu_hour_cost * self.compute_s(model) / 3600) + p.proof_cost

    def latency_s(
        self, model: str, *, queued: int = 0, ahead: Sequence[float] | None = None, optimistic: bool = False
    ) -> int:
        """Seconds to promise for one job. ``ahead``: the durations of the proofs it would wait
        behind (``None``: ``queued`` proofs of ``model``)."""
        inference = self.inference_s.get(model, Ewma(INFERENCE_PRIOR_S)).high
        waiting = 0.0
        if optimistic:
            work = inference + self.witness_s.get(model, Ewma(WITNESS_PRIOR_S)).high
        else:
            proof = self.proof_estimate(model)
            waiting = start_after([proof] * queued if ahead is None else ahead, self.workers)
            work = inference + proof
        p = self.pricing
        delivery = max(p.delivery_s, self.delivery_s.high)
        restart = max(p.restart_s, self.startup_s)
        return max(1, math.ceil(work * p.latency_slack + waiting + restart + delivery))

    def offer(
        self,
        model: str,
        *,
        max_price: int,
        queued: int,
        now: int,
        deadline: int,
        optimistic: bool = False,
        ahead: Sequence[float] | None = None,
    ) -> Offer:
        """The offer for one intent, or the refusal reason."""
        cost = self.cost(model)
        latency = self.latency_s(model, queued=queued, ahead=ahead, optimistic=optimistic)
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
