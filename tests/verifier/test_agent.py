"""The verifier agent on a real Anvil with the real MLP: re-execution, challenges, expiries,
finalization and the proof relay (EZKL proofs, onnxruntime, the Halo2 verifier contract)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tender.chain import JobState, resync_nonces
from tender.chain._tx import TxSender
from tender.config import ChainSection
from tender.intents import ProofMode
from tender.models import FIELD_MODULUS, prove
from tests.harness.verifier import Env, samples
from verifier import VerifierConfig, VerifierSection
from verifier._agent import Agent
from verifier._models import witness_outputs

pytestmark = pytest.mark.slow


def make_agent(env: Env, deployment_file: Path, tmp_path: Path, **settings: object) -> Agent:
    config = VerifierConfig(
        chain=ChainSection(rpc_url=env.chain.rpc_url, deployment=deployment_file),
        verifier=VerifierSection(store=tmp_path / "agent.db", poll_interval_s=0.05, **settings),  # type: ignore[arg-type]
    )
    agent = Agent(config, key=env.agent_key)
    agent._setup_sync()
    return agent


def wrong_output(env: Env, x: list[float]) -> list[int]:
    honest = witness_outputs(env.bundle, x)
    return [(honest[0] + 5 * 2**env.bundle.card.output_scale) % FIELD_MODULUS, *honest[1:]]


def test_wrong_optimistic_output_is_challenged_and_slashed(
    env: Env, deployment_file: Path, tmp_path: Path
) -> None:
    agent = make_agent(env, deployment_file, tmp_path)
    x = samples()[1]
    job = env.open_job(x, mode=ProofMode.OPTIMISTIC)
    env.deliver_optimistic(job, wrong_output(env, x))
    balance_before = env.agent.token.balance_of(env.agent.address)
    agent.step()
    stored = env.requester.market.job(job)
    assert stored.state is JobState.CHALLENGED
    assert stored.challenger == env.agent.address
    row = agent.store.job("0x" + job.hex())
    assert row is not None
    assert row.verdict == "wrong"
    assert "not the circuit's output" in row.detail["reason"]
    # the provider cannot prove; after the proof window the agent slashes it
    env.advance(121)
    agent.step()
    agent.step()
    assert env.requester.market.job(job).state is JobState.SLASHED
    locked = stored.stake_locked
    reward = locked * agent.markets["dutch"].params().challenger_reward_bps // 10_000
    rewards = agent.store.rewards()
    assert rewards["challenge"] == reward
    assert rewards["gas_spent_wei"] < 0  # the challenge and the slash were paid for
    # the bond back is credited to the agent in the market, the reward (from the slashed stake)
    # in Staking: nothing is sent until the agent collects both
    bond = stored.challenge_bond
    assert env.agent.token.balance_of(env.agent.address) == balance_before - bond
    assert env.agent.market.owed(env.agent.address) == bond
    assert env.agent.staking.claimable(env.agent.address) == reward
    env.agent.market.withdraw()
    env.agent.staking.claim()
    assert env.agent.token.balance_of(env.agent.address) == balance_before + reward
    kinds = {(a.kind, a.status) for a in agent.store.actions()}
    assert kinds == {("challenge", "mined"), ("slash", "mined")}


def test_honest_output_is_left_alone_and_finalized(env: Env, deployment_file: Path, tmp_path: Path) -> None:
    agent = make_agent(env, deployment_file, tmp_path)
    x = samples()[2]
    job = env.open_job(x, mode=ProofMode.OPTIMISTIC)
    env.deliver_optimistic(job, witness_outputs(env.bundle, x))
    agent.step()
    assert env.requester.market.job(job).state is JobState.DELIVERED
    row = agent.store.job("0x" + job.hex())
    assert row is not None
    assert row.verdict == "right"
    env.advance(121)
    agent.step()
    agent.step()
    assert env.requester.market.job(job).state is JobState.SETTLED
    assert [(a.kind, a.status) for a in agent.store.actions()] == [("finalize", "mined")]


def test_challenged_honest_provider_proves_through_the_relay_and_is_paid(
    env: Env, deployment_file: Path, tmp_path: Path
) -> None:
    agent = make_agent(env, deployment_file, tmp_path)
    x = samples()[3]
    job = env.open_job(x, mode=ProofMode.OPTIMISTIC)
    env.deliver_optimistic(job, witness_outputs(env.bundle, x))
    env.bystander.market.challenge(job)  # a mistaken challenger
    agent.step()
    assert env.requester.market.job(job).state is JobState.CHALLENGED
    assert list(agent.store.actions()) == []  # the agent never challenges a right output
    # the provider lets the agent prove for it and hands it the proof
    env.provider.staking.set_solver(env.agent.address, True)
    provider_before = env.provider.market.owed(env.provider.address)
    proof = prove(env.bundle, x)
    status, tx = agent._relay_sync(job, env.deployment.market("dutch"), proof.proof)
    assert status == "mined"
    assert tx is not None
    stored = env.requester.market.job(job)
    assert stored.state is JobState.SETTLED
    bond = stored.challenge_bond
    # the provider is credited its price and the mistaken challenger's bond
    assert env.provider.market.owed(env.provider.address) == provider_before + stored.price + bond


def test_relay_refuses_a_bad_proof_over_http(env: Env, deployment_file: Path, tmp_path: Path) -> None:
    import asyncio

    from verifier._relay import make_app, start_site

    agent = make_agent(env, deployment_file, tmp_path)
    x = samples()[4]
    job = env.open_job(x, mode=ProofMode.OPTIMISTIC)
    env.deliver_optimistic(job, witness_outputs(env.bundle, x))
    env.bystander.market.challenge(job)
    env.provider.staking.set_solver(env.agent.address, True)
    other = prove(env.bundle, samples()[5])  # a valid proof, of another input

    async def scenario() -> tuple[int, dict[str, object]]:
        app = make_app(
            relay=agent.relay, health=agent.health, rewards=agent.store.rewards, max_proof_bytes=1 << 20
        )
        from tender.anvil import free_port

        port = free_port()
        runner = await start_site(app, f"127.0.0.1:{port}")
        try:
            async with httpx.AsyncClient() as client:
                reply = await client.post(
                    f"http://127.0.0.1:{port}/v1/prove",
                    json={
                        "jobId": "0x" + job.hex(),
                        "market": env.deployment.market("dutch"),
                        "proof": other.proof_hex,
                    },
                )
                return reply.status_code, reply.json()
        finally:
            await runner.cleanup()

    status, body = asyncio.run(scenario())
    assert status == 422
    assert body["error"] == "bad_proof"
    assert env.requester.market.job(job).state is JobState.CHALLENGED


def test_silent_provider_is_expired_and_requester_compensated(
    env: Env, deployment_file: Path, tmp_path: Path
) -> None:
    agent = make_agent(env, deployment_file, tmp_path)
    x = samples()[0]
    job = env.open_job(x, mode=ProofMode.ZK, latency=60)
    stored = env.requester.market.job(job)
    requester_before = env.requester.token.balance_of(env.requester.address)
    agent.step()
    assert list(agent.store.actions()) == []  # not due yet
    env.advance(61)
    agent.step()
    assert env.requester.market.job(job).state is JobState.EXPIRED
    escrow = agent.markets["dutch"].escrow_for(10 * 10**18)
    # the escrow is credited to the requester in the market, the compensation from the stake in Staking
    assert env.requester.token.balance_of(env.requester.address) == requester_before
    assert env.requester.market.owed(env.requester.address) == escrow
    assert env.requester.staking.claimable(env.requester.address) == stored.stake_locked
    assert [(a.kind.split(":")[0], a.status) for a in agent.store.actions()] == [("expire", "mined")]


def test_restart_rebroadcasts_a_stored_challenge_instead_of_signing_another(
    env: Env, deployment_file: Path, tmp_path: Path
) -> None:
    agent = make_agent(env, deployment_file, tmp_path)
    x = samples()[1]
    job = env.open_job(x, mode=ProofMode.OPTIMISTIC)
    env.deliver_optimistic(job, wrong_output(env, x))
    agent.scan()
    agent.judge_pending()
    # crash right after persisting the signed challenge, before it reached the node
    market = agent.markets["dutch"]
    tx, raw, tx_hash = agent.actions._sign(market.fn.challenge(job), value=0)
    agent.store.record_signed(
        "0x" + job.hex(),
        "challenge",
        tx_hash="0x" + tx_hash.hex(),
        raw_tx="0x" + raw.hex(),
        nonce=int(tx["nonce"]),
    )
    agent.store.close()
    restarted = make_agent(env, deployment_file, tmp_path)  # resumes: rebroadcasts the stored tx
    assert env.requester.market.job(job).state is JobState.CHALLENGED
    restarted.step()
    actions = list(restarted.store.actions())
    assert [(a.kind, a.status, a.tx_hash) for a in actions] == [("challenge", "mined", "0x" + tx_hash.hex())]
    assert TxSender(env.w3, env.agent_key).nonces.peek() == int(tx["nonce"]) + 1


def test_a_reorg_that_drops_a_delivery_is_forgotten(env: Env, deployment_file: Path, tmp_path: Path) -> None:
    """The agent judged a wrong delivery; a reorg drops it and the provider delivers the right output
    instead: the agent folds the job again from the new chain and challenges nothing."""
    agent = make_agent(env, deployment_file, tmp_path)
    x = samples()[2]
    job = env.open_job(x, mode=ProofMode.OPTIMISTIC)
    env.deliver_optimistic(job, wrong_output(env, x))
    agent.scan()
    agent.judge_pending()
    row = agent.store.job("0x" + job.hex())
    assert row is not None
    assert (row.state, row.verdict) == (JobState.DELIVERED, "wrong")
    env.chain.rpc("anvil_reorg", [1, []])  # drops the delivery's block
    resync_nonces(env.w3)
    assert env.requester.market.job(job).state is JobState.AWARDED
    agent.step()  # the job is folded again from the events that are left: awarded, never judged
    row = agent.store.job("0x" + job.hex())
    assert row is not None
    assert (row.state, row.verdict, row.detail.get("output")) == (JobState.AWARDED, None, None)
    honest = witness_outputs(env.bundle, x)
    env.deliver_optimistic(job, honest)
    agent.step()
    row = agent.store.job("0x" + job.hex())
    assert row is not None
    assert (row.state, row.verdict) == (JobState.DELIVERED, "right")
    assert row.detail["output"] == [str(v) for v in honest]
    assert list(agent.store.actions()) == []
    assert env.requester.market.job(job).state is JobState.DELIVERED


def test_a_reorg_that_drops_its_finalize_is_finalized_again(
    env: Env, deployment_file: Path, tmp_path: Path
) -> None:
    """The agent finalizes an honest delivery; ``anvil_reorg`` drops the block of that
    ``finalize`` (the delivery stays): the job is Delivered again, past its window. The agent
    folds the job again, forgets the action the chain no longer has and finalizes once more."""
    agent = make_agent(env, deployment_file, tmp_path)
    x = samples()[3]
    job = env.open_job(x, mode=ProofMode.OPTIMISTIC)
    env.deliver_optimistic(job, witness_outputs(env.bundle, x))
    agent.step()
    env.advance(121)
    agent.step()
    agent.step()
    assert env.requester.market.job(job).state is JobState.SETTLED
    (first,) = agent.store.actions(job_id="0x" + job.hex())
    assert (first.kind, first.status) == ("finalize", "mined")
    assert first.tx_hash is not None
    finalized_in = int(env.w3.eth.get_transaction_receipt(first.tx_hash)["blockNumber"])
    head = env.w3.eth.block_number
    env.chain.rpc("anvil_reorg", [head - finalized_in + 1, []])  # drops the finalize's block
    resync_nonces(env.w3)
    assert env.requester.market.job(job).state is JobState.DELIVERED
    agent.step()  # sees the fork, rebuilds the job, forgets the dropped finalize, finalizes again
    agent.step()
    assert env.requester.market.job(job).state is JobState.SETTLED
    (again,) = agent.store.actions(job_id="0x" + job.hex())
    assert (again.kind, again.status) == ("finalize", "mined")
    assert again.tx_hash is not None
    assert env.w3.eth.get_transaction_receipt(again.tx_hash)["status"] == 1
    settled = list(env.requester.market.events(names=["Settled"], job_id=job))
    assert len(settled) == 1  # on the chain that stands


def test_outage_between_signing_and_broadcasting_an_expiry_loses_nothing(
    env: Env, deployment_file: Path, tmp_path: Path
) -> None:
    """The agent's RPC goes through an :class:`~tests._proxy.OutageProxy` that goes down right
    after the agent stored a signed ``expire`` and before it broadcast it. Passes fail while the
    chain is unreachable (``/v1/health`` not ok, nothing lost); once it is back the agent sends
    the same transaction and catches up from its feed cursor."""
    from tests._proxy import OutageProxy

    with OutageProxy(env.chain.rpc_url) as proxy:
        config = VerifierConfig(
            chain=ChainSection(rpc_url=proxy.url, deployment=deployment_file),
            verifier=VerifierSection(store=tmp_path / "agent.db", poll_interval_s=0.05),
        )
        agent = Agent(config, key=env.agent_key)
        agent._setup_sync()
        job = env.open_job(samples()[0], mode=ProofMode.ZK, latency=60)
        agent.step()
        assert agent.health()["ok"] is True
        env.advance(61)
        agent.actions._on_persisted = lambda _job, _kind: proxy.go_down()
        agent.step()
        health = agent.health()
        assert health["ok"] is False
        assert "chain unreachable" in health["reasons"][0]
        assert [(a.kind.split(":")[0], a.status) for a in agent.store.actions()] == [("expire", "signed")]
        signed = next(iter(agent.store.actions())).tx_hash
        assert env.requester.market.job(job).state is JobState.AWARDED  # nothing reached the chain
        agent.actions._on_persisted = None
        agent.step()  # still down: the pass fails again, the stored action waits
        assert agent.health()["ok"] is False
        proxy.come_back()
        env.advance(5)  # the chain moved on meanwhile
        agent.step()
        assert agent.health()["ok"] is True
    assert env.requester.market.job(job).state is JobState.EXPIRED
    assert [(a.kind.split(":")[0], a.status, a.tx_hash) for a in agent.store.actions()] == [
        ("expire", "mined", signed)
    ]
    assert agent.store.cursor == env.w3.eth.block_number
