"""The quote path end to end on real parts (issue 18): Anvil with the ``QuoteMarket``, three real
provider nodes (``tender provider run`` processes: onnxruntime, EZKL witness and proofs), a real
solver serving ``POST /rfq``, and the SDK's ``Client.request(..., auction="quote")``.

The request returns a provisional result whose output hash is the output's and whose result
commitment is signed by the quoted provider, backed by its stake; later the provider's proof
settles the job on chain with exactly the committed output. Nothing here is timed: the waits
are hang guards only.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from solver import Solver
from tender import models
from tender.anvil import DEV_KEYS, free_port
from tender.chain import JobState, QuoteMarket, resync_nonces
from tender.client import Client
from tender.client._errors import RequestRejected
from tender.client._rfq import ProvisionalResult, QuoteSettlement
from tender.intents import AuctionType
from tender.quotes import output_hash, recover_commitment_signer

from .conftest import SOLVER_KEYS, UNIT, LiveEnv, Running, wait_until

pytestmark = pytest.mark.slow

SETTLE_TIMEOUT = 600


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _client(live: LiveEnv, url: str, *, award_batch: int = 1, award_wait: float = 0.25) -> Client:
    return Client(
        live.chain.rpc_url,
        DEV_KEYS[1],
        solvers=[url],
        deployment=live.deployment,
        bundles={"mlp": live.bundle.path},
        model_ids={"mlp": "0x" + live.model_id.hex()},
        award_batch=award_batch,
        award_wait=award_wait,
    )


def test_quote_request_returns_a_committed_output_that_settles(live: LiveEnv, tmp_path: Path) -> None:
    port = free_port()
    section = live.solver_section(tmp_path / "rfq.sqlite", listen=f"127.0.0.1:{port}")
    solver = Solver(section, live.chain_section(), key=SOLVER_KEYS[0], deployment=live.deployment)
    sample = live.samples[0]

    async def go() -> tuple[ProvisionalResult, QuoteSettlement]:
        async with _client(live, f"http://127.0.0.1:{port}") as client:
            # a generous window: this test is about behaviour, not speed (benchmarks time it)
            result = await client.request("mlp", sample, 10 * UNIT, 3_600, auction="quote", window_ms=3_000)
            settled = await asyncio.wait_for(result.settled(), SETTLE_TIMEOUT)
            return result, settled

    with Running([solver]):
        wait_until(lambda: _listening(port), timeout=60)
        result, settled = asyncio.run(go())
    market = QuoteMarket(live.w3, live.deployment.market("quote"))
    job = bytes.fromhex(result.job_id[2:])
    # the provisional result: a usable output, bound by the provider's signed commitment
    assert result.provisional
    assert result.quotes >= 1
    assert result.provider in {n.address for n in live.nodes}
    assert output_hash(result.output_felts) == result.output_hash
    signer = recover_commitment_signer(
        job, result.output_hash, result.commitment, chain_id=market.chain_id, market=market.address
    )
    assert signer == result.provider
    assert result.stake >= result.price
    # the phases decompose the time to result: the round holds the slowest solver's answer and the
    # quote checks; taking the quote holds the provider's answer
    phases = result.phases
    assert set(phases) >= {"round_ms", "solver_ms", "check_ms", "provider_ms", "stake_wait_ms", "run_ms"}
    assert 0 < phases["solver_ms"] <= phases["round_ms"]
    assert 0 <= phases["check_ms"] <= phases["round_ms"]
    assert 0 < phases["provider_ms"] <= phases["run_ms"]
    reference = models.infer(live.bundle, sample)
    assert len(result.output) == len(reference)
    assert max(abs(a - b) for a, b in zip(result.output, reference, strict=True)) < 0.1
    # settlement: the provider proved exactly the committed output, the market verified it
    assert settled.state == "settled", settled
    assert settled.matches
    assert settled.delivered_hash == result.output_hash
    assert market.job_state(job) is JobState.SETTLED
    assert market.owed(result.provider) >= result.price
    live.supervisor.check()


def test_quote_request_without_a_quote_is_rejected_and_costs_nothing(live: LiveEnv, tmp_path: Path) -> None:
    port = free_port()
    section = live.solver_section(tmp_path / "none.sqlite", listen=f"127.0.0.1:{port}")
    solver = Solver(section, live.chain_section(), key=SOLVER_KEYS[0], deployment=live.deployment)

    async def go() -> None:
        async with _client(live, f"http://127.0.0.1:{port}") as client:
            # below every node's price: nobody quotes, nothing is sent on chain
            await client.request("mlp", live.samples[1], 1, 3_600, auction="quote", window_ms=3_000)

    with Running([solver]):
        wait_until(lambda: _listening(port), timeout=60)
        with pytest.raises(RequestRejected) as err:
            asyncio.run(go())
    assert err.value.job_id is not None
    market = QuoteMarket(live.w3, live.deployment.market(AuctionType.QUOTE))
    assert market.job_state(bytes.fromhex(err.value.job_id[2:])) is JobState.NONE


def test_concurrent_quote_requests_are_awarded_in_one_transaction(live: LiveEnv, tmp_path: Path) -> None:
    # award_batch=2: the two requests' awards go out together in one openAwardedBatch (the batch is
    # full at two, so the long wait is a hang guard only), and each job settles on its own
    port = free_port()
    section = live.solver_section(tmp_path / "batch.sqlite", listen=f"127.0.0.1:{port}")
    solver = Solver(section, live.chain_section(), key=SOLVER_KEYS[0], deployment=live.deployment)

    async def go() -> list[QuoteSettlement]:
        async with _client(live, f"http://127.0.0.1:{port}", award_batch=2, award_wait=120) as client:
            results = await asyncio.gather(
                *(
                    client.request("mlp", sample, 10 * UNIT, 3_600, auction="quote", window_ms=3_000)
                    for sample in live.samples[:2]
                )
            )
            return list(
                await asyncio.wait_for(asyncio.gather(*(r.settled() for r in results)), SETTLE_TIMEOUT)
            )

    with Running([solver]):
        wait_until(lambda: _listening(port), timeout=60)
        settlements = asyncio.run(go())
    assert [s.state for s in settlements] == ["settled", "settled"], settlements
    assert all(s.matches for s in settlements)
    assert settlements[0].tx_hashes["award"] == settlements[1].tx_hashes["award"]
    live.supervisor.check()


def test_a_quoted_settlement_reorged_out_is_delivered_again(live: LiveEnv, tmp_path: Path) -> None:
    """Follow the chain, not the receipt: a quoted job settles, then ``anvil_reorg`` drops the
    block of its delivery (the award stays). The job is Awarded again on chain; the provider
    node, still following its settlement, delivers the same proof again and the job settles
    once on the chain that stands; the SDK reports it settled, and nobody is slashed."""
    port = free_port()
    section = live.solver_section(tmp_path / "reorg.sqlite", listen=f"127.0.0.1:{port}")
    solver = Solver(section, live.chain_section(), key=SOLVER_KEYS[0], deployment=live.deployment)
    market = QuoteMarket(live.w3, live.deployment.market("quote"))

    def settled_in(job: bytes) -> int | None:
        events = list(market.events(live.deployment.block, names=["Settled"], job_id=job))
        return events[-1].block_number if events else None

    async def go() -> tuple[ProvisionalResult, QuoteSettlement]:
        async with _client(live, f"http://127.0.0.1:{port}") as client:
            result = await client.request(
                "mlp", live.samples[2], 10 * UNIT, 3_600, auction="quote", window_ms=3_000
            )
            job = bytes.fromhex(result.job_id[2:])
            block = None
            while block is None:  # hang guard: SETTLE_TIMEOUT below
                await asyncio.sleep(0.2)
                block = await asyncio.to_thread(settled_in, job)
            (awarded,) = await asyncio.to_thread(
                lambda: list(market.events(live.deployment.block, names=["QuoteAwarded"], job_id=job))
            )
            assert awarded.block_number < block  # the reorg below keeps the award
            live.chain.rpc("anvil_reorg", [live.w3.eth.block_number - block + 1, []])
            resync_nonces(live.w3)
            assert market.job_state(job) is JobState.AWARDED
            settled = await asyncio.wait_for(result.settled(), SETTLE_TIMEOUT)
            return result, settled

    with Running([solver]):
        wait_until(lambda: _listening(port), timeout=60)
        result, settled = asyncio.run(asyncio.wait_for(go(), SETTLE_TIMEOUT))
    job = bytes.fromhex(result.job_id[2:])
    wait_until(lambda: market.job_state(job) is JobState.SETTLED, timeout=120)
    assert settled.state == "settled", settled
    assert settled.delivered_hash == result.output_hash
    assert len(list(market.events(live.deployment.block, names=["Settled"], job_id=job))) == 1
    assert list(market.events(live.deployment.block, names=["Expired", "Slashed"], job_id=job)) == []
    live.supervisor.check()
