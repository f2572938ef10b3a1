"""The provider against the real market on Anvil: real contracts, onnxruntime and EZKL proofs.

Quote, award (a Dutch fill by the provider), input upload, inference, proof, delivery and
payment; then the same job through a node killed with SIGKILL while proving and restarted.
Payment is a credit in the market (``owed``) that a ``withdraw`` turns into tokens: the node's
own once it passes ``withdraw_threshold`` (off in these tests unless one says otherwise).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from provider_testing import running, wait_state

from provider import ProviderChain, ProviderConfig, ProviderNode, ProviderSection
from tender.anvil import DEV_KEYS, Anvil, free_port
from tender.chain import Deployment, JobState, Market, Staking, Token, TxSender, connect
from tender.intents import AuctionType, Intent, ProofMode, random_nonce
from tender.models import Bundle, build, input_commitment
from tender.paths import SAMPLE_MODELS
from tender.wire import Quote

pytestmark = pytest.mark.slow

PROVIDER_KEY, REQUESTER_KEY, OTHER_KEY = DEV_KEYS[3], DEV_KEYS[4], DEV_KEYS[5]
PROVIDER = Account.from_key(PROVIDER_KEY).address
REQUESTER = Account.from_key(REQUESTER_KEY).address
OTHER = Account.from_key(OTHER_KEY).address  # another provider (it wins, then gives the job up)


@dataclass
class Chain:
    anvil: Anvil
    w3: Any
    deployment: Deployment
    deployment_path: Path
    model_id: str
    bundle: Bundle


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    from tender.devnet._chain import ChainSetup

    folder = tmp_path_factory.mktemp("chain")
    with Anvil() as anvil:
        w3 = connect(anvil.rpc_url)
        setup = ChainSetup(w3, DEV_KEYS[0])
        deployment = setup.deploy(save=folder / "deployment.json")
        bundle = build(SAMPLE_MODELS / "mlp" / "model.onnx", SAMPLE_MODELS / "mlp" / "calibration.json")
        model_id = register(w3, deployment, bundle)
        setup.mint([PROVIDER, REQUESTER, OTHER], 10**24)
        setup.stake(PROVIDER_KEY, 10**22)
        setup.stake(OTHER_KEY, 10**22)
        yield Chain(anvil, w3, deployment, folder / "deployment.json", model_id, bundle)


def register(w3: Any, deployment: Deployment, bundle: Bundle) -> str:
    """Deploy the bundle's verifier and register the model; its id from ``ModelRegistered``."""
    from tender.chain import ModelInfo, Registry
    from tender.models import deploy_verifier, registry_entry

    sender = TxSender(w3, DEV_KEYS[0])
    verifier = deploy_verifier(w3, sender, bundle)
    entry = registry_entry(bundle, verifier=verifier, owner=sender.address, chain_id=31337)
    registry = Registry(w3, deployment.registry, sender=sender)
    receipt = registry.register(ModelInfo.from_dict(entry))
    (event,) = [e for e in registry.events_in(receipt) if e.name == "ModelRegistered"]
    return "0x" + bytes(event.model_id).hex()  # type: ignore[attr-defined]


def post_intent(
    chain: Chain,
    data: Any,
    *,
    window: int = 60,
    deadline_s: int = 600,
    mode: ProofMode = ProofMode.ZK,
    inline: bool = False,
) -> tuple[Market, Intent, str]:
    """The requester posts a Dutch intent for ``data`` (carried in the intent when ``inline``);
    returns the market, intent and job id."""
    now = int(chain.w3.eth.get_block("latest")["timestamp"])
    intent = Intent(
        requester=REQUESTER,
        model_id=bytes.fromhex(chain.model_id[2:]),
        input_commitment=input_commitment(chain.bundle, data),
        max_price=10**18,
        start_price=10**17,
        auction_type=AuctionType.DUTCH,
        auction_window=window,
        deadline=now + deadline_s,
        proof_mode=mode,
        price_weight_bps=5000,
        nonce=random_nonce(),
        expiry=now + 300,
        input_location=json.dumps(data).encode() if inline else b"",
    )
    sender = TxSender(chain.w3, REQUESTER_KEY)
    market = Market(chain.w3, chain.deployment.market("dutch"), auction=AuctionType.DUTCH, sender=sender)
    Token(chain.w3, chain.deployment.token, sender=sender).ensure_allowance(market.address, 10**21)
    market.post(intent)
    return market, intent, "0x" + market.job_id(intent).hex()


def fill(chain: Chain, job_id: str, latency: int) -> None:
    market = Market(
        chain.w3,
        chain.deployment.market("dutch"),
        auction=AuctionType.DUTCH,
        sender=TxSender(chain.w3, PROVIDER_KEY),
    )
    market.fill(bytes.fromhex(job_id[2:]), PROVIDER, latency)


def balance(chain: Chain) -> int:
    return int(Token(chain.w3, chain.deployment.token).balance_of(PROVIDER))


def owed(chain: Chain) -> int:
    """What the Dutch market (every job here is Dutch) owes the provider."""
    return Market(chain.w3, chain.deployment.market("dutch"), auction=AuctionType.DUTCH).owed(PROVIDER)


def withdraw(chain: Chain) -> int:
    """The provider withdraws what the Dutch market owes it; the amount its balance grew by."""
    before = balance(chain)
    market = Market(
        chain.w3,
        chain.deployment.market("dutch"),
        auction=AuctionType.DUTCH,
        sender=TxSender(chain.w3, PROVIDER_KEY),
    )
    market.withdraw()
    assert owed(chain) == 0
    return balance(chain) - before


def provider_section(chain: Chain, store: Path, **changes: Any) -> dict[str, Any]:
    section: dict[str, Any] = {
        "listen": f"127.0.0.1:{free_port()}",
        "models": [{"name": "mlp", "onnx": str(chain.bundle.onnx), "bundle": str(chain.bundle.path)}],
        "store": str(store),
        "proving_workers": 1,
        "poll_interval_s": 0.1,
        "withdraw_threshold": 0,  # earnings stay credited: the tests read them with owed()
    }
    section.update(changes)
    return section


@pytest.fixture
async def node(chain: Chain, tmp_path: Path) -> AsyncIterator[tuple[ProviderNode, httpx.AsyncClient]]:
    markets = ProviderChain(chain.w3, chain.deployment, PROVIDER_KEY)
    config = ProviderSection(**provider_section(chain, tmp_path / "jobs.db"))
    node = ProviderNode(config, chain=markets, key=PROVIDER_KEY)
    async with running(node) as client:
        yield node, client


async def test_quote_award_upload_infer_prove_deliver_and_get_paid(
    chain: Chain, node: tuple[ProviderNode, httpx.AsyncClient], mlp_samples: list[list[float]]
) -> None:
    provider, client = node
    assert provider.by_model_id.keys() == {chain.model_id}  # found in the registry by its hashes
    data = mlp_samples[0]
    market, intent, job_id = post_intent(chain, data)
    reply = await client.post(
        "/quote",
        json={"jobId": job_id, "market": market.address, "chainId": 31337, "intent": intent.to_json()},
    )
    quote = Quote.model_validate(reply.json())
    assert int(quote.price) <= intent.max_price
    assert quote.latency_s > 0
    # Award with room to spare: this machine may be far busier than when the node timed its proofs.
    fill(chain, job_id, max(quote.latency_s, 300))
    before, owed_before = balance(chain), owed(chain)

    reply = await client.post("/jobs", json={"jobId": job_id, "market": market.address, "input": data})
    assert reply.status_code == 202, reply.text
    done = await wait_state(client, job_id, {"settled"})

    job = market.job(bytes.fromhex(job_id[2:]))
    assert job.state is JobState.SETTLED
    assert job.provider == PROVIDER
    # paid: the market credits the price (no token moves), and a withdraw transfers the credit
    assert owed(chain) - owed_before == job.price > 0
    assert balance(chain) == before
    assert withdraw(chain) == owed_before + job.price
    receipt = chain.w3.eth.get_transaction_receipt(done["txHashes"]["deliver"])
    assert receipt["status"] == 1


async def test_bad_inputs_on_chain_leave_no_row(
    chain: Chain, node: tuple[ProviderNode, httpx.AsyncClient], mlp_samples: list[list[float]]
) -> None:
    provider, client = node
    market, _, job_id = post_intent(chain, mlp_samples[1])
    # posted but not awarded: refused
    reply = await client.post(
        "/jobs", json={"jobId": job_id, "market": market.address, "input": mlp_samples[1]}
    )
    assert reply.status_code == 403
    assert reply.json()["error"] == "not_awarded"
    # a job id the market never heard of
    reply = await client.post(
        "/jobs", json={"jobId": "0x" + "42" * 32, "market": market.address, "input": mlp_samples[1]}
    )
    assert reply.status_code == 403
    assert provider.store is not None
    assert provider.store.count() == 0


async def test_mismatched_input_is_declined_on_chain_and_costs_no_stake(
    chain: Chain, node: tuple[ProviderNode, httpx.AsyncClient], mlp_samples: list[list[float]]
) -> None:
    """Finding 10: a requester whose input does not match its commitment cannot get the winner
    slashed. The node declines the job on chain (no penalty; the Dutch job is refunded), keeps
    its stake locked only until the deadline it promised, then frees it itself."""
    _, client = node
    staking = Staking(chain.w3, chain.deployment.staking)
    market, _, job_id = post_intent(chain, mlp_samples[1])
    job = bytes.fromhex(job_id[2:])
    stake_before, claimable_before = staking.stake_of(PROVIDER), staking.claimable(REQUESTER)
    fill(chain, job_id, 120)
    locked = market.job(job).stake_locked
    assert locked > 0
    # awarded, but the input is another than the one committed to
    reply = await client.post(
        "/jobs", json={"jobId": job_id, "market": market.address, "input": mlp_samples[2]}
    )
    assert reply.status_code == 422
    assert reply.json()["error"] == "commitment_mismatch"
    assert "declined on chain" in reply.json()["message"]
    assert market.job(job).state is JobState.REFUNDED  # a Dutch job has no runner-up
    assert (await client.get(f"/jobs/{job_id}")).json()["state"] == "declined"
    assert staking.locked_for(PROVIDER, job) == locked  # held until the promised deadline
    # the same upload again is answered from the store: no second decline
    again = await client.post(
        "/jobs", json={"jobId": job_id, "market": market.address, "input": mlp_samples[2]}
    )
    assert again.json()["state"] == "declined"
    warp(chain, 121)  # past the provider deadline: the node releases its stake
    done = await wait_state(client, job_id, {"failed"}, allow_failed=True)
    assert "release" in done["txHashes"]
    assert staking.locked_for(PROVIDER, job) == 0
    assert staking.stake_of(PROVIDER) == stake_before  # never slashed
    assert staking.claimable(REQUESTER) == claimable_before  # the requester got nothing from it


async def test_inline_input_that_does_not_match_its_commitment_gets_no_quote(
    chain: Chain, node: tuple[ProviderNode, httpx.AsyncClient], mlp_samples: list[list[float]]
) -> None:
    """The node checks an inline input before quoting: it never bids on a job it would decline."""
    _, client = node
    market, intent, job_id = post_intent(chain, mlp_samples[1])
    wire = intent.to_json()
    ask = {"jobId": job_id, "market": market.address, "chainId": 31337}
    wire["inputLocation"] = "0x" + json.dumps(mlp_samples[2]).encode().hex()  # not the committed input
    refused = (await client.post("/quote", json={**ask, "intent": wire})).json()
    assert "commits to" in refused["reason"]
    wire["inputLocation"] = "0x" + json.dumps(mlp_samples[1]).encode().hex()  # the committed input
    quoted = Quote.model_validate((await client.post("/quote", json={**ask, "intent": wire})).json())
    assert quoted.provider == PROVIDER


# -- crash and restart -------------------------------------------------------------------------


def start_node(config: Path) -> subprocess.Popen[bytes]:
    from tender.devnet._supervisor import tender_command

    env = {**os.environ, "TENDER_PRIVATE_KEY": PROVIDER_KEY}
    log = (config.parent / "node.log").open("ab")
    return subprocess.Popen(
        [*tender_command(), "provider", "run", "--config", str(config)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_health(url: str, process: subprocess.Popen[bytes], *, within: float = 120) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        assert process.poll() is None, f"node exited with {process.returncode}"
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError("node did not start")


def kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


async def test_sigkill_while_proving_then_restart_delivers_and_gets_paid(
    chain: Chain, tmp_path: Path, mlp_samples: list[list[float]]
) -> None:
    from tender.config import ChainSection
    from tender.devnet._configs import write_config

    store = tmp_path / "jobs.db"
    section = provider_section(chain, store, proving_warmup=False)  # the only proof in flight is the job's
    config = write_config(
        tmp_path / "provider.toml",
        ProviderConfig(
            chain=ChainSection(rpc_url=chain.anvil.rpc_url, deployment=chain.deployment_path),
            provider=ProviderSection(**section),
        ),
    )
    url = f"http://{section['listen']}"
    data = mlp_samples[3]
    market, _, job_id = post_intent(chain, data)
    fill(chain, job_id, 300)
    before = owed(chain)

    process = start_node(config)
    try:
        wait_health(url, process)
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            reply = await client.post(
                "/jobs", json={"jobId": job_id, "market": market.address, "input": data}
            )
            assert reply.status_code == 202, reply.text
            while (await client.get("/health")).json()["proving_in_flight"] < 1:
                state = (await client.get(f"/jobs/{job_id}")).json()["state"]
                assert state in ("accepted", "inferred"), f"proof finished before the kill: {state}"
                await asyncio.sleep(0.01)
        kill_group(process)  # the node and its proving workers, mid-proof
        row = sqlite3.connect(store).execute("SELECT step FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        assert row is not None
        assert row[0] in ("accepted", "inferred")
        assert market.job(bytes.fromhex(job_id[2:])).state is JobState.AWARDED

        process = start_node(config)
        wait_health(url, process)
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            await wait_state(client, job_id, {"settled"})
    finally:
        kill_group(process)

    job = market.job(bytes.fromhex(job_id[2:]))
    assert job.state is JobState.SETTLED
    assert job.delivered_at <= market.provider_deadline(job.job_id)
    assert owed(chain) - before == job.price > 0
    log = (tmp_path / "node.log").read_text()
    assert "job.resumed" in log
    assert json.loads(log.splitlines()[-1])  # structured JSON lines


# -- optimistic mode ---------------------------------------------------------------------------


def challenge(chain: Chain, market: Market, job_id: str) -> None:
    """The requester disputes the delivery, posting the challenge bond."""
    sender = TxSender(chain.w3, REQUESTER_KEY)
    Token(chain.w3, chain.deployment.token, sender=sender).ensure_allowance(market.address, 10**21)
    market.using(sender).challenge(bytes.fromhex(job_id[2:]))


def warp(chain: Chain, seconds: int) -> None:
    chain.anvil.rpc("evm_increaseTime", [seconds])
    chain.anvil.rpc("evm_mine")


async def test_optimistic_unchallenged_delivery_is_finalized_and_paid(
    chain: Chain, node: tuple[ProviderNode, httpx.AsyncClient], mlp_samples: list[list[float]]
) -> None:
    _, client = node
    market, _, job_id = post_intent(chain, mlp_samples[4], mode=ProofMode.OPTIMISTIC)
    fill(chain, job_id, 120)
    before = owed(chain)
    reply = await client.post(
        "/jobs", json={"jobId": job_id, "market": market.address, "input": mlp_samples[4]}
    )
    assert reply.status_code == 202
    await wait_state(client, job_id, {"delivered"})
    assert market.job(bytes.fromhex(job_id[2:])).state is JobState.DELIVERED
    warp(chain, 601)  # past the challenge window
    done = await wait_state(client, job_id, {"settled"})
    assert "finalize" in done["txHashes"]
    job = market.job(bytes.fromhex(job_id[2:]))
    assert job.state is JobState.SETTLED
    assert owed(chain) - before == job.price


async def test_optimistic_challenge_is_answered_with_the_proof(
    chain: Chain, node: tuple[ProviderNode, httpx.AsyncClient], mlp_samples: list[list[float]]
) -> None:
    _, client = node
    market, _, job_id = post_intent(chain, mlp_samples[5], mode=ProofMode.OPTIMISTIC)
    fill(chain, job_id, 120)
    before = owed(chain)
    reply = await client.post(
        "/jobs", json={"jobId": job_id, "market": market.address, "input": mlp_samples[5]}
    )
    assert reply.status_code == 202
    await wait_state(client, job_id, {"delivered"})
    challenge(chain, market, job_id)
    done = await wait_state(client, job_id, {"settled"})
    assert "prove" in done["txHashes"]
    job = market.job(bytes.fromhex(job_id[2:]))
    assert job.state is JobState.SETTLED
    assert owed(chain) - before == job.price + job.challenge_bond  # the failed challenger's bond too


async def test_wrong_output_misbehaviour_is_slashed(
    chain: Chain, tmp_path: Path, mlp_samples: list[list[float]]
) -> None:
    markets = ProviderChain(chain.w3, chain.deployment, PROVIDER_KEY)
    section = provider_section(chain, tmp_path / "jobs.db", misbehave={"wrong_output_on_job": 1})
    node = ProviderNode(ProviderSection(**section), chain=markets, key=PROVIDER_KEY)
    market, _, job_id = post_intent(chain, mlp_samples[6], mode=ProofMode.OPTIMISTIC)
    fill(chain, job_id, 120)
    async with running(node) as client:
        reply = await client.post(
            "/jobs", json={"jobId": job_id, "market": market.address, "input": mlp_samples[6]}
        )
        assert reply.status_code == 202
        done = await wait_state(client, job_id, {"delivered"})
        challenge(chain, market, job_id)
        warp(chain, 601)  # past the proof window, unanswered
        market.using(TxSender(chain.w3, REQUESTER_KEY)).expire(bytes.fromhex(job_id[2:]))
        await wait_state(client, job_id, {"failed"}, allow_failed=True)
    assert done["outputFelts"]
    assert market.job(bytes.fromhex(job_id[2:])).state is JobState.SLASHED


# -- getting paid: the node withdraws its credit --------------------------------------------


async def test_node_withdraws_its_credit_past_the_threshold(
    chain: Chain, tmp_path: Path, mlp_samples: list[list[float]]
) -> None:
    import logging

    class Records(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.INFO)
            self.records: list[logging.LogRecord] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.records.append(record)

    seen = Records()
    node_logger = logging.getLogger("provider.node")
    level = node_logger.level
    node_logger.addHandler(seen)
    node_logger.setLevel(logging.INFO)
    markets = ProviderChain(chain.w3, chain.deployment, PROVIDER_KEY)
    config = ProviderSection(**provider_section(chain, tmp_path / "jobs.db", withdraw_threshold=1))
    node = ProviderNode(config, chain=markets, key=PROVIDER_KEY)
    data = mlp_samples[7]
    market, _, job_id = post_intent(chain, data)
    fill(chain, job_id, 300)
    before, credit = balance(chain), owed(chain)  # earlier tests left their earnings credited
    async with running(node) as client:
        reply = await client.post("/jobs", json={"jobId": job_id, "market": market.address, "input": data})
        assert reply.status_code == 202, reply.text
        await wait_state(client, job_id, {"settled"})
        deadline = time.monotonic() + 60  # the withdrawal follows the settlement, in the job's task
        withdrew = 'provider_withdrawals_total{outcome="ok"} 1.0'
        while withdrew not in (metrics := (await client.get("/metrics")).text):
            assert time.monotonic() < deadline, metrics
            await asyncio.sleep(0.1)
    price = market.job(bytes.fromhex(job_id[2:])).price
    # the node withdrew everything the market owed it (this job's price and the earlier credit)
    assert owed(chain) == 0
    assert balance(chain) - before == credit + price
    node_logger.removeHandler(seen)
    node_logger.setLevel(level)
    (record,) = [r for r in seen.records if r.getMessage() == "payment.withdrawn"]
    fields = record.fields  # type: ignore[attr-defined]
    assert fields["amount"] == credit + price
    assert fields["market"] == market.address
    assert fields["threshold"] == 1
    assert node.metrics.withdrawn._value.get() == pytest.approx(credit + price)  # type: ignore[attr-defined]
    assert withdrew in metrics


# -- faults: RPC outages and reorgs ------------------------------------------------------------


async def test_rpc_outage_during_delivery_is_waited_out_and_health_says_so(
    chain: Chain, tmp_path: Path, mlp_samples: list[list[float]]
) -> None:
    """The RPC goes away while the job is proved and delivered: the node retries until the job's
    deadline instead of failing it, /health answers 503 while the chain is unreachable and 200
    after, and the job settles: delivered, not failed, not slashed."""
    from tender.chain import async_connect
    from tests._proxy import OutageProxy

    staking = Staking(chain.w3, chain.deployment.staking)
    stake_before = staking.stake_of(PROVIDER)
    data = mlp_samples[0]
    market, _, job_id = post_intent(chain, data)
    fill(chain, job_id, 300)
    with OutageProxy(chain.anvil.rpc_url) as proxy:
        markets = ProviderChain(
            connect(proxy.url), chain.deployment, PROVIDER_KEY, async_w3=async_connect(proxy.url)
        )
        section = provider_section(chain, tmp_path / "jobs.db", health={"chain_stale_s": 1.0})
        node = ProviderNode(ProviderSection(**section), chain=markets, key=PROVIDER_KEY)
        async with running(node) as client:
            reply = await client.post(
                "/jobs", json={"jobId": job_id, "market": market.address, "input": data}
            )
            assert reply.status_code == 202, reply.text
            proxy.outage(8)  # while the job is inferred and proved: its delivery meets the outage
            health = await client.get("/health")
            while health.status_code == 200:
                assert proxy.down, "the outage ended before /health noticed it"
                await asyncio.sleep(0.1)
                health = await client.get("/health")
            assert health.status_code == 503
            # the delivery needs the chain: it waits (retried, not failed) for the outage's end
            assert (await client.get(f"/jobs/{job_id}")).json()["state"] in ("accepted", "inferred", "proved")
            assert health.json()["status"] == "unhealthy"
            assert "chain unreachable" in health.json()["reasons"][0]
            assert health.json()["chain"]["reachable"] is False
            done = await wait_state(client, job_id, {"settled"})
            health = await client.get("/health")
            while health.status_code != 200:
                await asyncio.sleep(0.1)
                health = await client.get("/health")
            assert health.json()["status"] == "ok"
            assert health.json()["chain"]["reachable"] is True
    assert proxy.outages == 1
    job = market.job(bytes.fromhex(job_id[2:]))
    assert job.state is JobState.SETTLED
    assert done["txHashes"]["deliver"]
    assert staking.stake_of(PROVIDER) == stake_before  # not slashed


async def test_reorg_that_drops_the_delivery_is_delivered_again(
    chain: Chain, tmp_path: Path, mlp_samples: list[list[float]]
) -> None:
    """A reorg takes the delivery and settlement back (the job is Awarded to us again): the node
    follows the chain, not its store, and delivers again once, before the deadline."""
    markets = ProviderChain(chain.w3, chain.deployment, PROVIDER_KEY)
    markets.sender.replace_after = 1.0  # the dropped delivery's nonce is free again: resend soon
    node = ProviderNode(
        ProviderSection(**provider_section(chain, tmp_path / "jobs.db")), chain=markets, key=PROVIDER_KEY
    )
    data = mlp_samples[1]
    market, _, job_id = post_intent(chain, data)
    fill(chain, job_id, 300)
    job = bytes.fromhex(job_id[2:])
    async with running(node) as client:
        for _ in range(3):  # the feed has read blocks past the fork to come
            chain.anvil.rpc("evm_mine")
        snapshot = chain.anvil.rpc("evm_snapshot")
        reply = await client.post("/jobs", json={"jobId": job_id, "market": market.address, "input": data})
        assert reply.status_code == 202, reply.text
        first = await wait_state(client, job_id, {"settled"})
        head = chain.w3.eth.block_number
        while node.feed is None or node.feed.position < head:  # the feed has seen the delivery's blocks
            assert (await client.get(f"/jobs/{job_id}")).json()["state"] == "settled"
            await asyncio.sleep(0.05)
        assert chain.anvil.rpc("evm_revert", [snapshot])
        for _ in range(4):  # the other branch, longer than the dropped one
            chain.anvil.rpc("evm_mine")
        assert market.job(job).state is JobState.AWARDED
        body = (await client.get(f"/jobs/{job_id}")).json()
        while "deliver_dropped" not in body["txHashes"]:  # the feed saw the reorg; the node went back
            await asyncio.sleep(0.05)
            body = (await client.get(f"/jobs/{job_id}")).json()
        again = await wait_state(client, job_id, {"settled"})
        assert again["txHashes"]["deliver_dropped"] == first["txHashes"]["deliver"]
        assert again["txHashes"]["deliver"] != first["txHashes"]["deliver"]
    settled = market.job(job)
    assert settled.state is JobState.SETTLED
    assert settled.provider == PROVIDER
    delivered = list(market.events(names=["Delivered"], job_id=job))
    assert len(delivered) == 1  # one delivery on the chain that stands


async def test_reorg_that_drops_the_finalize_is_finalized_again(
    chain: Chain, tmp_path: Path, mlp_samples: list[list[float]]
) -> None:
    """The node finalizes its unchallenged optimistic delivery; ``anvil_reorg`` then drops the
    block of that ``finalize`` (the delivery stays): the job is back to Delivered with its
    challenge window long closed. The node follows the chain, not its store ("settled"), and
    finalizes again: the job settles on the chain that stands (nobody else finalizes here)."""
    markets = ProviderChain(chain.w3, chain.deployment, PROVIDER_KEY)
    markets.sender.replace_after = 1.0
    node = ProviderNode(
        ProviderSection(**provider_section(chain, tmp_path / "jobs.db")), chain=markets, key=PROVIDER_KEY
    )
    data = mlp_samples[5]
    market, _, job_id = post_intent(chain, data, mode=ProofMode.OPTIMISTIC)
    fill(chain, job_id, 120)
    job = bytes.fromhex(job_id[2:])
    async with running(node) as client:
        reply = await client.post("/jobs", json={"jobId": job_id, "market": market.address, "input": data})
        assert reply.status_code == 202, reply.text
        delivered = await wait_state(client, job_id, {"delivered"})
        warp(chain, 601)  # past the challenge window: the node finalizes
        first = (await wait_state(client, job_id, {"settled"}))["txHashes"]["finalize"]
        finalized_in = int(chain.w3.eth.get_transaction_receipt(first)["blockNumber"])
        delivered_in = int(
            chain.w3.eth.get_transaction_receipt(delivered["txHashes"]["deliver"])["blockNumber"]
        )
        assert delivered_in < finalized_in
        head = chain.w3.eth.block_number
        while node.feed is None or node.feed.position < head:  # the feed has read the Settled block
            assert market.job(job).state is JobState.SETTLED
            await asyncio.sleep(0.05)
        chain.anvil.rpc("anvil_reorg", [head - finalized_in + 1, []])  # drops the finalize's block
        assert market.job(job).state is JobState.DELIVERED
        # the store's word: still "settled", unless the node's feed has already seen the fork (it
        # may poll between the reorg and this read: no assumption on the machine's speed)
        assert (await client.get(f"/jobs/{job_id}")).json()["state"] in {"settled", "delivered"}
        chain.anvil.rpc("evm_mine")  # the chain moves on; the node's feed sees the fork
        deadline = time.monotonic() + 120
        while market.job(job).state is not JobState.SETTLED:
            assert time.monotonic() < deadline, "the dropped finalize was never sent again"
            await asyncio.sleep(0.1)
        assert (await wait_state(client, job_id, {"settled"}))["txHashes"]["finalize"]
    (settled,) = market.events(names=["Settled"], job_id=job)  # on the chain that stands
    assert chain.w3.eth.get_transaction(settled.tx_hash)["from"] == PROVIDER  # the node sent it again
    assert len(list(market.events(names=["Delivered"], job_id=job))) == 1  # delivered once
    assert owed(chain) > 0


async def test_award_whose_input_never_comes_is_taken_up_from_the_chain(
    chain: Chain, node: tuple[ProviderNode, httpx.AsyncClient], mlp_samples: list[list[float]]
) -> None:
    """The job is awarded to this node, but nobody uploads its input (the solver was killed
    right after the award): the node reads the input the intent carries from the chain and
    delivers before its deadline instead of being slashed."""
    provider, client = node
    data = mlp_samples[6]
    head = chain.w3.eth.block_number
    while provider.feed is None or provider.feed.position < head:  # the feed runs from here on
        assert provider.store is not None
        await asyncio.sleep(0.05)
    market, _, job_id = post_intent(chain, data, mode=ProofMode.OPTIMISTIC, inline=True)
    fill(chain, job_id, 120)  # awarded to us; no POST /jobs follows
    done = await wait_state(client, job_id, {"delivered", "settled"})
    assert done["txHashes"]["deliver"]
    job = market.job(bytes.fromhex(job_id[2:]))
    assert job.state is JobState.DELIVERED
    assert job.provider == PROVIDER
    # the solver's upload, when it finally comes, is the same input: answered, not redone
    again = await client.post("/jobs", json={"jobId": job_id, "market": market.address, "input": data})
    assert again.status_code == 200, again.text
    assert len(list(market.events(names=["Delivered"], job_id=bytes.fromhex(job_id[2:])))) == 1


async def test_optimistic_job_is_not_proved_unless_challenged(
    chain: Chain, node: tuple[ProviderNode, httpx.AsyncClient], mlp_samples: list[list[float]]
) -> None:
    provider, client = node
    market, _, job_id = post_intent(chain, mlp_samples[2], mode=ProofMode.OPTIMISTIC)
    fill(chain, job_id, 120)
    reply = await client.post(
        "/jobs", json={"jobId": job_id, "market": market.address, "input": mlp_samples[2]}
    )
    assert reply.status_code == 202
    delivered = await wait_state(client, job_id, {"delivered"})
    assert delivered["proof"] is None  # delivered without a proof: none was made
    assert provider.metrics.proof.labels("mlp")._sum.get() == 0  # type: ignore[attr-defined]
    challenge(chain, market, job_id)
    done = await wait_state(client, job_id, {"settled"})  # proved now, the challenge answered
    assert done["proof"] is not None
    assert "prove" in done["txHashes"]
    assert market.job(bytes.fromhex(job_id[2:])).state is JobState.SETTLED


async def test_failover_award_to_this_provider_is_delivered(
    chain: Chain, node: tuple[ProviderNode, httpx.AsyncClient], mlp_samples: list[list[float]]
) -> None:
    """This node is the runner-up of a reverse auction; the winner gives the job up, the market
    fails it over to this node, which then delivers it (and is paid, never slashed)."""
    from tender.intents import Bid

    _, client = node
    staking = Staking(chain.w3, chain.deployment.staking)
    stake_before = staking.stake_of(PROVIDER)
    data = mlp_samples[3]
    requester, job = _reverse_job(chain, data, window=30, allow_failover=True, inline=False)

    def reverse(key: str) -> Market:
        return requester.using(TxSender(chain.w3, key))

    reverse(OTHER_KEY).bid(job, Bid(provider=OTHER, price=10**16, latency=300))  # the best bid
    reverse(PROVIDER_KEY).bid(job, Bid(provider=PROVIDER, price=10**17, latency=300))  # the runner-up
    warp(chain, 31)
    requester.award(job)
    assert requester.job(job).provider == OTHER
    reverse(OTHER_KEY).decline(job)  # the winner gives the job up: it fails over to us
    awarded = requester.job(job)
    assert (awarded.state, awarded.provider) == (JobState.AWARDED, PROVIDER)
    await _upload_and_settle(client, requester, job, data)
    assert staking.stake_of(PROVIDER) == stake_before


def _reverse_job(
    chain: Chain, data: Any, *, window: int, allow_failover: bool = False, inline: bool = True
) -> tuple[Market, bytes]:
    """The requester posts a zk reverse intent for ``data`` (carried inline when ``inline``); its
    market and job id."""
    now = int(chain.w3.eth.get_block("latest")["timestamp"])
    intent = Intent(
        requester=REQUESTER,
        model_id=bytes.fromhex(chain.model_id[2:]),
        input_commitment=input_commitment(chain.bundle, data),
        max_price=10**18,
        auction_type=AuctionType.REVERSE,
        auction_window=window,
        deadline=now + 900,
        nonce=random_nonce(),
        allow_failover=allow_failover,
        expiry=now + 300,
        input_location=json.dumps(data).encode() if inline else b"",
    )
    requester = Market(
        chain.w3,
        chain.deployment.market("reverse"),
        auction=AuctionType.REVERSE,
        sender=TxSender(chain.w3, REQUESTER_KEY),
    )
    Token(chain.w3, chain.deployment.token, sender=requester.sender).ensure_allowance(
        requester.address, 10**21
    )
    requester.post(intent)
    return requester, requester.job_id(intent)


async def _upload_and_settle(client: httpx.AsyncClient, market: Market, job: bytes, data: Any) -> None:
    """Upload the awarded job's input, as its solver would; it is delivered and settles, ours."""
    job_id = "0x" + job.hex()
    reply = await client.post("/jobs", json={"jobId": job_id, "market": market.address, "input": data})
    assert reply.status_code == 202, reply.text
    done = await wait_state(client, job_id, {"settled"})
    assert done["txHashes"]["deliver"]
    settled = market.job(job)
    assert (settled.state, settled.provider) == (JobState.SETTLED, PROVIDER)


async def _following(provider: ProviderNode, chain: Chain) -> None:
    head = chain.w3.eth.block_number
    while provider.feed is None or provider.feed.position < head:  # the feed runs from here on
        assert provider.store is not None
        await asyncio.sleep(0.05)


async def test_a_leading_bid_is_proved_before_the_award_and_that_proof_is_delivered(
    chain: Chain, node: tuple[ProviderNode, httpx.AsyncClient], mlp_samples: list[list[float]]
) -> None:
    """``prove_before_award``: the node's bid leads a zk reverse auction, so it proves the job a
    second before the auction ends, while it is still open; the award then finds the proof made,
    and the delivery sends that one (no second proof) and settles."""
    from tender.intents import Bid

    provider, client = node
    assert provider.pool is not None
    await _following(provider, chain)
    data = mlp_samples[4]
    requester, job = _reverse_job(chain, data, window=4)
    job_id = "0x" + job.hex()
    proofs = provider.pool._ticket
    requester.using(TxSender(chain.w3, PROVIDER_KEY)).bid(
        job, Bid(provider=PROVIDER, price=10**16, latency=300)
    )
    until = time.monotonic() + 240
    while not (isinstance(early := provider._early.get(job_id), tuple) and early[1].done()):
        assert time.monotonic() < until, "no proof before the award"
        await asyncio.sleep(0.1)
    assert requester.job(job).state is JobState.OPEN  # proved before anyone awarded it
    assert provider.pool._ticket == proofs + 1
    left = requester.job(job).auction_end - int(chain.w3.eth.get_block("latest")["timestamp"])
    if left >= 0:
        warp(chain, left + 1)
    requester.award(job)
    await _upload_and_settle(client, requester, job, data)
    assert provider.pool._ticket == proofs + 1  # the early proof was the one delivered
    assert job_id not in provider._early


async def test_a_bid_outbid_before_the_auction_ends_is_not_proved_early(
    chain: Chain, node: tuple[ProviderNode, httpx.AsyncClient], mlp_samples: list[list[float]]
) -> None:
    """The node's bid led when it was placed, but another provider's better bid took the lead
    before the last second: the node makes no proof for a job it will not get."""
    from tender.intents import Bid

    provider, _ = node
    assert provider.pool is not None
    await _following(provider, chain)
    requester, job = _reverse_job(chain, mlp_samples[5], window=20)  # room for a busy machine
    job_id = "0x" + job.hex()
    proofs = provider.pool._ticket
    requester.using(TxSender(chain.w3, PROVIDER_KEY)).bid(
        job, Bid(provider=PROVIDER, price=10**17, latency=300)
    )
    until = time.monotonic() + 60
    while job_id not in provider._early:  # the node saw its lead
        assert time.monotonic() < until
        await asyncio.sleep(0.05)
    requester.using(TxSender(chain.w3, OTHER_KEY)).bid(job, Bid(provider=OTHER, price=10**16, latency=300))
    while job_id in provider._early:  # checked the book a second before the end, and let it be
        assert time.monotonic() < until
        await asyncio.sleep(0.1)
    assert provider.pool._ticket == proofs
    assert requester.job(job).state is JobState.OPEN
