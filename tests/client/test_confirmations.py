"""The SDK reports a result as final only after ``Client(confirmations=N)`` blocks, and follows a
reorg that takes the settlement back instead of having reported it: on a real Anvil with the real
MLP (a zk delivery settles in its own transaction), ``anvil_reorg`` dropping the settlement."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest

from tender.anvil import DEV_KEYS, Anvil
from tender.chain import JobState, load_artifact, resync_nonces
from tender.client._client import Client
from tender.client._tracker import JobTracker
from tender.errors import ArtifactError
from tender.intents import ProofMode
from tests._proxy import OutageProxy
from tests.harness.verifier import Env, make_env, samples


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    try:
        load_artifact("DutchAuctionMarket")
    except ArtifactError:
        pytest.skip("Tender contracts not built: run `make contracts`")
    with Anvil() as chain:  # mines only when a transaction comes: the test moves the head itself
        yield make_env(chain)


async def _until(predicate: Callable[[], bool], *, within_s: float = 60.0) -> None:
    for _ in range(int(within_s / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not true within {within_s} s")


async def _settle_once_more(env: Env, job: bytes) -> int:
    """The provider delivers (zk: the delivery settles); the block it landed in."""
    await asyncio.to_thread(env.deliver_zk, job, 0)
    return int(env.w3.eth.block_number)


@pytest.mark.timeout(600)
async def test_settlement_is_final_after_two_confirmations_and_a_reorg_that_drops_it_is_followed(
    env: Env,
) -> None:
    intent = env.intent(samples()[0], mode=ProofMode.ZK)
    job = env.requester.market.job_id(intent)
    env.requester.market.post(intent)
    env.provider.market.fill(job, env.provider.address, 300)
    async with Client(
        env.chain.rpc_url,
        DEV_KEYS[1],
        deployment=env.deployment,
        self_help=False,
        confirmations=2,
        poll_interval=0.05,
    ) as client:
        tracker = JobTracker(job_id="0x" + job.hex())
        task = asyncio.create_task(client.follow(tracker, intent, None, verify=False, timeout=500))
        first = await _settle_once_more(env, job)
        await _until(lambda: tracker.state is JobState.SETTLED and tracker.head >= first)
        env.chain.rpc("evm_mine", [])  # one block on top of the settlement: not enough
        await _until(lambda: tracker.head >= first + 1)
        await asyncio.sleep(0.3)  # several polls: a result reported now would be reported early
        assert tracker.confirmations == 1
        assert not task.done()
        settled_tx = tracker.tx_hashes["settled"]

        env.chain.rpc("anvil_reorg", [2, []])  # the settlement's block and the next are replaced
        resync_nonces(env.w3)
        await _until(lambda: tracker.reorgs == 1)
        assert tracker.state is JobState.AWARDED  # back to pending: the request keeps following
        assert "settled" not in tracker.tx_hashes
        assert env.requester.market.job(job).state is JobState.AWARDED
        assert not task.done()

        again = await _settle_once_more(env, job)  # the provider follows the chain and delivers again
        await _until(lambda: tracker.state is JobState.SETTLED and tracker.head >= again)
        await asyncio.sleep(0.3)
        assert not task.done()
        env.chain.rpc("evm_mine", [])
        env.chain.rpc("evm_mine", [])
        result = await asyncio.wait_for(task, timeout=120)
    assert result.reorgs == 1
    assert result.confirmations >= 2
    assert result.tx_hashes["settled"] != settled_tx
    assert result.price_paid > 0


@pytest.mark.timeout(600)
async def test_an_rpc_outage_while_following_is_retried_until_the_job_settles(env: Env) -> None:
    """The client's RPC goes through an :class:`~tests._proxy.OutageProxy`; it goes down while
    the job is awarded, the provider delivers meanwhile, and the request still ends settled once
    the node answers again (the poll errors were retried, not fatal)."""
    intent = env.intent(samples()[1], mode=ProofMode.ZK)
    job = env.requester.market.job_id(intent)
    env.requester.market.post(intent)
    env.provider.market.fill(job, env.provider.address, 300)
    with OutageProxy(env.chain.rpc_url) as proxy:
        async with Client(
            proxy.url,
            DEV_KEYS[1],
            deployment=env.deployment,
            self_help=False,
            confirmations=1,
            poll_interval=0.05,
        ) as client:
            tracker = JobTracker(job_id="0x" + job.hex())
            task = asyncio.create_task(client.follow(tracker, intent, None, verify=False, timeout=500))
            await _until(lambda: tracker.state is JobState.AWARDED)
            proxy.go_down()
            hub = client._events()
            await _until(lambda: hub.failures >= 3)  # polls fail now, retried with a backoff
            await asyncio.to_thread(env.deliver_zk, job, 1)
            env.chain.rpc("evm_mine", [])
            await asyncio.sleep(0.3)
            assert not task.done()
            assert tracker.state is JobState.AWARDED  # the client cannot see it yet
            proxy.come_back()
            result = await asyncio.wait_for(task, timeout=120)
    assert result.price_paid > 0
    assert result.confirmations >= 1
    assert hub.error is None
