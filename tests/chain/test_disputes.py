"""Less common paths: failover to the runner-up, audited optimistic deliveries, malleable signatures."""

from __future__ import annotations

import pytest
from chain_env import GOOD_PROOF, OUTPUT, TOKEN_UNIT, TenderEnv, make_actor

from tender.anvil import DEV_KEYS
from tender.chain import AuditDrawn, AuditRequired, Expired, FailedOver, JobState, ModelInfo, Settled
from tender.errors import ContractRevert
from tender.intents import AuctionType, Bid, ProofMode, sign_intent

_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def test_silent_winner_fails_over_to_the_runner_up(env: TenderEnv) -> None:
    runner = make_actor(env.w3, DEV_KEYS[6], env.deployment)
    env.deployer.token.mint(runner.address, 1_000 * TOKEN_UNIT)
    runner.token.approve(env.deployment.staking, 2**256 - 1)
    runner.staking.stake(1_000 * TOKEN_UNIT)
    intent = env.intent(AuctionType.REVERSE, allow_failover=True)
    market = env.requester.reverse
    job = market.job_id(intent)
    market.post(intent)
    env.solver.reverse.bid(job, Bid(provider=env.provider.address, price=4 * TOKEN_UNIT, latency=60))
    runner.reverse.bid(job, Bid(provider=runner.address, price=6 * TOKEN_UNIT, latency=60))
    env.advance(intent.auction_window + 1)
    env.relayer.reverse.award(job)
    assert market.job(job).provider == env.provider.address

    env.advance(61)
    receipt = env.relayer.reverse.expire(job)
    events = market.events_in(receipt)
    (expired,) = [e for e in events if isinstance(e, Expired)]
    (failed_over,) = [e for e in events if isinstance(e, FailedOver)]
    assert expired.provider == env.provider.address
    assert (failed_over.from_, failed_over.to, failed_over.price) == (
        env.provider.address,
        runner.address,
        6 * TOKEN_UNIT,
    )
    state = market.job(job)
    assert (state.state, state.provider) == (JobState.AWARDED, runner.address)

    runner.reverse.deliver(job, OUTPUT, GOOD_PROOF)
    assert market.job(job).state is JobState.SETTLED


def test_audited_optimistic_delivery_must_be_proven(env: TenderEnv) -> None:
    audited = ModelInfo(
        onnx_sha256=b"\x03" * 32,
        settings_hash=b"\x04" * 32,
        verifier=env.verifier,
        commitment_index=0,
        output_offset=1,
        output_length=len(OUTPUT),
        instance_count=1 + len(OUTPUT),
        proof_modes=2,
        audit_rate_bps=10_000,
    )
    model_id = env.deployer.registry.register_model(audited)
    intent = env.intent(AuctionType.DUTCH, model_id=model_id, proof_mode=ProofMode.OPTIMISTIC)
    market = env.requester.dutch
    job = market.job_id(intent)
    with pytest.raises(ContractRevert) as caught:
        market.post(intent.replace(proof_mode=ProofMode.ZK))
    assert caught.value.name == "UnsupportedProofMode"
    market.post(intent)
    env.solver.dutch.fill(job, env.provider.address, 60)
    env.provider.dutch.deliver(job, OUTPUT)
    # the draw reads the hash of the block after the delivery, unknown when the provider delivers
    assert market.job(job).state is JobState.DELIVERED
    with pytest.raises(ContractRevert) as caught:
        env.relayer.dutch.draw_audit(job)
    assert caught.value.name == "AuditNotReady"
    for _ in range(2):  # the seed block, then one to read its hash from
        env.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    receipt = env.relayer.dutch.draw_audit(job)  # anyone may draw
    (drawn,) = [e for e in market.events_in(receipt) if isinstance(e, AuditDrawn)]
    assert drawn.audited  # an audit rate of 100%
    (audit,) = [e for e in market.events_in(receipt) if isinstance(e, AuditRequired)]
    assert audit.provider == env.provider.address
    assert market.job(job).state is JobState.PROOF_REQUIRED
    assert market.dispute_terms(job).audit_drawn
    with pytest.raises(ContractRevert) as caught:
        env.relayer.dutch.finalize(job)
    assert caught.value.name == "InvalidState"
    receipt = env.provider.dutch.prove(job, GOOD_PROOF)
    assert any(isinstance(e, Settled) for e in market.events_in(receipt))


def test_high_s_signature_is_refused_on_chain(env: TenderEnv) -> None:
    market = env.relayer.dutch
    intent = env.intent(AuctionType.DUTCH)
    signature = sign_intent(intent, DEV_KEYS[1], chain_id=31337, market=market.address)
    s = int.from_bytes(signature[32:64], "big")
    flipped = signature[:32] + (_N - s).to_bytes(32, "big") + bytes([55 - signature[64]])  # 27 <-> 28
    with pytest.raises(ContractRevert) as caught:
        market.submit_signed(intent, flipped)
    assert caught.value.name == "InvalidSignature"


def test_refund_waits_for_the_window_and_needs_no_bids(env: TenderEnv) -> None:
    intent = env.intent(AuctionType.REVERSE)
    market = env.requester.reverse
    job = market.job_id(intent)
    market.post(intent)
    with pytest.raises(ContractRevert) as caught:
        env.relayer.reverse.refund(job)
    assert caught.value.name == "AuctionNotEnded"
    env.solver.reverse.bid(job, Bid(provider=env.provider.address, price=TOKEN_UNIT, latency=60))
    env.advance(intent.auction_window + 1)
    with pytest.raises(ContractRevert) as caught:
        env.relayer.reverse.refund(job)
    assert caught.value.name == "NotRefundable"
