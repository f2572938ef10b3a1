"""The token verifier (``tender verifier tokens``) on a real Anvil with real onnxruntime.

A requester discloses its request to the verifiers; the watcher re-executes the delivery read
back from the chain and challenges one that fails the δ rule; three re-executors on other
backends vote; the keeper finalizes and expires. The in-process tests drive one pass at a time
(``TokenVerifier.step``), so nothing depends on the machine's speed; the last test runs the real
processes, kills one re-executor with SIGKILL and restarts it from its store.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tender.anvil import free_port
from tender.chain import JobState
from tender.devnet._supervisor import tender_command
from tender.errors import ChainError
from tender.paths import SAMPLE_MODELS
from tender.tokens import Sampling, TokenModel, TokenRequest
from tests.tokens._world import (
    AUDITED_ID,
    MODEL_ID,
    PRICE_PER_1K,
    STAKE,
    WINDOW,
    Party,
    World,
    open_job,
    served,
    token_request,
    wait_http,
)
from verifier._tokens import DisclosureRefused, RequestStore, TokenDuties, TokenVerifier

WATCH = TokenDuties(watch=True, vote=False, keep=True)
VOTE = TokenDuties(watch=False, vote=True, keep=False)


def _verifier(
    party: Party,
    model: TokenModel,
    duties: TokenDuties,
    *,
    model_id: bytes = MODEL_ID,
    store: RequestStore | None = None,
) -> TokenVerifier:
    verifier = TokenVerifier(
        market=party.market, model=model, model_id=model_id, store=store or RequestStore(), duties=duties
    )
    asyncio.run(verifier.setup())
    return verifier


@pytest.fixture
def verifiers(env: World, lm: TokenModel, backends: list[TokenModel]) -> Iterator[list[TokenVerifier]]:
    """The watcher (the challenger's key: watch and keep) and the three re-executors (vote)."""
    made = [_verifier(env.challenger, lm, WATCH)]
    made += [_verifier(p, b, VOTE) for p, b in zip(env.reexecutors, backends, strict=True)]
    yield made
    for verifier in made:
        verifier.store.close()


def _audited_model_verifiers(
    env: World, lm: TokenModel, backends: list[TokenModel]
) -> tuple[TokenVerifier, list[TokenVerifier]]:
    """The keeper and the three re-executors of the model whose every delivery is audited."""
    keeper = _verifier(env.challenger, lm, WATCH, model_id=AUDITED_ID)
    voters = [
        _verifier(p, b, VOTE, model_id=AUDITED_ID) for p, b in zip(env.reexecutors, backends, strict=True)
    ]
    return keeper, voters


def _disclose(verifiers: list[TokenVerifier], job_id: bytes, request: TokenRequest) -> None:
    for verifier in verifiers:
        verifier.disclose(job_id, request.prompt, request.sampling)


def _passes(verifiers: list[TokenVerifier], rounds: int = 2) -> None:
    for _ in range(rounds):
        for verifier in verifiers:
            verifier.step()


def test_the_watcher_challenges_a_swapped_model_and_the_reexecutors_slash_it(
    env: World, lm: TokenModel, cheap: TokenModel, verifiers: list[TokenVerifier]
) -> None:
    request = token_request(lm, "Raise ValueError if")
    job_id = open_job(env, request)
    _disclose(verifiers, job_id, request)
    env.provider.market.deliver(job_id, cheap.generate(request).tokens)
    lock = env.requester.market.job(job_id).stake_locked
    _passes(verifiers)
    job = env.requester.market.job(job_id)
    assert job.state is JobState.SLASHED
    assert job.challenger == env.challenger.address
    assert job.votes_unfaithful == 2
    assert job.votes_faithful == 0
    assert env.provider.staking.stake_of(env.provider.address) == STAKE - lock
    assert verifiers[0].actions == {"challenge": 1}
    assert not verifiers[0].live  # a final job is dropped, and its request forgotten
    assert verifiers[0].store.get(job_id) is None


def _pending(env: World) -> int:
    return len(env.w3.eth.get_block("pending")["transactions"])


def test_a_vote_that_failed_in_a_race_is_sent_again_and_decides(
    env: World, lm: TokenModel, cheap: TokenModel, verifiers: list[TokenVerifier]
) -> None:
    """Two re-executors vote into one block, each with the gas of a non-deciding vote estimated
    before the other's: the second becomes the deciding, slashing vote and runs out of gas. Its
    verifier sends it again on its next pass (the race lost the cheat its slash in a devnet run)."""
    watcher, first, second, _ = verifiers
    request = token_request(lm, "Raise ValueError if")
    job_id = open_job(env, request)
    _disclose(verifiers, job_id, request)
    env.provider.market.deliver(job_id, cheap.generate(request).tokens)
    watcher.step()
    assert env.requester.market.job(job_id).state is JobState.CHALLENGED
    env.chain.rpc("evm_setAutomine", [False])
    try:
        with ThreadPoolExecutor(2) as pool:
            voting = [pool.submit(first.step)]
            deadline = time.monotonic() + 60
            while _pending(env) < 1:
                assert time.monotonic() < deadline, "the first vote was never sent"
                time.sleep(0.05)
            voting.append(pool.submit(second.step))
            while _pending(env) < 2:
                assert time.monotonic() < deadline, "the second vote was never sent"
                time.sleep(0.05)
            env.chain.rpc("evm_mine", [])
            for future in voting:
                future.result(timeout=60)
    finally:
        env.chain.rpc("evm_setAutomine", [True])
    job = env.requester.market.job(job_id)
    assert (job.state, job.votes_unfaithful) == (JobState.CHALLENGED, 1), "the race did not happen"
    assert second.actions.get("vote", 0) + first.actions.get("vote", 0) == 1
    second.step()  # the next pass: the vote is sent again, now with a deciding vote's gas
    job = env.requester.market.job(job_id)
    assert job.state is JobState.SLASHED
    assert job.votes_unfaithful == 2


@pytest.mark.parametrize("sampling", [Sampling(), Sampling(temperature=0.8, top_k=40, seed=99)])
def test_an_honest_delivery_is_not_challenged_and_the_keeper_settles_it(
    env: World, lm: TokenModel, verifiers: list[TokenVerifier], sampling: Sampling
) -> None:
    request = token_request(lm, "If the file", sampling=sampling)
    job_id = open_job(env, request)
    _disclose(verifiers, job_id, request)
    tokens = lm.generate(request).tokens
    env.provider.market.deliver(job_id, tokens)
    _passes(verifiers)
    assert env.requester.market.job(job_id).state is JobState.DELIVERED  # judged faithful: no challenge
    env.advance(WINDOW + 1)
    _passes(verifiers)
    assert env.requester.market.job(job_id).state is JobState.SETTLED
    assert env.requester.market.owed(env.provider.address) == PRICE_PER_1K * len(tokens) // 1000
    assert verifiers[0].actions == {"finalize": 1}
    with pytest.raises(DisclosureRefused) as refused:  # an ended job is not kept
        verifiers[1].disclose(job_id, request.prompt, request.sampling)
    assert refused.value.code == "final"


def test_an_audit_the_market_draws_is_voted_and_an_honest_delivery_settles(
    env: World, lm: TokenModel, backends: list[TokenModel]
) -> None:
    keeper, voters = _audited_model_verifiers(env, lm, backends)
    request = token_request(lm, "The default is", 32)
    job_id = open_job(env, request, model_id=AUDITED_ID)
    _disclose(voters, job_id, request)
    env.provider.market.deliver(job_id, lm.generate(request).tokens)
    env.advance(WINDOW + 1)
    keeper.step()  # finalize draws the audit (the model audits every delivery)
    assert env.requester.market.job(job_id).state is JobState.CHALLENGED
    _passes(voters)
    job = env.requester.market.job(job_id)
    assert job.state is JobState.SETTLED
    assert job.votes_faithful == 2
    assert env.provider.staking.stake_of(env.provider.address) == STAKE


def test_a_request_nobody_disclosed_is_not_judged_and_its_audit_pays_the_provider(
    env: World, lm: TokenModel, backends: list[TokenModel]
) -> None:
    keeper, voters = _audited_model_verifiers(env, lm, backends)
    request = token_request(lm, "Return the", 24)
    job_id = open_job(env, request, model_id=AUDITED_ID)
    tokens = lm.generate(request).tokens
    env.provider.market.deliver(job_id, tokens)
    env.advance(WINDOW + 1)
    keeper.step()
    _passes(voters)
    job = env.requester.market.job(job_id)
    assert job.state is JobState.CHALLENGED
    assert job.votes_faithful == job.votes_unfaithful == 0  # nobody can re-execute what it never saw
    env.advance(WINDOW + 1)
    keeper.step()
    assert env.requester.market.job(job_id).state is JobState.SETTLED
    assert env.requester.market.owed(env.provider.address) == PRICE_PER_1K * len(tokens) // 1000


def test_an_rpc_outage_fails_passes_not_the_verifier_and_its_duty_is_done_when_the_chain_is_back(
    env: World, lm: TokenModel, cheap: TokenModel
) -> None:
    """The watcher reaches the chain through a proxy that goes away: its passes fail (health 503,
    the daemon keeps running), and once the chain answers again it challenges the cheat."""
    from web3 import Web3

    from tender.chain import TokenMarket, TxSender
    from tests._proxy import OutageProxy

    request = token_request(lm, "Raise ValueError if", 24)
    job_id = open_job(env, request)
    with OutageProxy(env.chain.rpc_url) as proxy:
        w3 = Web3(Web3.HTTPProvider(proxy.url, request_kwargs={"timeout": 5}))
        market = TokenMarket(w3, env.market_address, sender=TxSender(w3, env.challenger.key))
        watcher = TokenVerifier(market=market, model=lm, model_id=MODEL_ID, duties=WATCH, poll_interval_s=0.1)

        async def scenario() -> tuple[dict[str, Any], JobState]:
            await watcher.setup()
            watcher.disclose(job_id, request.prompt, request.sampling)
            proxy.go_down()
            env.provider.market.deliver(job_id, cheap.generate(request).tokens)  # while it is down
            (follow,) = watcher.tasks()
            task = asyncio.create_task(follow)
            try:
                for _ in range(2400):  # the first pass fails at once; a busy machine gets 2 min
                    if not watcher.health()["ok"]:
                        break
                    await asyncio.sleep(0.05)
                down = watcher.health()
                proxy.come_back()
                state = JobState.DELIVERED
                for _ in range(1200):  # up to 2 min of passes on a busy machine
                    state = await asyncio.to_thread(lambda: env.requester.market.job(job_id).state)
                    if state is not JobState.DELIVERED:
                        break
                    await asyncio.sleep(0.1)
                return down, state
            finally:
                watcher.request_stop()
                await task

        down, state = asyncio.run(scenario())
    assert down["ok"] is False
    assert "chain unreachable" in down["reasons"][0]
    assert state is JobState.CHALLENGED
    assert env.requester.market.job(job_id).challenger == env.challenger.address


def test_the_keeper_expires_a_job_nothing_was_delivered_for(
    env: World, lm: TokenModel, verifiers: list[TokenVerifier]
) -> None:
    job_id = open_job(env, token_request(lm, "The default is"))
    _passes(verifiers)
    assert env.requester.market.job(job_id).state is JobState.AWARDED
    env.advance(121)
    _passes(verifiers)
    assert env.requester.market.job(job_id).state is JobState.EXPIRED
    assert verifiers[0].actions == {"expire": 1}


def test_disclosures_are_checked_against_the_chain_and_kept_across_a_restart(
    env: World, lm: TokenModel, tmp_path: Path
) -> None:
    request = token_request(lm, "Return the", sampling=Sampling(temperature=0.5, top_k=8, seed=3))
    job_id = open_job(env, request)
    other = open_job(env, token_request(lm, "If the file"), model_id=AUDITED_ID)
    store = tmp_path / "verifier.db"
    verifier = TokenVerifier(
        market=env.reexecutors[0].market,
        model=lm,
        model_id=MODEL_ID,
        store=RequestStore(store),
        duties=VOTE,
        listen=f"127.0.0.1:{free_port()}",
    )
    url = f"http://{verifier.listen}/v1/tokens/requests"
    good = {
        "jobId": "0x" + job_id.hex(),
        "prompt": list(request.prompt),
        "temperature": 0.5,
        "topK": 8,
        "seed": 3,
    }

    async def scenario() -> list[tuple[int, dict[str, object]]]:
        await verifier.setup()
        try:
            async with httpx.AsyncClient() as http:
                answers = []
                for body in (
                    {**good, "seed": 4},  # another request: its hash is not the job's
                    {**good, "jobId": "0x" + "ab" * 32},  # no such job
                    {**good, "jobId": "0x" + other.hex()},  # a job of another model
                    {**good, "prompt": []},  # bad body
                    {**good, "prompt": [2**32]},
                    {**good, "extra": 1},
                    good,
                ):
                    response = await http.post(url, json=body)
                    answers.append((response.status_code, response.json()))
                health = (await http.get(f"http://{verifier.listen}/v1/health")).json()
                answers.append((200, health))
                return answers
        finally:
            await verifier.stop()

    answers = asyncio.run(scenario())
    assert [(status, body.get("error")) for status, body in answers[:6]] == [
        (409, "request_mismatch"),
        (404, "unknown_job"),
        (409, "other_model"),
        (400, "invalid"),
        (400, "invalid"),
        (400, "invalid"),
    ]
    assert answers[3][1]["field"] == "prompt"
    assert answers[6] == (200, {"jobId": good["jobId"], "stored": True})
    assert answers[7][1]["requests"] == 1  # only the good disclosure was kept
    reopened = RequestStore(store)  # a restarted verifier still holds it
    assert reopened.get(job_id) == (request.prompt, request.sampling)
    assert len(reopened) == 1
    reopened.close()


def test_a_verifier_or_a_desk_given_another_model_file_refuses_to_start(
    env: World, cheap: TokenModel
) -> None:
    """The registry pins the ONNX file of a token model id: a re-executor (or a desk) pointed at
    another file would judge (or serve) another model, so it stops at start-up with one line."""
    verifier = TokenVerifier(market=env.reexecutors[0].market, model=cheap, model_id=MODEL_ID, duties=VOTE)
    with pytest.raises(ChainError, match="the registry pins"):
        asyncio.run(verifier.setup())
    with pytest.raises(ChainError, match="is not registered"):
        env.requester.market.check_model(b"\x01" * 32, cheap.path)
    args = served(env, "lm-cheap")
    for role in (["verifier", "tokens"], ["provider", "tokens", "--port", str(free_port())]):
        done = subprocess.run(
            [*tender_command(), *role, *args],
            env={**os.environ, "TENDER_PRIVATE_KEY": env.reexecutors[0].key},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2, done.stderr
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, done.stderr
        assert "the registry pins" in lines[0]


def _spawn(args: list[str], key: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*tender_command(), *args], env={**os.environ, "TENDER_PRIVATE_KEY": key}, stdout=subprocess.DEVNULL
    )


def _wait_state(env: World, job_id: bytes, wanted: set[JobState], timeout: float = 180) -> JobState:
    end = time.monotonic() + timeout
    state = env.requester.market.job(job_id).state
    while state not in wanted and time.monotonic() < end:
        time.sleep(0.3)
        state = env.requester.market.job(job_id).state
    return state


def test_verifier_processes_slash_a_cheating_desk_with_a_reexecutor_killed_and_restarted(
    env: World, lm: TokenModel, tmp_path: Path
) -> None:
    """Real processes: a desk serving the cheaper model, two re-executors (quorum 2), the
    watcher. The requester discloses to the re-executors through the SDK; one is killed with
    SIGKILL after the delivery and restarted from its store; the watcher, started last and told
    the request over HTTP, challenges; both re-executors vote and the desk is slashed."""
    from tender.client import request_tokens

    desk_port = free_port()
    processes: list[subprocess.Popen[bytes]] = []

    def verifier(n: int, key: str, *duties: str, port: int) -> subprocess.Popen[bytes]:
        args = ["verifier", "tokens", *served(env), "--listen", f"127.0.0.1:{port}"]
        args += [
            "--store",
            str(tmp_path / f"v{n}.db"),
            "--poll-interval",
            "0.2",
            "--log-level",
            "WARNING",
            *duties,
        ]
        process = _spawn(args, key)
        processes.append(process)
        wait_http(f"http://127.0.0.1:{port}/v1/health", process)
        return process

    try:
        desk = _spawn(
            [
                "provider",
                "tokens",
                *served(env),
                "--port",
                str(desk_port),
                "--misbehave",
                "cheap",
                "--cheap-model",
                str(SAMPLE_MODELS / "lm-cheap"),
            ],
            env.provider.key,
        )
        processes.append(desk)
        wait_http(f"http://127.0.0.1:{desk_port}/health", desk)
        ports = [free_port(), free_port(), free_port()]
        vote_only = ("--no-watch", "--no-keep")
        verifier(1, env.reexecutors[0].key, *vote_only, "--backend", "disable-all", port=ports[1])
        second = verifier(2, env.reexecutors[1].key, *vote_only, "--backend", "extended", port=ports[2])
        prompt = lm.encode("Raise ValueError if")
        result = asyncio.run(
            request_tokens(
                env.requester.market,
                [f"http://127.0.0.1:{desk_port}"],
                prompt,
                max_tokens=40,
                max_price_per1k=10**17,
                model_id=MODEL_ID,
                verifiers=[f"http://127.0.0.1:{p}" for p in ports[1:]],
            )
        )
        assert result.disclosed == 2
        assert result.tokens != list(lm.generate(TokenRequest(tuple(prompt), 40)).tokens)  # the cheap model's
        assert _wait_state(env, result.job_id, {JobState.DELIVERED}) is JobState.DELIVERED
        second.send_signal(signal.SIGKILL)
        assert second.wait(timeout=30) == -signal.SIGKILL
        verifier(2, env.reexecutors[1].key, *vote_only, "--backend", "extended", port=ports[2])
        verifier(0, env.challenger.key, "--no-vote", port=ports[0])
        disclosed = httpx.post(
            f"http://127.0.0.1:{ports[0]}/v1/tokens/requests",
            json={"jobId": "0x" + result.job_id.hex(), "prompt": list(prompt)},
        )
        assert disclosed.status_code == 200
        final = {JobState.SETTLED, JobState.SLASHED, JobState.EXPIRED}
        assert _wait_state(env, result.job_id, final) is JobState.SLASHED
        job = env.requester.market.job(result.job_id)
        assert job.challenger == env.challenger.address
        assert job.votes_unfaithful == 2  # the restarted re-executor voted from the request it stored
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            process.wait(timeout=30)
