"""The devnet's workload: which requests to send, deterministic for a seed.

A default run mixes auction types, proof modes, both sample models and three ways in
(EIP-712 signed via the solvers, the requester's own on-chain ``post``, the TenderAgent
consumer contract), and, when faults are on, adds requests aimed at the misbehaving provider
(by region and minimum stake only it meets): one it accepts and never delivers (expiry and
slash), one optimistic job it answers wrongly (challenge and slash), and one lowball intent no
provider takes (refund).
"""

from __future__ import annotations

import dataclasses
import json
import random
from dataclasses import dataclass
from typing import Any

from tender.paths import SAMPLE_MODELS

__all__ = ["Planned", "plan_workload", "sample_input"]

TOKEN = 10**18


@dataclass(frozen=True)
class Planned:
    """One request to send.

    Attributes:
        kind: ``"normal"``, ``"silent"`` (aimed at the provider that goes silent), ``"wrong"``
            (aimed at it for a wrong optimistic output) or ``"lowball"`` (nobody takes it).
        delay_s: when to send it, from the start of the workload.
        targeted: aimed at the misbehaving provider (its region and stake).
    """

    index: int
    model: str
    auction: str
    proof_mode: str
    source: str
    max_price: int
    delay_s: float
    kind: str = "normal"
    deadline_s: int = 90

    @property
    def targeted(self) -> bool:
        return self.kind in ("silent", "wrong")


def plan_workload(
    requests: int,
    *,
    seed: int = 0,
    faults: bool = True,
    agent_share: float = 0.15,
    onchain_share: float = 0.15,
    rate_per_s: float = 2.0,
) -> list[Planned]:
    """The requests of one run, in sending order.

    Args:
        requests: how many in all (fault requests included).
        seed: the random seed (same seed, same workload).
        faults: include the requests aimed at the misbehaving provider and a lowball one.
        agent_share: share sent by the TenderAgent contract (at least one request when
            above 0), with a callback gas limit so that the market pushes the result to it.
            onchain_share: share posted on-chain by the requester itself. rate_per_s: mean
            arrival rate.
    """
    rng = random.Random(seed)
    special: list[str] = []
    if faults and requests >= 3:
        special = ["silent", "wrong", "lowball"]
    plan: list[Planned] = []
    t = 0.0
    # The faults go first so that the misbehaving provider's first and second jobs are the
    # ones aimed at it (its misbehave knobs count jobs).
    for kind in special:
        index = len(plan)
        if kind == "silent":
            plan.append(
                Planned(index, "mlp", "reverse", "zk", "signed", 2 * TOKEN // 10, t, kind, deadline_s=60)
            )
        elif kind == "wrong":
            plan.append(Planned(index, "mlp", "reverse", "optimistic", "signed", 2 * TOKEN // 10, t, kind))
        else:
            plan.append(Planned(index, "cnn", "reverse", "zk", "onchain", 1, t, kind, deadline_s=5))
        t += 1.5
    for index in range(len(plan), requests):
        roll = rng.random()
        source = (
            "agent" if roll < agent_share else "onchain" if roll < agent_share + onchain_share else "signed"
        )
        max_price = rng.randint(5, 20) * TOKEN // 100  # 0.05 .. 0.20 tokens
        plan.append(
            Planned(
                index=index,
                model="mlp" if rng.random() < 0.6 else "cnn",
                auction="dutch" if rng.random() < 0.45 else "reverse",
                proof_mode="optimistic" if rng.random() < 0.35 else "zk",
                source=source,
                max_price=max_price,
                delay_s=round(t, 3),
            )
        )
        t += rng.expovariate(rate_per_s)
    normal = [p for p in plan if p.kind == "normal"]
    if agent_share > 0 and normal and not any(p.source == "agent" for p in normal):
        # Even a small run shows the on-chain agent: its first normal request goes through it.
        first = normal[0]
        plan[first.index] = dataclasses.replace(first, source="agent")
    return plan


_SAMPLES: dict[str, list[Any]] = {}


def sample_input(model: str, index: int) -> Any:
    """The sample model's input for request ``index`` (its ``samples.json``, in turn)."""
    if model not in _SAMPLES:
        _SAMPLES[model] = [
            s["input"] for s in json.loads((SAMPLE_MODELS / model / "samples.json").read_text())["samples"]
        ]
    samples = _SAMPLES[model]
    return samples[index % len(samples)]
