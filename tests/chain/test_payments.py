"""Pull payments on the real contracts: credits, ``owed``, ``withdraw`` and escrows paid from credit."""

from __future__ import annotations

import pytest
from chain_env import GOOD_PROOF, OUTPUT, TOKEN_UNIT, TenderEnv

from tender.chain import IntentPosted, JobState, Market, Slashed, Transfer, Withdrawn
from tender.chain._deploy import DEFAULT_PARAMS
from tender.errors import ContractRevert
from tender.intents import AuctionType, ProofMode


def _settle(env: TenderEnv) -> tuple[bytes, int]:
    """A Dutch zk job filled for the provider and delivered: settled; returns (job id, price)."""
    intent = env.intent(AuctionType.DUTCH)
    job = env.requester.dutch.job_id(intent)
    env.requester.dutch.post(intent)
    env.solver.dutch.fill(job, env.provider.address, 120)
    env.provider.dutch.deliver(job, OUTPUT, GOOD_PROOF)
    stored = env.requester.dutch.job(job)
    assert stored.state is JobState.SETTLED
    return job, stored.price


def _refund(env: TenderEnv, market: Market, max_price: int = 10 * TOKEN_UNIT) -> int:
    """An unawarded reverse intent refunded: its escrow is credited to the requester; the escrow."""
    intent = env.intent(AuctionType.REVERSE, max_price=max_price)
    market.post(intent)
    env.advance(intent.auction_window + 1)
    env.relayer.reverse.refund(market.job_id(intent))
    return market.escrow_for(max_price)


def _transfers(market: Market, receipt: object) -> list[Transfer]:
    from tender.chain import Token

    token = Token(market.w3, market.token())
    return [e for e in token.events_in(receipt) if isinstance(e, Transfer)]  # type: ignore[arg-type]


def test_withdraw_pays_exactly_what_is_owed_and_zeroes_it(env: TenderEnv) -> None:
    _, price = _settle(env)
    market = env.provider.dutch
    owed = market.owed(env.provider.address)
    assert owed == price > 0
    balance = env.provider.token.balance_of(env.provider.address)
    held = env.provider.token.balance_of(market.address)

    receipt = market.withdraw()

    (withdrawn,) = [e for e in market.events_in(receipt) if isinstance(e, Withdrawn)]
    assert (withdrawn.account, withdrawn.amount) == (env.provider.address, owed)
    (transfer,) = _transfers(market, receipt)
    assert (transfer.from_, transfer.to, transfer.value) == (market.address, env.provider.address, owed)
    assert env.provider.token.balance_of(env.provider.address) == balance + owed
    assert env.provider.token.balance_of(market.address) == held - owed
    assert market.owed(env.provider.address) == 0


def test_nothing_owed_is_a_named_error_and_changes_nothing(env: TenderEnv) -> None:
    market = env.provider.dutch
    assert market.owed(env.provider.address) == 0
    nonce = env.w3.eth.get_transaction_count(env.provider.address)
    block = env.w3.eth.block_number
    balance = env.provider.token.balance_of(env.provider.address)

    with pytest.raises(ContractRevert) as caught:
        market.withdraw()

    assert caught.value.name == "NothingOwed"
    assert caught.value.args_by_name == {"account": env.provider.address}
    assert "NothingOwed" in str(caught.value)
    assert env.w3.eth.get_transaction_count(env.provider.address) == nonce  # nothing was sent
    assert env.w3.eth.block_number == block
    assert env.provider.token.balance_of(env.provider.address) == balance
    # a second withdrawal after a real one is refused the same way
    _settle(env)
    market.withdraw()
    with pytest.raises(ContractRevert) as caught:
        market.withdraw()
    assert caught.value.name == "NothingOwed"


def test_withdraw_works_while_the_market_is_paused(env: TenderEnv) -> None:
    _, price = _settle(env)
    env.deployer.dutch.pause()
    balance = env.provider.token.balance_of(env.provider.address)
    env.provider.dutch.withdraw()
    assert env.provider.token.balance_of(env.provider.address) == balance + price
    env.deployer.dutch.unpause()


def test_post_is_funded_from_credit_without_allowance(env: TenderEnv) -> None:
    market = env.requester.reverse
    escrow = _refund(env, market)
    assert market.owed(env.requester.address) == escrow
    env.requester.token.approve(market.address, 0)  # no allowance at all from here on
    balance = env.requester.token.balance_of(env.requester.address)
    assert market.covered_by_credit(env.requester.address, escrow)
    assert market.ensure_funding(escrow) is None  # nothing to approve

    intent = env.intent(AuctionType.REVERSE)
    receipt = market.post(intent)

    (posted,) = [e for e in market.events_in(receipt) if isinstance(e, IntentPosted)]
    assert posted.escrow == escrow
    assert _transfers(market, receipt) == []  # no token moved
    assert market.owed(env.requester.address) == 0
    assert env.requester.token.balance_of(env.requester.address) == balance
    assert market.job(market.job_id(intent)).state is JobState.OPEN
    # with the credit spent and no allowance, the next escrow is refused by the token
    with pytest.raises(ContractRevert) as caught:
        market.post(env.intent(AuctionType.REVERSE))
    assert caught.value.name == "ERC20InsufficientAllowance"


def test_a_credit_short_of_the_escrow_is_not_split(env: TenderEnv) -> None:
    market = env.requester.reverse
    credit = _refund(env, market, max_price=TOKEN_UNIT)  # a small refund: less than the next escrow
    intent = env.intent(AuctionType.REVERSE)
    escrow = market.escrow_for(intent.max_price)
    assert credit < escrow
    assert not market.covered_by_credit(env.requester.address, escrow)
    balance = env.requester.token.balance_of(env.requester.address)
    receipt = market.post(intent)
    (transfer,) = _transfers(market, receipt)
    assert (transfer.from_, transfer.to, transfer.value) == (env.requester.address, market.address, escrow)
    assert env.requester.token.balance_of(env.requester.address) == balance - escrow
    assert market.owed(env.requester.address) == credit  # untouched


def test_ensure_funding_approves_the_whole_amount_only_when_the_credit_falls_short(env: TenderEnv) -> None:
    market = env.requester.reverse
    env.requester.token.approve(market.address, 0)
    escrow = market.escrow_for(10 * TOKEN_UNIT)
    receipt = market.ensure_funding(escrow)
    assert receipt is not None
    assert env.requester.token.allowance(env.requester.address, market.address) == escrow
    assert market.ensure_funding(escrow) is None  # the allowance covers it now


def test_signed_intent_is_funded_from_the_requesters_credit(env: TenderEnv) -> None:
    from tender.anvil import DEV_KEYS
    from tender.intents import sign_intent

    escrow = _refund(env, env.requester.reverse)
    env.requester.token.approve(env.requester.reverse.address, 0)
    intent = env.intent(AuctionType.REVERSE)
    relayer = env.relayer.reverse
    signature = sign_intent(intent, DEV_KEYS[1], chain_id=31337, market=relayer.address)
    receipt = relayer.submit_signed(intent, signature)
    assert _transfers(relayer, receipt) == []
    assert relayer.owed(env.requester.address) == 0
    assert escrow == relayer.escrow_for(intent.max_price)


def test_challenge_bond_from_a_returned_bond(env: TenderEnv) -> None:
    """A successful challenger's bond is credited back and pays its next challenge."""
    market = env.requester.dutch

    def delivered() -> bytes:
        intent = env.intent(AuctionType.DUTCH, proof_mode=ProofMode.OPTIMISTIC)
        job = market.job_id(intent)
        market.post(intent)
        env.solver.dutch.fill(job, env.provider.address, 120)
        env.provider.dutch.deliver(job, OUTPUT)
        return job

    first = delivered()
    env.challenger.dutch.challenge(first)
    env.advance(DEFAULT_PARAMS.proof_window + 1)
    # unproven: slashed, the bond credited back (the reward in Staking)
    receipt = env.relayer.dutch.expire(first)
    (slashed,) = [e for e in market.events_in(receipt) if isinstance(e, Slashed)]
    bond = DEFAULT_PARAMS.challenge_bond
    credit = env.challenger.dutch.owed(env.challenger.address)
    assert credit == bond == slashed.bond_returned
    assert env.challenger.staking.claimable(env.challenger.address) == slashed.to_challenger
    env.challenger.token.approve(market.address, 0)
    receipt = env.challenger.dutch.challenge(delivered())
    assert _transfers(market, receipt) == []
    assert env.challenger.dutch.owed(env.challenger.address) == credit - bond


def test_expiry_credits_the_slashed_stake_even_to_a_requester_that_cannot_receive(env: TenderEnv) -> None:
    """The stake of a late provider stays in Staking, credited there to the requester: no token
    moves in ``expire``, so nothing about the requester (or a token blocking Staking) can block it."""
    intent = env.intent(AuctionType.DUTCH, allow_failover=False)
    market = env.requester.dutch
    job = market.job_id(intent)
    market.post(intent)
    env.solver.dutch.fill(job, env.provider.address, 60)
    locked = market.job(job).stake_locked
    env.advance(120)
    receipt = env.relayer.dutch.expire(job)
    transfers = [(t.from_, t.to, t.value) for t in _transfers(market, receipt)]
    assert transfers == []  # nothing in, nothing out
    assert market.owed(env.requester.address) == market.escrow_for(intent.max_price)
    assert env.requester.staking.claimable(env.requester.address) == locked
