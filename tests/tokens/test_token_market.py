"""Token jobs on a real Anvil with real onnxruntime: per-1k pricing, delivery on chain, and
re-execution disputes decided by a quorum of staked re-executors.

The provider generates with ``models/lm`` (or cheats); the three re-executors re-run the delivery
read back from the chain (``TokenDelivered``) on *other* backends (graph optimisations off, two
threads; the extended-optimisation level with one thread) and vote ``tender.tokens.audit``'s
verdict. A faithful delivery settles and pays the delivered tokens; a swapped model and altered
tokens are slashed by the quorum; a truncated sequence never gets on chain and expires slashed;
an honest delivery is never slashed, whoever challenges it.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from tender.chain import (
    JobState,
    TokenQuote,
    request_hash,
    token_output_hash,
)
from tender.errors import ContractRevert
from tender.intents import recover_digest_signer
from tender.quotes import sign_commitment
from tender.tokens import Sampling, TokenModel, TokenRequest, audit
from tests.tokens._world import (
    AUDITED_ID,
    BOND,
    MODEL_ID,
    PRICE_PER_1K,
    STAKE,
    WINDOW,
    World,
    open_job,
    served,
    token_request,
)


def _reexecute_and_vote(
    env: World, backends: list[TokenModel], job_id: bytes, request: TokenRequest
) -> list[bool]:
    """Each re-executor reads the delivery from the chain, audits it on its own backend and votes
    until the job is decided."""
    tokens = env.requester.market.delivered_tokens(job_id)
    s = request.sampling
    bound = request_hash(request.prompt, temperature=s.temperature, top_k=s.top_k, seed=s.seed)
    assert env.requester.market.request_hash_of(job_id) == bound  # the request the job was opened for
    verdicts: list[bool] = []
    for party, backend in zip(env.reexecutors, backends, strict=True):
        if env.requester.market.job(job_id).state is not JobState.CHALLENGED:
            break
        verdict = audit(backend, request, tokens).accepted
        verdicts.append(verdict)
        party.market.vote(job_id, verdict)
    return verdicts


def test_quote_digest_matches_the_contract(env: World, lm: TokenModel) -> None:
    request = token_request(lm, "Return the")
    quote = TokenQuote(
        env.requester.address, env.provider.address, MODEL_ID, b"\x07" * 32, 64, PRICE_PER_1K, 60, 2**40, 3
    )
    assert env.requester.market.hash_quote(quote) == quote.digest(
        chain_id=env.w3.eth.chain_id, market=env.market_address
    )
    assert quote.escrow == (PRICE_PER_1K * 64 + 999) // 1000
    assert request.max_tokens == 48


def test_faithful_delivery_settles_and_pays_delivered_tokens(env: World, lm: TokenModel) -> None:
    request = token_request(lm, "The default is")
    job_id = open_job(env, request)
    tokens = lm.generate(request).tokens
    env.provider.market.deliver(job_id, tokens)
    job = env.requester.market.job(job_id)
    assert job.state is JobState.DELIVERED
    assert job.output_hash == token_output_hash(tokens)
    assert env.requester.market.delivered_tokens(job_id) == list(tokens)
    env.advance(WINDOW + 1)
    env.challenger.market.finalize(job_id)
    job = env.requester.market.job(job_id)
    assert job.state is JobState.SETTLED
    assert env.requester.market.owed(env.provider.address) == PRICE_PER_1K * len(tokens) // 1000
    assert env.requester.market.owed(env.requester.address) == job.escrow - job.paid
    assert env.provider.staking.locked_of(env.provider.address) == 0


@pytest.mark.parametrize("sampling", [Sampling(), Sampling(temperature=0.8, top_k=40, seed=1234)])
def test_honest_delivery_challenged_and_reexecuted_elsewhere_is_never_slashed(
    env: World, lm: TokenModel, backends: list[TokenModel], sampling: Sampling
) -> None:
    request = token_request(lm, "If the file", sampling=sampling)
    job_id = open_job(env, request)
    tokens = lm.generate(request).tokens
    env.provider.market.deliver(job_id, tokens)
    env.challenger.market.challenge(job_id)
    assert _reexecute_and_vote(env, backends, job_id, request) == [True, True]
    assert env.requester.market.job(job_id).state is JobState.SETTLED
    assert env.requester.market.owed(env.provider.address) == PRICE_PER_1K * len(tokens) // 1000 + BOND
    assert env.provider.staking.stake_of(env.provider.address) == STAKE


def test_swapped_model_is_slashed(
    env: World, lm: TokenModel, cheap: TokenModel, backends: list[TokenModel]
) -> None:
    request = token_request(lm, "Raise ValueError if")
    job_id = open_job(env, request)
    tokens = cheap.generate(request).tokens  # the cheaper model, same prompt and budget
    env.provider.market.deliver(job_id, tokens)
    env.challenger.market.challenge(job_id)
    lock = env.requester.market.job(job_id).stake_locked
    assert _reexecute_and_vote(env, backends, job_id, request) == [False, False]
    assert env.requester.market.job(job_id).state is JobState.SLASHED
    assert env.provider.staking.stake_of(env.provider.address) == STAKE - lock
    assert env.requester.market.owed(env.provider.address) == 0
    assert env.requester.market.owed(env.challenger.address) == BOND


def test_altered_tokens_are_slashed(env: World, lm: TokenModel, backends: list[TokenModel]) -> None:
    request = token_request(lm, "Return the")
    job_id = open_job(env, request)
    tokens = list(lm.generate(request).tokens)
    tokens[len(tokens) // 2] = ord("Z") if tokens[len(tokens) // 2] != ord("Z") else ord("Q")
    env.provider.market.deliver(job_id, tokens)
    env.challenger.market.challenge(job_id)
    assert _reexecute_and_vote(env, backends, job_id, request) == [False, False]
    assert env.requester.market.job(job_id).state is JobState.SLASHED


def test_truncated_sequence_is_refused_on_chain_and_expires_slashed(env: World, lm: TokenModel) -> None:
    request = token_request(lm, "The default is", max_tokens=64)
    job_id = open_job(env, request)
    tokens = lm.generate(request).tokens
    assert tokens[-1] != lm.eos_token_id  # the full budget, so a cut has no final EOS
    with pytest.raises(ContractRevert) as caught:
        env.provider.market.deliver(job_id, tokens[:20])
    assert caught.value.name == "Truncated"
    assert env.requester.market.job(job_id).state is JobState.AWARDED
    env.advance(121)
    env.challenger.market.expire(job_id)
    job = env.requester.market.job(job_id)
    assert job.state is JobState.EXPIRED
    assert env.provider.staking.claimable(env.requester.address) == job.stake_locked
    assert env.requester.market.owed(env.requester.address) == job.escrow


def test_audited_delivery_goes_to_reexecutors_and_an_honest_one_settles(
    env: World, lm: TokenModel, backends: list[TokenModel]
) -> None:
    request = token_request(lm, "If the file", max_tokens=32)
    job_id = open_job(env, request, model_id=AUDITED_ID)
    env.provider.market.deliver(job_id, lm.generate(request).tokens)
    env.advance(WINDOW + 1)
    receipt = env.challenger.market.finalize(job_id)
    assert env.challenger.market.audited_in(receipt) is True
    assert env.requester.market.job(job_id).state is JobState.CHALLENGED
    assert _reexecute_and_vote(env, backends, job_id, request) == [True, True]
    assert env.requester.market.job(job_id).state is JobState.SETTLED


def test_desk_streams_tokens_over_the_quote_path_and_delivers(env: World, lm: TokenModel) -> None:
    """A real desk process quotes per 1k, streams over HTTP after ``open``, delivers on chain."""
    import asyncio
    import os
    import subprocess
    import time as clock
    import urllib.request

    from tender.anvil import free_port
    from tender.client import request_tokens
    from tender.devnet._supervisor import tender_command

    port = free_port()
    process = subprocess.Popen(
        [*tender_command(), "provider", "tokens", *served(env), "--port", str(port)],
        env={**os.environ, "TENDER_PRIVATE_KEY": env.provider.key},
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(240):
            try:
                urllib.request.urlopen(f"{url}/health", timeout=1)
                break
            except OSError:
                clock.sleep(0.5)
        prompt = lm.encode("Return the")
        seen: list[int] = []
        result = asyncio.run(
            request_tokens(
                env.requester.market,
                [url, "http://127.0.0.1:9"],  # a desk that does not answer is skipped
                prompt,
                max_tokens=40,
                max_price_per1k=10**16,
                model_id=MODEL_ID,
                on_token=seen.append,
            )
        )
        assert result.quotes == 1
        assert result.tokens == seen == list(lm.generate(TokenRequest(tuple(prompt), 40)).tokens)
        assert result.ttft_s is not None
        assert result.delivered
        # the desk's signed result commitment, checked by the SDK, is to the streamed (and delivered) ids
        assert result.output_hash == token_output_hash(result.tokens)
        assert result.commitment is not None
        digest = env.requester.market.commitment_digest(result.job_id, result.output_hash)
        assert recover_digest_signer(digest, result.commitment) == env.provider.address
        with pytest.raises(ContractRevert, match="CommitmentMatches"):  # an honest desk cannot lose by it
            env.challenger.market.slash_commitment(result.job_id, result.output_hash, result.commitment)
        job = env.requester.market.job(result.job_id)
        assert job.state is JobState.DELIVERED
        assert job.output_hash == token_output_hash(result.tokens)
        assert job.price_per1k == result.price_per1k
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_commitment_to_streamed_tokens_slashes_a_desk_that_delivers_others(
    env: World, lm: TokenModel
) -> None:
    """A desk streams the faithful continuation and signs its result commitment, then puts a
    shorter one on chain: the requester's commitment slashes it (before settlement: lock to the
    requester, escrow back), and an honest desk's own commitment slashes nothing."""
    request = token_request(lm, "Return the", 32)
    job_id = open_job(env, request)
    streamed = list(lm.generate(request).tokens)
    assert lm.eos_token_id is not None
    committed = token_output_hash(streamed)
    signature = sign_commitment(
        job_id, committed, env.provider.key, chain_id=env.w3.eth.chain_id, market=env.market_address
    )
    cheaper = [*streamed[:4], lm.eos_token_id]
    env.provider.market.deliver(job_id, cheaper)
    lock = env.requester.market.job(job_id).stake_locked
    env.requester.market.slash_commitment(job_id, committed, signature)
    job = env.requester.market.job(job_id)
    assert job.state is JobState.SLASHED
    assert env.requester.market.owed(env.requester.address) == job.escrow
    assert env.requester.staking.claimable(env.requester.address) == lock
    with pytest.raises(ContractRevert, match="WrongState"):  # once
        env.requester.market.slash_commitment(job_id, committed, signature)

    honest = open_job(env, replace(request, max_tokens=31))
    tokens = list(lm.generate(replace(request, max_tokens=31)).tokens)
    own = sign_commitment(
        honest,
        token_output_hash(tokens),
        env.provider.key,
        chain_id=env.w3.eth.chain_id,
        market=env.market_address,
    )
    env.provider.market.deliver(honest, tokens)
    with pytest.raises(ContractRevert, match="CommitmentMatches"):
        env.requester.market.slash_commitment(honest, token_output_hash(tokens), own)
    env.advance(WINDOW + 1)
    env.requester.market.finalize(honest)
    assert env.requester.market.job(honest).state is JobState.SETTLED
