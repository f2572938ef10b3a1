"""The typed wrappers against the deployed contracts: views, structs, event filters, retries."""

from __future__ import annotations

import pytest
import requests
from chain_env import OUTPUT, TenderEnv

from tender.chain import (
    Contracts,
    IntentPosted,
    JobState,
    ModelInfo,
    ModelRegistered,
    Operator,
    Redeemed,
    Staked,
    Unstaked,
)
from tender.chain._deploy import DEFAULT_PARAMS
from tender.chain._tx import with_retries
from tender.errors import ContractRevert
from tender.intents import AuctionType


def test_contracts_facade_picks_markets(env: TenderEnv) -> None:
    tender = Contracts.load(env.w3, env.deployment, sender=env.requester.sender)
    assert tender.market(AuctionType.DUTCH).auction_type() is AuctionType.DUTCH
    assert tender.market(0).auction_type() is AuctionType.REVERSE
    assert tender.market_at(env.deployment.market("dutch")) is tender.dutch
    assert tender.dutch.params() == DEFAULT_PARAMS
    assert tender.dutch.token() == env.deployment.token
    assert tender.dutch.staking() == env.deployment.staking
    other = tender.using(env.relayer.sender)
    assert other.reverse.sender is env.relayer.sender
    assert tender.reverse.sender is env.requester.sender


def test_model_registry_round_trip(env: TenderEnv) -> None:
    info = env.deployer.registry.model(env.model_id)
    assert info.owner == env.deployer.address
    assert info.output_length == len(OUTPUT)
    assert info.model_id(env.deployer.address) == env.model_id
    assert env.deployer.registry.compute_model_id(env.deployer.address, info) == env.model_id
    assert env.deployer.registry.proof_modes_of(env.model_id) == 3
    new = ModelInfo(
        onnx_sha256=b"\x09" * 32,
        settings_hash=b"\x08" * 32,
        verifier=env.verifier,
        commitment_index=0,
        output_offset=1,
        output_length=1,
        instance_count=2,
        proof_modes=1,
    )
    receipt = env.relayer.registry.register(new)
    (event,) = env.relayer.registry.events_in(receipt)
    assert isinstance(event, ModelRegistered)
    assert event.model_id == new.model_id(env.relayer.address)
    assert event.info.owner == env.relayer.address
    with pytest.raises(ContractRevert) as caught:
        env.relayer.registry.register(new)
    assert caught.value.name == "DuplicateModel"
    with pytest.raises(ContractRevert) as caught:
        env.relayer.registry.model(b"\x00" * 32)
    assert caught.value.name == "UnknownModel"


def test_staking_views_and_unstaking(env: TenderEnv) -> None:
    staking = env.provider.staking
    me = env.provider.address
    operator = staking.operator(me)
    assert operator == Operator("http://127.0.0.1:9000", b"eu", bytes(32), (env.model_id,), True)
    assert staking.is_authorized(me, env.solver.address)
    assert staking.is_market(env.deployment.market("dutch"))
    stake = staking.stake_of(me)
    receipt = staking.unstake(10)
    (event,) = [e for e in staking.events_in(receipt) if isinstance(e, Unstaked)]
    assert event.amount == 10
    assert staking.unstaking_of(me) == (10, event.ready_at)
    assert staking.available_of(me) == stake - 10
    with pytest.raises(ContractRevert) as caught:
        staking.redeem()
    assert caught.value.name == "UnstakingNotReady"
    env.advance(staking.unstaking_delay() + 1)
    receipt = staking.redeem()
    assert any(isinstance(e, Redeemed) and e.amount == 10 for e in staking.events_in(receipt))
    assert staking.stake_of(me) == stake - 10
    assert [e for e in staking.events(env.deployment.block, names=["Staked"]) if isinstance(e, Staked)]


def test_events_filter_by_job_id(env: TenderEnv) -> None:
    market = env.requester.dutch
    first, second = env.intent(AuctionType.DUTCH), env.intent(AuctionType.DUTCH)
    start = env.w3.eth.block_number + 1
    market.post(first)
    market.post(second)
    job = market.job_id(second)
    events = list(market.events(start, job_id=job))
    assert [type(e) for e in events] == [IntentPosted]
    assert isinstance(events[0], IntentPosted)
    assert events[0].job_id == job
    assert len(list(market.events(start, names=["IntentPosted"], chunk=1))) == 2
    assert market.job(job).state is JobState.OPEN
    assert market.job(b"\x00" * 32).state is JobState.NONE


def test_with_retries_retries_transient_errors_only() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise requests.ConnectionError("connection reset")
        return "ok"

    assert with_retries(flaky, retries=3, backoff=0.0) == "ok"
    assert len(calls) == 3

    def broken() -> None:
        raise ValueError("not transient")

    with pytest.raises(ValueError, match="not transient"):
        with_retries(broken, retries=3, backoff=0.0)
