"""Chain fixtures: one Anvil and one full Tender deployment per test module.

Every test runs between an ``evm_snapshot`` and an ``evm_revert``, so tests see the same fresh
deployment (a staked provider, a registered model, funded requesters) without redeploying.
Time moves with ``evm_increaseTime`` + ``evm_mine``, never with sleep.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from chain_env import (
    OUTPUT,
    PROVIDER_STAKE,
    REQUESTER_FUNDS,
    TenderEnv,
    make_actor,
    tender_built,
)
from web3 import Web3

from tender.anvil import DEV_KEYS, Anvil
from tender.chain import ModelInfo, deploy, deploy_artifact, resync_nonces
from tender.chain._deploy import DEFAULT_PARAMS


@pytest.fixture(scope="module")
def tender() -> Iterator[TenderEnv]:
    if not tender_built():
        pytest.skip("Tender contracts not built: run `make contracts`")
    # The code-size limit is checked by test_contract_sizes; here it must not hide the lifecycles.
    with Anvil() as chain:
        w3 = Web3(Web3.HTTPProvider(chain.rpc_url))
        deployment = deploy(w3, DEV_KEYS[0], params=DEFAULT_PARAMS, unstaking_delay=3_600)
        deployer = make_actor(w3, DEV_KEYS[0], deployment)
        requester, provider, solver, challenger, relayer = (
            make_actor(w3, DEV_KEYS[i], deployment) for i in range(1, 6)
        )
        verifier, _ = deploy_artifact(deployer.sender, "MockVerifier")
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
        model_id = deployer.registry.register_model(info)
        for actor in (requester, challenger, relayer):
            deployer.token.mint(actor.address, REQUESTER_FUNDS)
            actor.token.approve(deployment.market("reverse"), 2**256 - 1)
            actor.token.approve(deployment.market("dutch"), 2**256 - 1)
        deployer.token.mint(provider.address, PROVIDER_STAKE)
        provider.token.approve(deployment.staking, 2**256 - 1)
        provider.staking.stake(PROVIDER_STAKE)
        provider.staking.register_operator("http://127.0.0.1:9000", region=b"eu", models=[model_id])
        provider.staking.set_solver(solver.address, True)
        yield TenderEnv(
            chain=chain,
            w3=w3,
            deployment=deployment,
            deployer=deployer,
            requester=requester,
            provider=provider,
            solver=solver,
            challenger=challenger,
            relayer=relayer,
            verifier=verifier,
            model_id=model_id,
        )


@pytest.fixture
def env(tender: TenderEnv) -> Iterator[TenderEnv]:
    """``tender`` rewound to its fresh state after the test."""
    snapshot = tender.chain.rpc("evm_snapshot", [])
    try:
        yield tender
    finally:
        tender.chain.rpc("evm_revert", [snapshot])
        resync_nonces(tender.w3)
