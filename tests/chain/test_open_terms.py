"""A reverse job's terms while it is Open (issue 17): the market keeps only their hash, and the
wrapper rebuilds them from ``IntentPosted``; on a real Anvil with the deployed markets."""

from __future__ import annotations

from dataclasses import replace

import pytest
from chain_env import TOKEN_UNIT, TenderEnv

from tender.chain import AuctionTerms, IntentPosted, JobState, JobTerms, OpenTerms
from tender.errors import ContractRevert
from tender.intents import AuctionType, Bid


def _posted(env: TenderEnv, **changes: object) -> tuple[bytes, IntentPosted]:
    intent = env.intent(AuctionType.REVERSE, **changes)
    market = env.requester.reverse
    receipt = market.post(intent)
    (event,) = [e for e in market.events_in(receipt) if isinstance(e, IntentPosted)]
    return market.job_id(intent), event


def test_terms_rebuilt_from_the_event_are_the_ones_the_market_accepts(env: TenderEnv) -> None:
    job, event = _posted(env, min_stake=3 * TOKEN_UNIT, price_weight_bps=7_000, allow_failover=True)
    market = env.solver.reverse
    terms = market.terms(job)
    block = env.w3.eth.get_block(event.block_number)
    params = market.params()
    assert terms == OpenTerms.from_intent(
        event.intent,
        posted_at=int(block["timestamp"]),
        fee_bps=params.fee_bps,
        stake_multiple=params.stake_multiple,
    )
    assert terms.auction.job_terms == terms.job.hash()
    assert (terms.auction.min_stake, terms.auction.price_weight_bps, terms.job.allow_failover) == (
        3 * TOKEN_UNIT,
        7_000,
        True,
    )
    # the chain holds only the state; the wrapper's record is the terms
    raw = market.fn.job(job).call()
    assert raw[1] == JobState.OPEN
    assert raw[0] == "0x" + "00" * 20
    record = market.job(job)
    assert (record.requester, record.max_price, record.deadline, record.auction_end) == (
        env.requester.address,
        event.intent.max_price,
        event.intent.deadline,
        event.auction_end,
    )
    # the score the chain computes from the terms is the one the Python terms compute
    assert market.score_of(job, 4 * TOKEN_UNIT, 60) == terms.auction.score(4 * TOKEN_UNIT, 60) > 0


@pytest.mark.parametrize(
    "field",
    ["max_price", "min_stake", "auction_end", "deadline", "price_weight_bps", "stake_multiple"],
)
def test_a_bid_with_altered_terms_is_refused(env: TenderEnv, field: str) -> None:
    job, _ = _posted(env)
    market = env.solver.reverse
    terms = market.terms(job)
    altered = replace(terms.auction, **{field: getattr(terms.auction, field) + 1})
    bid = Bid(provider=env.provider.address, price=4 * TOKEN_UNIT, latency=60)
    with pytest.raises(ContractRevert) as caught:
        market._send(market.fn.bid(job, altered.to_abi(), bid.to_abi()))
    assert caught.value.name == "TermsMismatch"
    assert int(market.best_bid(job).provider, 16) == 0


def test_an_award_that_names_another_requester_is_refused(env: TenderEnv) -> None:
    job, _ = _posted(env)
    market = env.relayer.reverse
    market.using(env.solver.sender).bid(
        job, Bid(provider=env.provider.address, price=4 * TOKEN_UNIT, latency=60)
    )
    env.advance(61)
    terms = market.terms(job)
    thief: JobTerms = replace(terms.job, requester=env.relayer.address)
    forged: AuctionTerms = replace(terms.auction, job_terms=thief.hash())
    for auction_terms in (terms.auction, forged):
        with pytest.raises(ContractRevert) as caught:
            market._send(market.fn.award(job, auction_terms.to_abi(), thief.to_abi()))
        assert caught.value.name == "TermsMismatch"
    market.award(job)
    awarded = market.job(job)
    assert awarded.state is JobState.AWARDED
    assert (awarded.requester, awarded.model_id, awarded.input_commitment) == (
        terms.job.requester,
        terms.job.model_id,
        terms.job.input_commitment,
    )


def test_stale_cached_terms_fail_and_are_forgotten(env: TenderEnv) -> None:
    """A reorg that re-posts an intent in another block moves its terms: the cached ones revert
    ``TermsMismatch``, and after ``forget`` the wrapper reads the new ones."""
    job, _ = _posted(env)
    market = env.solver.reverse
    terms = market.terms(job)
    market._terms[job] = replace(
        terms, auction=replace(terms.auction, auction_end=terms.auction.auction_end + 1)
    )
    bid = Bid(provider=env.provider.address, price=4 * TOKEN_UNIT, latency=60)
    with pytest.raises(ContractRevert) as caught:
        market.bid(job, bid)
    assert caught.value.name == "TermsMismatch"
    market.forget(job)
    market.bid(job, bid)
    assert market.best_bid(job).provider == env.provider.address


def test_a_refund_without_bids_pays_the_escrow_back_from_the_terms(env: TenderEnv) -> None:
    job, event = _posted(env)
    market = env.relayer.reverse
    before = market.owed(env.requester.address)
    env.advance(61)
    market.refund(job)
    refunded = market.job(job)
    assert refunded.state is JobState.REFUNDED
    assert (refunded.requester, refunded.max_price) == (env.requester.address, event.intent.max_price)
    assert market.owed(env.requester.address) - before == event.escrow


def test_terms_of_an_unknown_job_are_a_lookup_error(env: TenderEnv) -> None:
    with pytest.raises(LookupError):
        env.solver.reverse.terms(b"\x42" * 32)
