"""An auditor's checks over the session's jobs, with nothing but the chain and Ape."""

from __future__ import annotations

from typing import Any

from ape.exceptions import ContractLogicError
from conftest import Protocol

JOB_STATES = [
    "None",
    "Open",
    "Awarded",
    "Delivered",
    "Challenged",
    "ProofRequired",
    "Settled",
    "Refunded",
    "Expired",
    "Slashed",
]


def _events(p: Protocol, name: str) -> list[Any]:
    """Every ``name`` event the market emitted, oldest first."""
    return list(getattr(p.market, name).range(0, 10_000))


def _instances(p: Protocol, job: bytes, output: list[int]) -> list[int]:
    info = p.registry.model(p.model_id)
    instances = [0] * info.instanceCount
    if info.inputBinding == 0:  # INPUT_HASHED; a polycommit input is bound by proof[0:64] instead
        instances[info.commitmentIndex] = p.market.job(job).inputCommitment
    instances[info.outputOffset : info.outputOffset + len(output)] = output
    return instances


def _accepts(p: Protocol, proof: bytes, instances: list[int]) -> bool:
    """The verifier's answer by ``eth_call`` (verifyProof is not ``view``); EZKL's reverts on a bad proof."""
    try:
        return bool(p.verifier.verifyProof.call(proof, instances))
    except ContractLogicError:
        return False


def _proof_from_calldata(p: Protocol, chain: Any, tx_hash: Any, method: str) -> bytes:
    """The proof argument of the market call made by ``tx_hash``, decoded from its calldata."""
    tx = chain.provider.get_receipt(tx_hash).transaction
    selector, args = p.market.decode_input(tx.data)
    assert method in str(selector)
    return bytes(args["proof"])


def test_every_stored_proof_reverifies_with_the_registered_verifier(protocol: Protocol, chain: Any) -> None:
    p = protocol
    registered = p.registry.model(p.model_id).verifier
    assert registered == p.verifier.address
    checked = 0
    for log in _events(p, "Delivered"):
        job = bytes(log.jobId)
        if job in p.jobs["zk"]:
            proof = _proof_from_calldata(p, chain, log.transaction_hash, "deliver")
        elif job in p.jobs["proved"]:
            (proved,) = [e for e in _events(p, "Proved") if bytes(e.jobId) == job]
            proof = _proof_from_calldata(p, chain, proved.transaction_hash, "prove")
        else:
            continue
        output = [int(v) for v in log.output]
        assert _accepts(p, proof, _instances(p, job, output))
        tampered = [*output[:-1], output[-1] + 1]
        assert not _accepts(p, proof, _instances(p, job, tampered))
        checked += 1
    assert checked == len(p.jobs["zk"]) + len(p.jobs["proved"]) == 4


def test_states_match_events(protocol: Protocol) -> None:
    p = protocol
    expected = {
        "zk": "Settled",
        "proved": "Settled",
        "finalized": "Settled",
        "slashed": "Slashed",
        "expired": "Expired",
    }
    for kind, jobs in p.jobs.items():
        for job in jobs:
            assert JOB_STATES[p.market.job(job).state] == expected[kind], kind
    assert len(_events(p, "Settled")) == 5
    assert len(_events(p, "Slashed")) == 1
    assert len(_events(p, "Expired")) == 1


def test_amounts_add_up(protocol: Protocol) -> None:
    p = protocol
    posted = {bytes(e.jobId): e for e in _events(p, "IntentPosted")}
    for settled in _events(p, "Settled"):
        escrow = posted[bytes(settled.jobId)].escrow
        assert settled.price + settled.fee + settled.refund == escrow
        assert settled.fee == settled.price * 100 // 10_000
    (slashed,) = _events(p, "Slashed")
    job = p.market.job(bytes(slashed.jobId))
    assert slashed.toRequester + slashed.toChallenger == job.stakeLocked
    assert slashed.toChallenger == job.stakeLocked * 5_000 // 10_000
    assert slashed.bondReturned == job.challengeBond
    (expired,) = _events(p, "Expired")
    assert expired.slashed == p.market.job(bytes(expired.jobId)).stakeLocked
    (proved,) = _events(p, "Proved")
    assert proved.bondPaid == p.market.job(bytes(proved.jobId)).challengeBond
    # once every job ended the market holds only the fees it owes the treasury and what it credited
    # its accounts (payments, refunds, returned bonds: paid out by their `withdraw`)
    fees = sum(e.fee for e in _events(p, "Settled"))
    assert p.market.feesOwed() == fees
    credits = sum(p.market.owed(who) for who in (p.requester, p.provider, p.challenger))
    assert p.token.balanceOf(p.market) == fees + credits


def test_balances_follow_the_events(protocol: Protocol) -> None:
    p = protocol
    unit = 10**18
    settled = _events(p, "Settled")
    (slashed,) = _events(p, "Slashed")
    (expired,) = _events(p, "Expired")
    (proved,) = _events(p, "Proved")

    # The market credits what it owes (payments, refunds, returned bonds) and Staking the slashed
    # stake (compensation, reward): held = token balance + credit in the market + claimable in Staking.
    def held(who: Any) -> int:
        return int(p.token.balanceOf(who)) + int(p.market.owed(who)) + int(p.staking.claimable(who))

    # challenger: minted 10k, lost one bond to the proven provider, got one bond back plus the reward
    assert held(p.challenger) == 10_000 * unit - proved.bondPaid + slashed.toChallenger
    assert p.market.owed(p.challenger) == slashed.bondReturned
    assert p.staking.claimable(p.challenger) == slashed.toChallenger
    # requester: paid price + fee of every settled job; compensated by both slashes (in Staking)
    spent = sum(e.price + e.fee for e in settled)
    assert held(p.requester) == 10_000 * unit - spent + slashed.toRequester + expired.slashed
    assert p.staking.claimable(p.requester) == slashed.toRequester + expired.slashed
    # provider: staked everything; earned the prices and the bond (credited); lost two locks
    earned = sum(e.price for e in settled) + proved.bondPaid
    assert p.token.balanceOf(p.provider) == 0
    assert p.market.owed(p.provider) == earned
    # each withdraws its credit and claims from Staking: the tokens follow
    for who in (p.challenger, p.requester, p.provider):
        before = held(who)
        p.market.withdraw(sender=who)
        if p.staking.claimable(who):
            p.staking.claim(sender=who)
        assert p.market.owed(who) == 0
        assert p.staking.claimable(who) == 0
        assert p.token.balanceOf(who) == before
    assert p.token.balanceOf(p.provider) == earned
    assert p.token.balanceOf(p.market) == p.market.feesOwed()
    lost = slashed.toRequester + slashed.toChallenger + expired.slashed
    assert p.staking.stakeOf(p.provider) == 1_000 * unit - lost
    assert p.staking.lockedOf(p.provider) == 0
    assert p.token.balanceOf(p.staking) == p.staking.stakeOf(p.provider)


def test_counters_match_the_events(protocol: Protocol) -> None:
    p = protocol
    stats = p.staking.stats(p.provider)
    assert stats.jobsWon == len(_events(p, "Awarded")) == 7
    assert stats.deliveredInTime == len(_events(p, "Settled")) == 5
    assert stats.expired == len(_events(p, "Expired")) == 1
    assert stats.slashed == len(_events(p, "Slashed")) + len(_events(p, "Expired")) == 2


def test_tender_audit_agrees(protocol: Protocol, chain: Any) -> None:
    """The `tender audit` engine, pointed at the same chain, passes every job and the escrow."""
    import pytest

    from tender.chain import Deployment, load_artifact
    from tender.errors import ArtifactError

    try:
        load_artifact("DutchAuctionMarket")  # the auditor reads ABIs from Foundry's build
    except ArtifactError:
        pytest.skip("run `make contracts` first")
    from verifier._audit import Auditor

    p = protocol
    deployment = Deployment(
        chain_id=chain.chain_id,
        token=p.token.address,
        registry=p.registry.address,
        staking=p.staking.address,
        markets={"dutch": p.market.address},
        block=0,
    )
    report = Auditor(chain.provider.web3, deployment).run()
    assert report.ok, [(j.job_id, [c.to_json() for c in j.failures()]) for j in report.failed_jobs]
    assert len(report.jobs) == sum(len(jobs) for jobs in p.jobs.values()) == 7
