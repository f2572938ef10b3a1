"""The quote market on a real Anvil: the Python EIP-712 quote and commitment hashing matches the
contract's, a signed quote opens and awards a job in one transaction, the terms read from the
event settle it, and a result commitment to another output penalises its provider."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest
from chain_env import COMMITMENT, OUTPUT, TOKEN_UNIT, TenderEnv, proof_for

from tender.anvil import DEV_KEYS
from tender.chain import (
    AsyncQuoteMarket,
    AwardSkip,
    CommitmentSlashed,
    JobState,
    Market,
    QuoteAwarded,
    QuoteMarket,
)
from tender.errors import ContractRevert, IntentError
from tender.intents import AuctionType, NonceSequence
from tender.quotes import (
    Quote,
    output_hash,
    recover_commitment_signer,
    recover_quote_signer,
    sign_commitment,
    sign_quote,
)

PROVIDER_KEY = DEV_KEYS[2]
SOLVER_KEY = DEV_KEYS[3]


def _market(env: TenderEnv, who: str = "requester") -> QuoteMarket:
    actor = getattr(env, who)
    return QuoteMarket(env.w3, env.deployment.market("quote"), sender=actor.sender)


def _opened(
    env: TenderEnv, *, price: int = 2 * TOKEN_UNIT, key: str = PROVIDER_KEY
) -> tuple[bytes, QuoteAwarded]:
    market = _market(env)
    env.requester.token.approve(market.address, 2**256 - 1)
    intent = env.intent(AuctionType.QUOTE)
    job = market.job_id(intent)
    quote = Quote(job_id=job, provider=env.provider.address, price=price, latency=60, expiry=env.now() + 30)
    signature = sign_quote(quote, key, chain_id=market.chain_id, market=market.address)
    receipt = market.open_awarded(intent, quote, signature)
    (awarded,) = [e for e in market.events_in(receipt) if isinstance(e, QuoteAwarded)]
    return job, awarded


def test_python_hashing_matches_the_contract(env: TenderEnv) -> None:
    market = _market(env)
    intent = env.intent(AuctionType.QUOTE)
    job = market.job_id(intent)
    assert market.hash_intent(intent) == job
    quote = Quote(job_id=job, provider=env.provider.address, price=123, latency=7, expiry=2**40 + 5)
    assert market.hash_quote(quote) == market.quote_digest(quote)
    out = output_hash(OUTPUT)
    assert market.hash_commitment(job, out) == market.commitment_digest(job, out)
    signature = sign_quote(quote, PROVIDER_KEY, chain_id=market.chain_id, market=market.address)
    assert recover_quote_signer(quote, signature, chain_id=market.chain_id, market=market.address) == (
        env.provider.address
    )
    signed = sign_commitment(job, out, PROVIDER_KEY, chain_id=market.chain_id, market=market.address)
    assert (
        recover_commitment_signer(job, out, signed, chain_id=market.chain_id, market=market.address)
        == env.provider.address
    )


def test_open_awarded_then_deliver_settles(env: TenderEnv) -> None:
    job, awarded = _opened(env)
    market = _market(env, "provider")
    terms = awarded.terms
    assert awarded.provider == terms.provider == env.provider.address
    assert market.job_state(job) is JobState.AWARDED
    assert bytes(market.fn.hashTerms(terms.to_abi()).call()) == terms.hash()
    receipt = market.deliver_quoted(job, terms, OUTPUT, proof_for(COMMITMENT, OUTPUT))
    assert market.job_state(job) is JobState.SETTLED
    assert any(e.name == "Settled" for e in market.events_in(receipt))
    assert market.owed(env.provider.address) == terms.price


def test_a_solver_signs_quotes_for_its_provider(env: TenderEnv) -> None:
    # DEV_KEYS[3] is the fixture's solver, authorised by the provider
    job, awarded = _opened(env, key=SOLVER_KEY)
    assert awarded.provider == env.provider.address
    assert _market(env).job_state(job) is JobState.AWARDED


def test_forged_quote_is_refused_and_changes_nothing(env: TenderEnv) -> None:
    market = _market(env)
    env.requester.token.approve(market.address, 2**256 - 1)
    intent = env.intent(AuctionType.QUOTE)
    job = market.job_id(intent)
    quote = Quote(
        job_id=job, provider=env.provider.address, price=TOKEN_UNIT, latency=60, expiry=env.now() + 30
    )
    signature = sign_quote(quote, DEV_KEYS[7], chain_id=market.chain_id, market=market.address)
    with pytest.raises(ContractRevert) as err:
        market.open_awarded(intent, quote, signature)
    assert err.value.name == "InvalidQuoteSigner"
    assert market.job_state(job) is JobState.NONE
    assert not market.is_nonce_used(env.requester.address, intent.nonce)


def test_commitment_to_another_output_is_slashed_once(env: TenderEnv) -> None:
    job, awarded = _opened(env)
    provider = _market(env, "provider")
    terms = awarded.terms
    promised = output_hash((1, 2, 3))
    signature = sign_commitment(
        job, promised, PROVIDER_KEY, chain_id=provider.chain_id, market=provider.address
    )
    provider.deliver_quoted(job, terms, OUTPUT, proof_for(COMMITMENT, OUTPUT))
    anyone = _market(env, "relayer")
    receipt = anyone.slash_commitment(job, terms, output_hash(OUTPUT), promised, signature)
    (slashed,) = [e for e in anyone.events_in(receipt) if isinstance(e, CommitmentSlashed)]
    assert slashed.taken == terms.stake_locked
    assert env.provider.staking.claimable(env.requester.address) == terms.stake_locked
    with pytest.raises(ContractRevert) as err:
        anyone.slash_commitment(job, terms, output_hash(OUTPUT), promised, signature)
    assert err.value.name == "InvalidState"


def test_matching_commitment_is_never_slashed(env: TenderEnv) -> None:
    job, awarded = _opened(env)
    provider = _market(env, "provider")
    delivered = output_hash(OUTPUT)
    signature = sign_commitment(
        job, delivered, PROVIDER_KEY, chain_id=provider.chain_id, market=provider.address
    )
    provider.deliver_quoted(job, awarded.terms, OUTPUT, proof_for(COMMITMENT, OUTPUT))
    with pytest.raises(ContractRevert) as err:
        _market(env, "relayer").slash_commitment(job, awarded.terms, delivered, delivered, signature)
    assert err.value.name == "CommitmentMatches"


def test_open_awarded_batch_awards_each_entry_and_skips_a_spoiled_one(env: TenderEnv) -> None:
    # three entries relayed with the requester's acceptances; the middle one's nonce is used by
    # the first (the same intent twice): it is skipped, the others are awarded and settle
    market = _market(env, "relayer")
    env.requester.token.approve(market.address, 2**256 - 1)
    intents = [env.intent(AuctionType.QUOTE) for _ in range(2)]
    intents.insert(1, intents[0])
    quotes = [
        Quote(
            job_id=market.job_id(i),
            provider=env.provider.address,
            price=TOKEN_UNIT,
            latency=60,
            expiry=env.now() + 30,
        )
        for i in intents
    ]
    signatures = [
        sign_quote(q, PROVIDER_KEY, chain_id=market.chain_id, market=market.address) for q in quotes
    ]
    accepts = [sign_quote(q, DEV_KEYS[1], chain_id=market.chain_id, market=market.address) for q in quotes]
    before = env.requester.token.balance_of(env.requester.address)
    receipt = market.open_awarded_batch(intents, quotes, signatures, accepts)
    awarded, skipped = market.award_outcome(receipt)
    assert skipped == {1: AwardSkip.NONCE}
    assert sorted(awarded) == [0, 2]
    assert before - env.requester.token.balance_of(env.requester.address) == 2 * market.escrow_for(TOKEN_UNIT)
    provider = _market(env, "provider")
    for index, terms in awarded.items():
        job = quotes[index].job_id
        assert provider.job_state(job) is JobState.AWARDED
        provider.deliver_quoted(job, terms, OUTPUT, proof_for(COMMITMENT, OUTPUT))
        assert provider.job_state(job) is JobState.SETTLED
    with pytest.raises(ContractRevert) as err:
        market.open_awarded_batch(intents[:1], quotes[:1], signatures[:1], accepts[:1])
    assert err.value.name == "NothingAwarded"


def test_sdk_award_batcher_sends_concurrent_awards_in_one_transaction(env: TenderEnv) -> None:
    from tender.client._awards import AwardBatcher

    market = _market(env)
    env.requester.token.approve(market.address, 2**256 - 1)
    intents = [env.intent(AuctionType.QUOTE) for _ in range(3)]
    intents.append(intents[0])  # the same intent again: skipped by the chain, the others awarded
    quotes = [
        Quote(
            job_id=market.job_id(i),
            provider=env.provider.address,
            price=TOKEN_UNIT,
            latency=60,
            expiry=env.now() + 30,
        )
        for i in intents
    ]
    signatures = [
        sign_quote(q, PROVIDER_KEY, chain_id=market.chain_id, market=market.address) for q in quotes
    ]

    async def go() -> list[Any]:
        batcher = AwardBatcher(market, max_batch=4, max_wait_s=30.0)  # full at 4: sent without waiting
        try:
            return await asyncio.gather(
                *(batcher.award(i, q, s) for i, q, s in zip(intents, quotes, signatures, strict=True))
            )
        finally:
            await batcher.close()

    receipts = asyncio.run(go())
    assert len({bytes(r["transactionHash"]) for r in receipts}) == 1
    awarded = [e.job_id for e in market.events_in(receipts[0]) if isinstance(e, QuoteAwarded)]
    assert awarded == [q.job_id for q in quotes[:3]]
    assert all(market.job_state(q.job_id) is JobState.AWARDED for q in quotes[:3])


def test_quote_fields_are_checked() -> None:
    with pytest.raises(IntentError, match="quote price"):
        Quote(job_id=b"\x00" * 32, provider="0x" + "11" * 20, price=0, latency=1, expiry=1)
    with pytest.raises(IntentError, match="job id"):
        Quote(job_id=b"\x00", provider="0x" + "11" * 20, price=1, latency=1, expiry=1)


def test_nonce_sequence_reuses_a_bitmap_word() -> None:
    seq = NonceSequence(word=5)
    nonces = [seq.next() for _ in range(257)]
    assert {n >> 8 for n in nonces[:256]} == {5}
    assert [n & 0xFF for n in nonces[:256]] == list(range(256))
    assert nonces[256] >> 8 != 5


def test_async_quote_market_has_every_method_of_quote_market() -> None:
    own = {n for n, f in inspect.getmembers(QuoteMarket, inspect.isfunction) if not n.startswith("_")}
    own -= {n for n, f in inspect.getmembers(Market, inspect.isfunction)}
    twins = {n for n, f in inspect.getmembers(AsyncQuoteMarket, inspect.isfunction)}
    assert own - twins == set()
    for n in own:
        assert inspect.signature(getattr(AsyncQuoteMarket, n)).parameters.keys() == (
            inspect.signature(getattr(QuoteMarket, n)).parameters.keys()
        )


def test_async_twin_opens_and_reads(env: TenderEnv) -> None:
    market = AsyncQuoteMarket(_market(env))
    env.requester.token.approve(market.address, 2**256 - 1)
    intent = env.intent(AuctionType.QUOTE)

    async def go() -> JobState:
        job = await market.job_id(intent)
        quote = Quote(
            job_id=job, provider=env.provider.address, price=TOKEN_UNIT, latency=60, expiry=env.now() + 30
        )
        signature = sign_quote(quote, PROVIDER_KEY, chain_id=market.chain_id, market=market.address)
        receipt = await market.open_awarded(intent, quote, signature)
        assert (await market.terms_in(receipt)).price == TOKEN_UNIT
        return await market.job_state(job)

    assert asyncio.run(go()) is JobState.AWARDED
