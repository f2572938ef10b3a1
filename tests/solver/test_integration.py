"""Solvers against a real Tender deployment on Anvil, with stub providers over HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest

from solver._policy import BPS
from solver._solver import Solver
from solver._store import JobState, Store, TxState
from tender.intents import AuctionType, Intent

from .conftest import SOLVER_KEYS, Env, Running, wait_until


def _settled(env: Env, job_ids: list[str], auction: AuctionType) -> bool:
    return all(env.job(auction, j).state == "settled" for j in job_ids)


def _best_provider(env: Env, intent: Intent) -> str:
    """The provider whose quote scores best under the intent's own weights."""
    max_latency = intent.deadline - (intent.deadline - 600)  # deadline - auctionEnd
    w = intent.price_weight_bps

    def score(stub) -> int:  # type: ignore[no-untyped-def]
        return w * stub.price * max_latency + (BPS - w) * stub.latency_s * intent.max_price

    return min(env.stubs, key=score).address


def _report(env: Env, jobs: dict[AuctionType, list[str]], stores: list[Store]) -> None:
    """Print where each job stands on chain and in each solver's store (for a failing run)."""
    for auction, ids in jobs.items():
        for job in ids:
            chain = env.job(auction, job)
            mine = [st.job(job) for st in stores]
            print(
                auction.name,
                job[:10],
                chain.state,
                [(r.state.value, r.provider, r.last_bidder, r.note) if r else None for r in mine],
            )


def test_one_solver_serves_one_reverse_intent(env: Env, tmp_path: Path) -> None:
    solver = Solver(env.solver_section(tmp_path / "a.sqlite"), env.chain_section(), key=SOLVER_KEYS[0],
                    deployment=env.deployment)  # fmt: skip
    with Running([solver]):
        intent = env.intent(AuctionType.REVERSE, window=3)
        job = env.post(intent)
        wait_until(lambda: _settled(env, [job], AuctionType.REVERSE), timeout=120)
    store = Store(tmp_path / "a.sqlite")
    row = store.job(job)
    assert row is not None
    assert row.state == JobState.SETTLED
    assert row.provider == _best_provider(env, intent)


@pytest.mark.slow
def test_two_solvers_three_providers_forty_intents(env: Env, tmp_path: Path) -> None:
    """20 intents per auction type; awards go to the best score; every job settles; no solver
    pays more (provider's quote + its own gas) than the market pays on a job it wins."""
    solvers = [
        Solver(
            env.solver_section(tmp_path / f"s{i}.sqlite", margin_bps=margin),
            env.chain_section(),
            key=key,
            deployment=env.deployment,
        )
        for i, (key, margin) in enumerate(zip(SOLVER_KEYS, (100, 300), strict=True))
    ]
    weights = [1_000 + 450 * i for i in range(20)]
    with Running(solvers):
        intents = {
            auction: [env.intent(auction, window=15, weight=w) for w in weights] for auction in AuctionType
        }
        jobs = {auction: [env.post(i) for i in batch] for auction, batch in intents.items()}
        try:
            for auction in AuctionType:
                wait_until(lambda a=auction: _settled(env, jobs[a], a), timeout=300, step=1.0)
        except AssertionError:
            _report(env, jobs, [s.store for s in solvers])
            raise
    for intent, job in zip(intents[AuctionType.REVERSE], jobs[AuctionType.REVERSE], strict=True):
        assert env.job(AuctionType.REVERSE, job).provider == _best_provider(env, intent)
    for job in jobs[AuctionType.DUTCH]:
        # A Dutch job goes to the first solver whose provider's cost the rising price covers:
        # the winner's quote is always covered by the price it was filled at (the fastest of the
        # covered providers wins when the solvers see the same block; under load a solver may fill
        # one block earlier, so only coverage is asserted here; tests/solver/test_policy.py
        # checks the choice among covered quotes).
        filled = env.job(AuctionType.DUTCH, job)
        covered = {s.address for s in env.stubs if s.price < filled.price}
        assert filled.provider in covered
    quotes = {s.address: s.price for s in env.stubs}
    won = 0
    for i in range(2):
        store = Store(tmp_path / f"s{i}.sqlite")
        for row in store.jobs(JobState.SETTLED):
            won += 1
            assert row.award_price is not None
            assert row.provider is not None
            gas_token = store.gas_spent(row.job_id)  # token_per_wei = 1
            assert row.award_price >= quotes[row.provider] + gas_token, row
        assert not store.txs(states=(TxState.SIGNED,))
    assert won >= 40
