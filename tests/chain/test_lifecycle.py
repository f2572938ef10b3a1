"""Full job lifecycles driven from Python on a real Anvil (no mocks for chain behaviour)."""

from __future__ import annotations

import pytest
from chain_env import BAD_PROOF, GOOD_PROOF, OUTPUT, TOKEN_UNIT, Actor, TenderEnv, make_actor
from eth_account import Account

from tender.anvil import DEV_KEYS
from tender.chain import (
    Awarded,
    BidPlaced,
    Challenged,
    Delivered,
    Expired,
    IntentPosted,
    JobState,
    Proved,
    Refunded,
    Settled,
    Slashed,
    TxSender,
    resync_nonces,
)
from tender.chain._deploy import DEFAULT_PARAMS
from tender.errors import ContractRevert
from tender.intents import AuctionType, Bid, ProofMode, job_id, nonce_bitmap, sign_intent, typed_data

MAX = 10 * TOKEN_UNIT


def _second_provider(env: TenderEnv) -> Actor:
    """Another staked provider (Anvil dev account 6)."""
    other = make_actor(env.w3, DEV_KEYS[6], env.deployment)
    env.deployer.token.mint(other.address, 1_000 * TOKEN_UNIT)
    other.token.approve(env.deployment.staking, 2**256 - 1)
    other.staking.stake(1_000 * TOKEN_UNIT)
    return other


def _fee(price: int) -> int:
    return price * DEFAULT_PARAMS.fee_bps // 10_000


# -- intents and signatures ------------------------------------------------------------


@pytest.mark.parametrize("auction", list(AuctionType))
def test_hash_intent_matches_python_job_id(env: TenderEnv, auction: AuctionType) -> None:
    market = env.requester.market(auction)
    intent = env.intent(auction, input_location=b"ipfs://bafy" * 5, region=b"eu", allow_failover=True)
    assert market.hash_intent(intent) == market.job_id(intent)
    assert market.hash_intent(intent) == job_id(intent, chain_id=31337, market=market.address)


def test_submit_signed_accepts_an_eth_account_signature(env: TenderEnv) -> None:
    market = env.relayer.dutch
    intent = env.intent(AuctionType.DUTCH)
    message = typed_data(intent, chain_id=env.w3.eth.chain_id, market=market.address)
    signature = bytes(Account.sign_typed_data(DEV_KEYS[1], full_message=message).signature)
    before = env.requester.token.balance_of(env.requester.address)
    receipt = market.submit_signed(intent, signature)
    (posted,) = [e for e in market.events_in(receipt) if isinstance(e, IntentPosted)]
    assert posted.job_id == market.job_id(intent)
    assert posted.intent == intent
    assert posted.submitter == env.relayer.address
    assert posted.escrow == market.escrow_for(intent.max_price)
    assert env.requester.token.balance_of(env.requester.address) == before - posted.escrow
    job = market.job(posted.job_id)
    assert job.state is JobState.OPEN
    assert job.requester == env.requester.address
    assert market.is_nonce_used(env.requester.address, intent.nonce)


@pytest.mark.parametrize("what", ["chain", "market", "nonce"])
def test_signature_for_another_domain_or_nonce_is_refused(env: TenderEnv, what: str) -> None:
    market = env.relayer.dutch
    intent = env.intent(AuctionType.DUTCH)
    chain_id: int = env.w3.eth.chain_id
    signed_for: str = market.address
    if what == "chain":
        chain_id = 1
    elif what == "market":
        signed_for = env.deployment.market("reverse")
    signature = sign_intent(intent, DEV_KEYS[1], chain_id=chain_id, market=signed_for)
    submitted = intent.replace(nonce=intent.nonce ^ 1) if what == "nonce" else intent
    with pytest.raises(ContractRevert) as caught:
        market.submit_signed(submitted, signature)
    assert caught.value.name == "InvalidSignature"
    assert caught.value.args_by_name["requester"] == env.requester.address
    assert caught.value.args_by_name["jobId"] == market.job_id(submitted)


def test_used_and_invalidated_nonces_are_refused(env: TenderEnv) -> None:
    market = env.relayer.dutch
    intent = env.intent(AuctionType.DUTCH)
    signature = sign_intent(intent, DEV_KEYS[1], chain_id=31337, market=market.address)
    market.submit_signed(intent, signature)
    with pytest.raises(ContractRevert) as caught:
        market.submit_signed(intent, signature)
    assert caught.value.name in {"NonceAlreadyUsed", "InvalidState"}

    cancelled = env.intent(AuctionType.DUTCH)
    ((word, mask),) = nonce_bitmap([cancelled.nonce]).items()
    env.requester.dutch.invalidate_nonces(word, mask)
    with pytest.raises(ContractRevert) as caught:
        market.submit_signed(
            cancelled, sign_intent(cancelled, DEV_KEYS[1], chain_id=31337, market=market.address)
        )
    assert caught.value.name == "NonceAlreadyUsed"
    assert caught.value.args_by_name == {"owner": env.requester.address, "nonce": cancelled.nonce}


def test_wrong_auction_type_is_refused(env: TenderEnv) -> None:
    with pytest.raises(ContractRevert) as caught:
        env.requester.reverse.post(env.intent(AuctionType.DUTCH))
    assert caught.value.name == "WrongAuctionType"


# -- (a) reverse auction, zk ----------------------------------------------------------


def test_reverse_auction_bids_award_zk_delivery_settles(env: TenderEnv) -> None:
    other = _second_provider(env)
    intent = env.intent(AuctionType.REVERSE)
    market = env.requester.reverse
    job = market.job_id(intent)
    escrow = market.escrow_for(intent.max_price)
    requester_before = env.requester.token.balance_of(env.requester.address)
    provider_before = env.provider.token.balance_of(env.provider.address)
    treasury_before = env.deployer.token.balance_of(env.deployer.address)
    start = env.w3.eth.block_number

    market.post(intent)
    bid_receipt = env.solver.reverse.bid(
        job, Bid(provider=env.provider.address, price=4 * TOKEN_UNIT, latency=60)
    )
    (placed,) = env.solver.reverse.events_in(bid_receipt)
    assert isinstance(placed, BidPlaced)
    assert (placed.provider, placed.solver, placed.rank) == (env.provider.address, env.solver.address, 1)
    other.reverse.bid(job, Bid(provider=other.address, price=6 * TOKEN_UNIT, latency=60))
    assert market.best_bid(job).provider == env.provider.address
    assert market.runner_up(job).provider == other.address
    price = market.clearing_price(job)
    assert 4 * TOKEN_UNIT <= price <= 6 * TOKEN_UNIT  # the second-score price

    with pytest.raises(ContractRevert) as caught:
        market.award(job)
    assert caught.value.name == "AuctionNotEnded"
    env.advance(intent.auction_window + 1)
    awarded = [
        e for e in env.relayer.reverse.events_in(env.relayer.reverse.award(job)) if isinstance(e, Awarded)
    ]
    assert awarded[0].provider == env.provider.address
    assert awarded[0].price == price
    state = market.job(job)
    assert state.state is JobState.AWARDED
    assert env.provider.staking.locked_for(env.provider.address, job) == state.stake_locked > 0

    with pytest.raises(ContractRevert) as caught:
        env.solver.reverse.deliver(job, OUTPUT, BAD_PROOF)
    assert caught.value.name == "ProofRejected"
    receipt = env.solver.reverse.deliver(job, OUTPUT, GOOD_PROOF)
    (settled,) = [e for e in market.events_in(receipt) if isinstance(e, Settled)]
    assert (settled.provider, settled.price, settled.fee) == (env.provider.address, price, _fee(price))
    assert market.job(job).state is JobState.SETTLED
    assert env.provider.staking.locked_of(env.provider.address) == 0
    # settling credits the provider its price and the requester the rest of the escrow: no tokens move
    assert env.provider.token.balance_of(env.provider.address) == provider_before
    assert market.owed(env.provider.address) == price
    assert settled.refund == escrow - price - _fee(price)
    assert market.owed(env.requester.address) == settled.refund
    assert env.requester.token.balance_of(env.requester.address) == requester_before - escrow
    # the fee accrues in the market until the treasury's fees are withdrawn (anyone may trigger it)
    assert market.fees_owed() == _fee(price)
    assert env.deployer.token.balance_of(env.deployer.address) == treasury_before
    env.relayer.reverse.withdraw_fees()
    assert market.fees_owed() == 0
    assert env.deployer.token.balance_of(env.deployer.address) == treasury_before + _fee(price)
    # each payee collects its credit with withdraw()
    env.provider.reverse.withdraw()
    env.requester.reverse.withdraw()
    assert env.provider.token.balance_of(env.provider.address) == provider_before + price
    assert env.requester.token.balance_of(env.requester.address) == requester_before - price - _fee(price)
    assert market.owed(env.provider.address) == market.owed(env.requester.address) == 0

    names = [e.name for e in market.events(start)]
    assert names[0] == "IntentPosted"
    assert names.count("BidPlaced") == 2
    assert names[-4:] == ["Settled", "FeesWithdrawn", "Withdrawn", "Withdrawn"]


# -- (b) signed intent, Dutch fill ----------------------------------------------------


def test_signed_intent_dutch_fill_settles(env: TenderEnv) -> None:
    intent = env.intent(AuctionType.DUTCH)
    market = env.relayer.dutch
    job = market.job_id(intent)
    market.submit_signed(intent, sign_intent(intent, DEV_KEYS[1], chain_id=31337, market=market.address))
    env.advance(30)
    quoted = market.current_price(job)
    assert intent.start_price < quoted < intent.max_price
    provider_before = env.provider.token.balance_of(env.provider.address)
    receipt = env.solver.dutch.fill(job, env.provider.address, 120)
    (awarded,) = [e for e in market.events_in(receipt) if isinstance(e, Awarded)]
    assert quoted <= awarded.price <= intent.max_price  # one more second may have passed
    assert market.job(job).state is JobState.AWARDED
    with pytest.raises(ContractRevert) as caught:
        env.relayer.dutch.fill(job, env.provider.address, 120)
    assert caught.value.name in {"InvalidState", "NotAuthorized"}

    env.provider.dutch.deliver(job, OUTPUT, GOOD_PROOF)
    assert market.job(job).state is JobState.SETTLED
    assert market.owed(env.provider.address) == awarded.price  # credited, not sent
    assert env.provider.token.balance_of(env.provider.address) == provider_before


# -- (c) silent provider: expire ------------------------------------------------------


def test_silent_provider_expires_and_requester_is_compensated(env: TenderEnv) -> None:
    intent = env.intent(AuctionType.DUTCH, allow_failover=False)
    market = env.requester.dutch
    job = market.job_id(intent)
    before = env.requester.token.balance_of(env.requester.address)
    stake_before = env.provider.staking.stake_of(env.provider.address)
    market.post(intent)
    env.solver.dutch.fill(job, env.provider.address, 60)
    locked = market.job(job).stake_locked
    with pytest.raises(ContractRevert) as caught:
        env.relayer.dutch.expire(job)
    assert caught.value.name == "NotExpired"

    env.advance(120)
    receipt = env.relayer.dutch.expire(job)
    (expired,) = [e for e in market.events_in(receipt) if isinstance(e, Expired)]
    assert expired.provider == env.provider.address
    assert expired.slashed == locked
    assert market.job(job).state is JobState.EXPIRED
    # the escrow is credited to the requester in the market and the slashed stake (the
    # compensation) in Staking: no token reaches it until it withdraws and claims
    escrow = market.escrow_for(intent.max_price)
    assert env.requester.token.balance_of(env.requester.address) == before - escrow
    assert market.owed(env.requester.address) == escrow
    assert env.requester.staking.claimable(env.requester.address) == locked
    market.withdraw()
    env.requester.staking.claim()
    assert env.requester.token.balance_of(env.requester.address) == before + locked
    assert env.provider.staking.stake_of(env.provider.address) == stake_before - locked
    assert env.provider.staking.stats(env.provider.address).expired == 1


def test_unawarded_intent_is_refunded(env: TenderEnv) -> None:
    intent = env.intent(AuctionType.REVERSE)
    market = env.requester.reverse
    job = market.job_id(intent)
    before = env.requester.token.balance_of(env.requester.address)
    market.post(intent)
    env.advance(intent.auction_window + 1)
    receipt = env.relayer.reverse.refund(job)
    (refunded,) = [e for e in market.events_in(receipt) if isinstance(e, Refunded)]
    assert refunded.requester == env.requester.address
    assert refunded.amount == market.owed(env.requester.address) == market.escrow_for(intent.max_price)
    assert env.requester.token.balance_of(env.requester.address) == before - refunded.amount
    assert market.job(job).state is JobState.REFUNDED
    market.withdraw()
    assert env.requester.token.balance_of(env.requester.address) == before


# -- (d) optimistic delivery and disputes ---------------------------------------------


def _optimistic_delivered(env: TenderEnv) -> tuple[bytes, int]:
    intent = env.intent(AuctionType.DUTCH, proof_mode=ProofMode.OPTIMISTIC)
    market = env.requester.dutch
    job = market.job_id(intent)
    market.post(intent)
    receipt = env.solver.dutch.fill(job, env.provider.address, 120)
    price = next(e for e in market.events_in(receipt) if isinstance(e, Awarded)).price
    receipt = env.provider.dutch.deliver(job, OUTPUT)
    (delivered,) = [e for e in market.events_in(receipt) if isinstance(e, Delivered)]
    assert delivered.state is JobState.DELIVERED
    assert delivered.output == OUTPUT
    assert market.output_of(job) == OUTPUT
    return job, price


def test_optimistic_unchallenged_finalizes(env: TenderEnv) -> None:
    job, price = _optimistic_delivered(env)
    before = env.provider.token.balance_of(env.provider.address)
    with pytest.raises(ContractRevert) as caught:
        env.relayer.dutch.finalize(job)
    assert caught.value.name == "ChallengeWindowOpen"
    env.advance(DEFAULT_PARAMS.challenge_window + 1)
    env.relayer.dutch.finalize(job)
    assert env.requester.dutch.job(job).state is JobState.SETTLED
    assert env.provider.token.balance_of(env.provider.address) == before
    assert env.provider.dutch.owed(env.provider.address) == price


def test_challenged_provider_proves_and_is_paid(env: TenderEnv) -> None:
    job, price = _optimistic_delivered(env)
    provider_before = env.provider.token.balance_of(env.provider.address)
    challenger_before = env.challenger.token.balance_of(env.challenger.address)
    receipt = env.challenger.dutch.challenge(job)
    (challenged,) = [e for e in env.challenger.dutch.events_in(receipt) if isinstance(e, Challenged)]
    assert challenged.bond == DEFAULT_PARAMS.challenge_bond
    assert env.requester.dutch.job(job).state is JobState.CHALLENGED
    with pytest.raises(ContractRevert) as caught:
        env.provider.dutch.prove(job, BAD_PROOF)
    assert caught.value.name == "ProofRejected"
    receipt = env.provider.dutch.prove(job, GOOD_PROOF)
    events = env.provider.dutch.events_in(receipt)
    (proved,) = [e for e in events if isinstance(e, Proved)]
    assert proved.bond_paid == DEFAULT_PARAMS.challenge_bond
    assert any(isinstance(e, Settled) for e in events)
    assert env.requester.dutch.job(job).state is JobState.SETTLED
    # the provider is credited its price plus the failed challenger's bond
    assert env.provider.dutch.owed(env.provider.address) == price + proved.bond_paid
    env.provider.dutch.withdraw()
    assert env.provider.token.balance_of(env.provider.address) == provider_before + price + proved.bond_paid
    assert env.challenger.token.balance_of(env.challenger.address) == challenger_before - challenged.bond
    assert env.challenger.dutch.owed(env.challenger.address) == 0


def test_challenged_silent_provider_is_slashed(env: TenderEnv) -> None:
    job, _ = _optimistic_delivered(env)
    requester_before = env.requester.token.balance_of(env.requester.address)
    challenger_before = env.challenger.token.balance_of(env.challenger.address)
    locked = env.requester.dutch.job(job).stake_locked
    env.challenger.dutch.challenge(job)
    env.advance(DEFAULT_PARAMS.proof_window + 1)
    receipt = env.relayer.dutch.expire(job)
    (slashed,) = [e for e in env.relayer.dutch.events_in(receipt) if isinstance(e, Slashed)]
    assert slashed.provider == env.provider.address
    assert slashed.to_requester + slashed.to_challenger == locked
    assert slashed.to_challenger == locked * DEFAULT_PARAMS.challenger_reward_bps // 10_000
    assert slashed.bond_returned == DEFAULT_PARAMS.challenge_bond
    assert env.requester.dutch.job(job).state is JobState.SLASHED
    # the lock stays in Staking, credited there to the requester (its share) and the challenger
    # (its reward); the market credits the requester the escrow and the challenger its bond back
    escrow = env.requester.dutch.escrow_for(10 * TOKEN_UNIT)
    assert env.requester.token.balance_of(env.requester.address) == requester_before
    assert env.requester.dutch.owed(env.requester.address) == escrow
    assert env.requester.staking.claimable(env.requester.address) == slashed.to_requester
    assert (
        env.challenger.token.balance_of(env.challenger.address) == challenger_before - slashed.bond_returned
    )
    assert env.challenger.dutch.owed(env.challenger.address) == slashed.bond_returned
    assert env.challenger.staking.claimable(env.challenger.address) == slashed.to_challenger
    env.challenger.dutch.withdraw()
    env.challenger.staking.claim()
    assert (
        env.challenger.token.balance_of(env.challenger.address) == challenger_before + slashed.to_challenger
    )


# -- transport on the real contracts --------------------------------------------------


def test_two_senders_one_key_across_threads(env: TenderEnv) -> None:
    import threading

    intents = [env.intent(AuctionType.DUTCH) for _ in range(8)]
    senders = [TxSender(env.w3, DEV_KEYS[1]) for _ in range(2)]
    markets = [env.requester.dutch.using(s) for s in senders]
    threads = [
        threading.Thread(target=markets[i % 2].post, args=(intent,)) for i, intent in enumerate(intents)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    resync_nonces(env.w3)
    assert all(env.requester.dutch.job(env.requester.dutch.job_id(i)).state is JobState.OPEN for i in intents)
