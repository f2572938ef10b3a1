"""Token quotes through a solver (``POST /tokens/quote`` on the solver's API), on a real Anvil with
two real desk processes: the solver asks both, answers with the cheaper quote unchanged and the
desk's ``stream_url``; the requester opens it and reads the tokens from that desk."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from solver._config import ProviderEntry
from solver._quotes import make_transport
from solver._token_rfq import TokenRfq
from tender.anvil import free_port
from tender.chain import JobState
from tender.client import TokenResult, request_tokens
from tender.devnet._supervisor import tender_command
from tender.tokens import TokenModel, TokenRequest
from tests.tokens._world import MODEL_ID, World, served, wait_http


@pytest.fixture
def desks(env: World) -> Iterator[list[ProviderEntry]]:
    """Two desks: the provider's at the default GPU-hour cost, and one staked re-executor's key at
    a tenth of it (so it quotes cheaper)."""
    entries: list[ProviderEntry] = []
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for name, party, cost in (
            ("dear", env.provider, 2 * 10**18),
            ("cheap", env.reexecutors[2], 2 * 10**17),
        ):
            port = free_port()
            args = ["provider", "tokens", *served(env), "--port", str(port), "--gpu-hour-cost", str(cost)]
            process = subprocess.Popen(
                [*tender_command(), *args],
                env={**os.environ, "TENDER_PRIVATE_KEY": party.key},
                stdout=subprocess.DEVNULL,
            )
            processes.append(process)
            entries.append(ProviderEntry(name=name, url=f"http://127.0.0.1:{port}", address=party.address))
        for entry, process in zip(entries, processes, strict=True):
            wait_http(f"{entry.url}/health", process)
        yield entries
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


def test_a_solver_answers_with_its_cheapest_desk_and_the_requester_streams_from_it(
    env: World, lm: TokenModel, desks: list[ProviderEntry]
) -> None:
    dear, cheap = desks
    # a desk listed under another provider's address: its quotes are not signed by that address
    impostor = ProviderEntry(name="impostor", url=dear.url, address=env.challenger.address)
    transport = make_transport("aiohttp")
    rfq = TokenRfq(
        [dear, impostor, cheap], transport, chain_id=env.w3.eth.chain_id, market=env.market_address
    )
    port = free_port()
    prompt = lm.encode("Return the")
    body = {"requester": env.requester.address, "prompt": prompt, "max_tokens": 32, "max_price_per1k": 10**17}

    async def scenario() -> tuple[dict[str, Any], list[tuple[int, dict[str, Any]]], TokenResult]:
        app = web.Application()
        rfq.add_routes(app)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        solver = f"http://127.0.0.1:{port}"
        try:
            async with httpx.AsyncClient(timeout=30) as http:
                answer = (await http.post(f"{solver}/tokens/quote", json=body)).json()
                refusals = []
                for bad in ({**body, "max_price_per1k": 1}, {**body, "prompt": []}):
                    response = await http.post(f"{solver}/tokens/quote", json=bad)
                    refusals.append((response.status_code, response.json()))
            result = await request_tokens(
                env.requester.market,
                [solver],
                prompt,
                max_tokens=32,
                max_price_per1k=10**17,
                model_id=MODEL_ID,
            )
            return answer, refusals, result
        finally:
            await runner.cleanup()
            await transport.aclose()

    answer, refusals, result = asyncio.run(scenario())
    assert answer["stream_url"] == cheap.url
    assert answer["quotes"] == 2  # the impostor's answer is refused
    assert answer["asked"] == 3
    assert answer["quote"]["provider"] == cheap.address
    assert [(status, data["error"], data.get("field")) for status, data in refusals] == [
        (409, "no_quote", "max_price_per1k"),
        (422, "invalid_body", "prompt"),
    ]
    assert result.provider == cheap.address
    assert result.tokens == list(lm.generate(TokenRequest(tuple(prompt), 32)).tokens)
    assert result.delivered
    job = env.requester.market.job(result.job_id)
    assert job.state is JobState.DELIVERED
    assert job.provider == cheap.address
