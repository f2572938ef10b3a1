"""Requesters that are contracts: ERC-1271 wallets and consumers called back on settlement."""

from __future__ import annotations

import pytest
from chain_env import GOOD_PROOF, OUTPUT, TOKEN_UNIT, TenderEnv, proof_for

from tender.anvil import DEV_KEYS
from tender.chain import CallbackFailed, JobState, Settled, deploy_artifact, load_artifact
from tender.errors import ContractRevert
from tender.intents import AuctionType, sign_intent


def _contract(env: TenderEnv, name: str, address: str):  # type: ignore[no-untyped-def]
    return env.w3.eth.contract(address=env.w3.to_checksum_address(address), abi=list(load_artifact(name).abi))


def test_erc1271_wallet_requester_signs_through_its_owner(env: TenderEnv) -> None:
    address, _ = deploy_artifact(env.deployer.sender, "MockERC1271Wallet", env.requester.address)
    wallet = _contract(env, "MockERC1271Wallet", address)
    env.deployer.token.mint(address, 100 * TOKEN_UNIT)
    market = env.relayer.dutch
    env.relayer.sender.send(wallet.functions.approve(env.deployment.token, market.address, 2**256 - 1))
    intent = env.intent(AuctionType.DUTCH, requester=address)
    wrong = sign_intent(intent, DEV_KEYS[7], chain_id=31337, market=market.address)
    with pytest.raises(ContractRevert) as caught:
        market.submit_signed(intent, wrong)
    assert caught.value.name == "InvalidSignature"
    market.submit_signed(intent, sign_intent(intent, DEV_KEYS[1], chain_id=31337, market=market.address))
    job = market.job(market.job_id(intent))
    assert (job.state, job.requester) == (JobState.OPEN, address)


def _consumer_job(env: TenderEnv, behaviour: int) -> tuple[str, bytes]:
    address, _ = deploy_artifact(env.deployer.sender, "MockConsumer")
    consumer = _contract(env, "MockConsumer", address)
    env.deployer.token.mint(address, 100 * TOKEN_UNIT)
    env.relayer.sender.send(consumer.functions.setBehaviour(behaviour))
    intent = env.intent(AuctionType.DUTCH, requester=address, callback_gas_limit=200_000)
    market = env.relayer.dutch
    env.relayer.sender.send(consumer.functions.post(market.address, env.deployment.token, intent.to_abi()))
    job = market.job_id(intent)
    env.solver.dutch.fill(job, env.provider.address, 60)
    return address, job


def test_consumer_is_called_back_with_the_output(env: TenderEnv) -> None:
    address, job = _consumer_job(env, 0)
    env.provider.dutch.deliver(job, OUTPUT, GOOD_PROOF)
    consumer = _contract(env, "MockConsumer", address)
    assert bytes(consumer.functions.lastJobId().call()) == job
    assert consumer.functions.outputLength().call() == len(OUTPUT)


def test_reverting_consumer_never_blocks_payment(env: TenderEnv) -> None:
    _, job = _consumer_job(env, 1)
    receipt = env.provider.dutch.deliver(job, OUTPUT, GOOD_PROOF)
    events = env.provider.dutch.events_in(receipt)
    assert any(isinstance(e, Settled) for e in events)
    (failed,) = [e for e in events if isinstance(e, CallbackFailed)]
    assert failed.job_id == job
    assert env.provider.dutch.job(job).state is JobState.SETTLED


def test_proof_for_another_input_is_rejected(env: TenderEnv) -> None:
    market = env.requester.dutch
    intent = env.intent(AuctionType.DUTCH, input_commitment=0xBEEF)
    job = market.job_id(intent)
    market.post(intent)
    env.solver.dutch.fill(job, env.provider.address, 60)
    with pytest.raises(ContractRevert) as caught:
        env.provider.dutch.deliver(job, OUTPUT, GOOD_PROOF)  # proves commitment 0xC0FFEE, not 0xBEEF
    assert caught.value.name == "ProofRejected"
    env.provider.dutch.deliver(job, OUTPUT, proof_for(commitment=0xBEEF))
    assert market.job(job).state is JobState.SETTLED
