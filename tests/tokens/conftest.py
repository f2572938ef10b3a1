"""Fixtures of the token tests: the models, the re-executors' backends, and one Anvil world per module."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import onnxruntime as ort
import pytest
from web3 import Web3

from tender.anvil import DEV_KEYS, Anvil
from tender.chain import Registry, TokenModelConfig, deploy, deploy_token_market, resync_nonces
from tender.paths import SAMPLE_MODELS
from tender.tokens import TokenModel
from tests.tokens._world import (
    AUDITED_ID,
    AUDITED_INFO,
    BOND,
    FUNDS,
    LM_INFO,
    MODEL_ID,
    STAKE,
    WINDOW,
    World,
    party,
)


@pytest.fixture(scope="module")
def lm() -> TokenModel:
    return TokenModel.load(SAMPLE_MODELS / "lm")


@pytest.fixture(scope="module")
def cheap() -> TokenModel:
    return TokenModel.load(SAMPLE_MODELS / "lm-cheap")


@pytest.fixture(scope="module")
def backends() -> list[TokenModel]:
    """The re-executors' backends: none is the provider's (default session, one thread)."""
    folder = SAMPLE_MODELS / "lm"
    return [
        TokenModel.load(folder, optimization=ort.GraphOptimizationLevel.ORT_DISABLE_ALL, threads=2),
        TokenModel.load(folder, optimization=ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, threads=1),
        TokenModel.load(folder, optimization=ort.GraphOptimizationLevel.ORT_DISABLE_ALL, threads=1),
    ]


@pytest.fixture(scope="module")
def world(lm: TokenModel) -> Iterator[World]:
    with Anvil() as chain:
        w3 = Web3(Web3.HTTPProvider(chain.rpc_url))
        deployment = deploy(w3, DEV_KEYS[0], unstaking_delay=3_600)
        address = deploy_token_market(
            w3, DEV_KEYS[0], deployment, challenge_window=WINDOW, vote_window=WINDOW, challenge_bond=BOND
        )
        parties = [party(w3, DEV_KEYS[i], deployment.token, deployment.staking, address) for i in range(7)]
        owner, requester, provider, challenger, *reexecutors = parties
        assert lm.eos_token_id is not None
        config = TokenModelConfig(
            eos_id=lm.eos_token_id,
            vocab_size=lm.vocab_size,
            max_tokens=512,
            audit_rate_bps=0,
            stake_multiple=19,
            quorum=2,
            min_reexecutor_stake=10 * 10**18,
        )
        registry = Registry(w3, deployment.registry, sender=owner.sender)
        assert registry.register_model(LM_INFO) == MODEL_ID
        assert registry.register_model(AUDITED_INFO) == AUDITED_ID
        owner.market.set_token_model(MODEL_ID, config)
        owner.market.set_token_model(AUDITED_ID, replace(config, audit_rate_bps=10_000))
        for r in reexecutors:
            owner.market.set_reexecutor(MODEL_ID, r.address)
            owner.market.set_reexecutor(AUDITED_ID, r.address)
        for staker in (provider, *reexecutors):
            owner.token.mint(staker.address, STAKE)
            staker.token.approve(deployment.staking, 2**256 - 1)
            staker.staking.stake(STAKE)
        for payer in (requester, challenger):
            owner.token.mint(payer.address, FUNDS)
            payer.token.approve(address, 2**256 - 1)
        yield World(chain, w3, address, owner, requester, provider, challenger, reexecutors)


@pytest.fixture
def env(world: World) -> Iterator[World]:
    snapshot = world.chain.rpc("evm_snapshot", [])
    try:
        yield world
    finally:
        world.chain.rpc("evm_revert", [snapshot])
        resync_nonces(world.w3)
