"""The verifier agent as keeper, on a real Anvil with the real markets: a job left open past its
auction is awarded (a reverse auction with bids, before its deadline) or refunded, so no escrow
stays stuck; an award a reorg took back (before the agent's feed read its block) is sent again
and the job settles with its honest provider unslashed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tender.chain import JobState, resync_nonces
from tender.config import ChainSection
from tender.intents import AuctionType, Bid, ProofMode
from tests.harness.verifier import UNIT, Env, samples
from verifier import VerifierConfig, VerifierSection
from verifier._agent import Agent
from verifier._models import witness_outputs

pytestmark = pytest.mark.slow

GRACE = 10  # VerifierSection.keeper_grace_s's default


def make_agent(env: Env, deployment_file: Path, tmp_path: Path, **settings: object) -> Agent:
    config = VerifierConfig(
        chain=ChainSection(rpc_url=env.chain.rpc_url, deployment=deployment_file),
        verifier=VerifierSection(store=tmp_path / "agent.db", poll_interval_s=0.05, **settings),  # type: ignore[arg-type]
    )
    agent = Agent(config, key=env.agent_key)
    agent._setup_sync()
    return agent


def _reverse_job(env: Env, x: list[float], *, bid: bool, window: int = 60, deadline_s: int = 3_600) -> bytes:
    """Post a reverse auction for ``x`` (and, if ``bid``, the provider's own bid on it)."""
    intent = env.intent(
        x,
        mode=ProofMode.OPTIMISTIC,
        auction_type=AuctionType.REVERSE,
        start_price=0,
        auction_window=window,
        deadline=env.now() + deadline_s,
    )
    job = env.requester.reverse.job_id(intent)
    env.requester.reverse.post(intent)
    if bid:
        env.provider.reverse.bid(job, Bid(env.provider.address, 5 * UNIT, 300))
    return job


def _kinds(agent: Agent, job: bytes) -> list[tuple[str, str]]:
    return [(a.kind, a.status) for a in agent.store.actions(job_id="0x" + job.hex())]


def _events(env: Env, job: bytes, name: str) -> int:
    return len(list(env.requester.reverse.events(names=[name], job_id=job)))


def test_an_award_reorged_out_before_the_feed_read_it_is_sent_again_and_the_job_settles(
    env: Env, deployment_file: Path, tmp_path: Path
) -> None:
    """Issue 16's lost reorg trials: nobody closes a reverse auction (its solver never awards,
    or a reorg took its award back). The keeper waits ``keeper_grace_s`` past the auction's end,
    then awards it; ``anvil_reorg`` drops that award's block before the agent's feed read it
    (so no rollback tells the agent). The job is Open again: the agent reads the chain, forgets
    the award the chain no longer has and awards again; the provider delivers, the agent
    finalizes, and nobody is slashed."""
    agent = make_agent(env, deployment_file, tmp_path)
    x = samples()[1]
    job = _reverse_job(env, x, bid=True)
    agent.step()
    env.advance(61)  # the auction is over: its solver's turn first
    agent.step()
    assert _kinds(agent, job) == []
    assert env.requester.reverse.job(job).state is JobState.OPEN
    env.advance(GRACE)
    agent.step()
    assert _kinds(agent, job) == [("award", "mined")]
    awarded = env.requester.reverse.job(job)
    assert (awarded.state, awarded.provider) == (JobState.AWARDED, env.provider.address)
    (action,) = agent.store.actions(job_id="0x" + job.hex())
    assert action.tx_hash is not None
    awarded_in = int(env.w3.eth.get_transaction_receipt(action.tx_hash)["blockNumber"])
    assert (agent.store.cursor or 0) < awarded_in  # the agent's feed never read the award's block
    env.chain.rpc("anvil_reorg", [env.w3.eth.block_number - awarded_in + 1, []])
    resync_nonces(env.w3)
    assert env.requester.reverse.job(job).state is JobState.OPEN  # the bid stands, the award is gone
    agent.step()
    again = env.requester.reverse.job(job)
    assert (again.state, again.provider) == (JobState.AWARDED, env.provider.address)
    (action,) = agent.store.actions(job_id="0x" + job.hex())
    assert (action.kind, action.status) == ("award", "mined")
    assert env.w3.eth.get_transaction_receipt(action.tx_hash)["status"] == 1  # type: ignore[arg-type]
    # the honest provider delivers; the agent judges it right and finalizes after the window
    env.provider.reverse.deliver(job, witness_outputs(env.bundle, x), b"")
    agent.step()
    env.advance(121)
    agent.step()
    agent.step()
    assert env.requester.reverse.job(job).state is JobState.SETTLED
    assert _events(env, job, "Awarded") == 1  # on the chain that stands
    assert _events(env, job, "Expired") == _events(env, job, "Slashed") == 0


def test_jobs_nobody_can_award_are_refunded_after_the_grace(
    env: Env, deployment_file: Path, tmp_path: Path
) -> None:
    """A reverse auction without bids, a Dutch auction nobody filled, and a reverse auction with
    a bid but past its deadline (``award`` reverts ``DeadlinePassed``): each is refunded by the
    keeper once ``keeper_grace_s`` past its auction; the requester is credited every escrow."""
    agent = make_agent(env, deployment_file, tmp_path)
    no_bids = _reverse_job(env, samples()[0], bid=False)
    late = _reverse_job(env, samples()[2], bid=True, deadline_s=400)
    dutch_intent = env.intent(samples()[3], mode=ProofMode.OPTIMISTIC, auction_window=60)
    dutch = env.requester.market.job_id(dutch_intent)
    env.requester.market.post(dutch_intent)
    owed = env.requester.reverse.owed(env.requester.address), env.requester.market.owed(env.requester.address)
    agent.step()
    env.advance(61)
    agent.step()  # within the grace: the solvers' turn
    assert [_kinds(agent, j) for j in (no_bids, late, dutch)] == [[], [], []]
    env.advance(400)  # past the grace, and past the late job's deadline
    agent.step()
    for job in (no_bids, late, dutch):
        assert _kinds(agent, job) == [("refund", "mined")]
    assert env.requester.reverse.job(no_bids).state is JobState.REFUNDED
    assert env.requester.reverse.job(late).state is JobState.REFUNDED
    assert env.requester.market.job(dutch).state is JobState.REFUNDED
    escrow = env.requester.reverse.escrow_for(10 * UNIT)
    assert env.requester.reverse.owed(env.requester.address) == owed[0] + 2 * escrow
    dutch_escrow = env.requester.market.escrow_for(10 * UNIT)
    assert env.requester.market.owed(env.requester.address) == owed[1] + dutch_escrow
    agent.step()
    assert {row.state for row in agent.store.jobs()} == {JobState.REFUNDED}  # as the feed folds them


def test_the_keeper_can_be_turned_off(env: Env, deployment_file: Path, tmp_path: Path) -> None:
    agent = make_agent(env, deployment_file, tmp_path, award=False, refund=False)
    job = _reverse_job(env, samples()[0], bid=True)
    agent.step()
    env.advance(61 + GRACE + 5)
    agent.step()
    assert _kinds(agent, job) == []
    assert env.requester.reverse.job(job).state is JobState.OPEN
