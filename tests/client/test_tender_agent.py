"""The SDK drives a TenderAgent contract on a real Anvil with the real contracts.

The agent (owned by the client's key) posts through ``ask``; a provider bids, fills and
delivers by hand (a ``MockVerifier`` model: the proof is the instance vector); the client
follows the job and reads the output the market's callback stored in the agent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from eth_abi import encode as abi_encode
from hexbytes import HexBytes
from web3 import Web3

from tender.anvil import DEV_KEYS, Anvil
from tender.chain import (
    DEFAULT_PARAMS,
    Deployment,
    Market,
    ModelInfo,
    Registry,
    Staking,
    Token,
    TxSender,
    deploy,
    deploy_artifact,
    load_artifact,
)
from tender.client import AgentRejected, AgentResult, AgentResultMissing, Client, RequestRefunded
from tender.client._agent import AgentClient, callback_gas_for
from tender.errors import ArtifactError
from tender.intents import AuctionType, Bid, Intent, ProofMode, random_nonce

UNIT = 10**18
COMMITMENT = 0xC0FFEE
OUTPUT = (11, 22, 33)
PROOF = abi_encode(["uint256[]"], [[COMMITMENT, *OUTPUT]])  # what MockVerifier accepts


def _built() -> bool:
    try:
        for name in ("TenderAgent", "MockVerifier", "ReverseAuctionMarket", "DutchAuctionMarket"):
            load_artifact(name)
    except ArtifactError:
        return False
    return "addMarket" in {e.get("name") for e in load_artifact("TenderAgent").abi}


pytestmark = pytest.mark.skipif(not _built(), reason="contracts not built: run `make contracts`")


@dataclass
class Chain:
    anvil: Anvil
    w3: Web3
    deployment: Deployment
    model_id: bytes
    provider: TxSender
    agent: str

    def advance(self, seconds: int) -> None:
        self.anvil.rpc("evm_increaseTime", [seconds])
        self.anvil.rpc("evm_mine", [])

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def market(self, auction: AuctionType) -> Market:
        return Market(self.w3, self.deployment.market(auction), auction=auction, sender=self.provider)


@pytest.fixture(scope="module")
def chain() -> Iterator[Chain]:
    with Anvil() as anvil:
        w3 = Web3(Web3.HTTPProvider(anvil.rpc_url))
        deployment = deploy(w3, DEV_KEYS[0], params=DEFAULT_PARAMS)
        deployer = TxSender(w3, DEV_KEYS[0])
        verifier, _ = deploy_artifact(deployer, "MockVerifier")
        info = ModelInfo(
            onnx_sha256=b"\x01" * 32,
            settings_hash=b"\x02" * 32,
            verifier=verifier,
            commitment_index=0,
            output_offset=1,
            output_length=len(OUTPUT),
            instance_count=1 + len(OUTPUT),
            proof_modes=3,
            audit_rate_bps=0,
        )
        model_id = Registry(w3, deployment.registry, sender=deployer).register_model(info)
        provider = TxSender(w3, DEV_KEYS[2])
        token = Token(w3, deployment.token, sender=deployer)
        token.mint(provider.address, 1_000 * UNIT)
        token.mint(TxSender(w3, DEV_KEYS[1]).address, 100 * UNIT)
        Token(w3, deployment.token, sender=provider).approve(deployment.staking, 2**256 - 1)
        staking = Staking(w3, deployment.staking, sender=provider)
        staking.stake(1_000 * UNIT)
        staking.register_operator("http://127.0.0.1:9000", region=b"eu", models=[model_id])
        owner = TxSender(w3, DEV_KEYS[1])
        agent, _ = deploy_artifact(owner, "TenderAgent", deployment.market("reverse"), owner.address)
        yield Chain(anvil, w3, deployment, model_id, provider, agent)


@pytest.fixture
async def agent(chain: Chain) -> AsyncIterator[AgentClient]:
    client = Client(chain.anvil.rpc_url, DEV_KEYS[1], deployment=chain.deployment, poll_interval=0.05)
    try:
        handle = client.agent(chain.agent)
        await handle.ensure_markets()
        if await handle.balance() < 10 * UNIT:
            await handle.fund(10 * UNIT)
        yield handle
    finally:
        await client.aclose()


def _intent(chain: Chain, agent: AgentClient, auction: AuctionType, **changes: Any) -> Intent:
    now = chain.now()
    base = Intent(
        requester=agent.address,
        model_id=chain.model_id,
        input_commitment=COMMITMENT,
        input_location=b"[1,2,3]",
        max_price=UNIT,
        start_price=UNIT // 4 if auction is AuctionType.DUTCH else 0,
        auction_type=auction,
        auction_window=5,
        deadline=now + 600,
        proof_mode=ProofMode.ZK,
        callback_gas_limit=callback_gas_for(len(OUTPUT)),
        nonce=random_nonce(),
        expiry=now + 300,
    )
    return base.replace(**changes)


async def test_zk_reverse_job_settles_and_the_callback_stores_the_output(
    chain: Chain, agent: AgentClient
) -> None:
    before = await agent.balance() + (await agent.owed())["reverse"]
    intent = _intent(chain, agent, AuctionType.REVERSE)
    tracker = await agent.ask(intent)
    job = bytes(HexBytes(tracker.job_id))
    market = chain.market(AuctionType.REVERSE)
    assert market.job(job).requester == agent.address
    assert await agent.result(tracker.job_id) is None
    market.bid(job, Bid(provider=chain.provider.address, price=UNIT // 2, latency=60))
    chain.advance(6)  # auction window over: the job is awarded, then delivered
    market.award(job)
    delivered = market.deliver(job, OUTPUT, PROOF)
    result = await agent.follow(tracker, intent, timeout=30)
    assert isinstance(result, AgentResult)
    assert result.callback_output == list(OUTPUT) == result.output
    assert result.callback_gas_limit == intent.callback_gas_limit
    assert result.callback_tx == HexBytes(delivered["transactionHash"]).to_0x_hex()
    assert result.price_paid == UNIT // 2
    assert result.agent == agent.address
    assert await agent.result(tracker.job_id) == list(OUTPUT)
    # the agent paid price + fee; the rest of the escrow is credited to it in the market
    spent = UNIT // 2 + UNIT // 2 * DEFAULT_PARAMS.fee_bps // 10_000
    owed = (await agent.owed())["reverse"]
    escrow = intent.max_price + intent.max_price * DEFAULT_PARAMS.fee_bps // 10_000
    assert result.refund == escrow - spent
    assert owed >= result.refund
    assert result.market == chain.deployment.market("reverse")
    assert await agent.balance() + owed == before - spent
    withdrawn = await agent.withdraw()  # the owner brings the credit back into the agent
    assert [(w.auction, w.amount, w.account) for w in withdrawn] == [("reverse", owed, agent.address)]
    assert await agent.balance() == before - spent
    assert (await agent.owed())["reverse"] == 0
    assert result.to_json()["callback_output"] == [str(v) for v in OUTPUT]


async def test_a_refund_stays_in_the_market_and_pays_the_next_ask(chain: Chain, agent: AgentClient) -> None:
    intent = _intent(chain, agent, AuctionType.REVERSE)
    tracker = await agent.ask(intent)
    chain.advance(12)  # nobody bid: the client refunds the job itself once the window is well over
    with pytest.raises(RequestRefunded) as caught:
        await agent.follow(tracker, intent, timeout=30)
    assert caught.value.market == chain.deployment.market("reverse")
    assert "credited" in str(caught.value)
    owed = (await agent.owed())["reverse"]
    assert owed >= caught.value.refund == caught.value.credited > 0
    # with no tokens left in the agent, the next ask is paid from its credit in the market
    await agent.sweep(agent.client.address, await agent.balance())
    assert await agent.balance() == 0
    await agent.ask(_intent(chain, agent, AuctionType.REVERSE))
    assert (await agent.owed())["reverse"] == owed - caught.value.refund
    assert await agent.balance() == 0
    # nothing owed: withdraw() has nothing to do, withdrawing from a named market is refused by name
    if owed > caught.value.refund:
        await agent.withdraw("reverse")
    assert await agent.withdraw() == []
    with pytest.raises(AgentRejected) as refused:
        await agent.withdraw("reverse")
    assert refused.value.error == "NothingOwed"


async def test_optimistic_dutch_job_calls_back_at_finalize(chain: Chain, agent: AgentClient) -> None:
    intent = _intent(chain, agent, AuctionType.DUTCH, proof_mode=ProofMode.OPTIMISTIC)
    tracker = await agent.ask(intent)
    job = bytes(HexBytes(tracker.job_id))
    market = chain.market(AuctionType.DUTCH)
    market.fill(job, chain.provider.address, 60)
    market.deliver(job, OUTPUT)
    assert await agent.result(tracker.job_id) is None  # not before the challenge window closes
    chain.advance(DEFAULT_PARAMS.challenge_window + 1)
    result = await agent.follow(tracker, intent, timeout=30)  # the client finalizes it itself
    assert result.callback_output == list(OUTPUT)
    assert "settled" in result.tx_hashes
    assert result.callback_tx == result.tx_hashes["settled"]


async def test_a_callback_without_enough_gas_raises_callback_failed(chain: Chain, agent: AgentClient) -> None:
    intent = _intent(chain, agent, AuctionType.DUTCH, callback_gas_limit=30_000)
    tracker = await agent.ask(intent)
    job = bytes(HexBytes(tracker.job_id))
    market = chain.market(AuctionType.DUTCH)
    market.fill(job, chain.provider.address, 60)
    market.deliver(job, OUTPUT, PROOF)
    with pytest.raises(AgentResultMissing) as caught:
        await agent.follow(tracker, intent, timeout=30)
    assert caught.value.job_id == tracker.job_id
    assert caught.value.result is not None
    assert caught.value.result.output == list(OUTPUT)
    assert await agent.result(tracker.job_id) is None


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"callback_gas_limit": 0}, "NoCallbackGas"),
        ({"max_price": 10_000 * UNIT}, "InsufficientBalance"),
        ({"requester": "0x" + "22" * 20}, "NotRequester"),
        ({"callback_gas_limit": 2_000_000}, "CallbackGasTooHigh"),  # the market's, bubbled up
    ],
)
async def test_bad_asks_raise_agent_rejected(
    chain: Chain, agent: AgentClient, change: dict[str, Any], error: str
) -> None:
    with pytest.raises(AgentRejected) as caught:
        await agent.ask(_intent(chain, agent, AuctionType.REVERSE, **change))
    assert caught.value.error == error
    assert caught.value.agent == agent.address


async def test_only_the_owner_may_ask(chain: Chain) -> None:
    stranger = Client(chain.anvil.rpc_url, DEV_KEYS[3], deployment=chain.deployment)
    try:
        other = stranger.agent(chain.agent)
        with pytest.raises(AgentRejected) as caught:
            await other.ask(_intent(chain, other, AuctionType.REVERSE))
        assert caught.value.error == "OwnableUnauthorizedAccount"
    finally:
        await stranger.aclose()


def test_callback_gas_grows_with_the_output() -> None:
    assert callback_gas_for(10) > callback_gas_for(3) > 0
    assert asyncio.iscoroutinefunction(AgentClient.request)
