"""On a chain that mines only when a transaction arrives (an Anvil started by hand without
``--block-time``), chain time stands still and an open job never ends: the request's
``RequestTimeout`` says so and how to fix it. On a chain that mines on its own it does not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tender.anvil import DEV_KEYS, Anvil
from tender.chain import connect
from tender.client import RequestTimeout
from tender.client._client import Client
from tender.devnet._chain import TOKEN, ChainSetup
from tender.paths import SAMPLE_MODELS

SAMPLE = json.loads((SAMPLE_MODELS / "mlp" / "samples.json").read_text())["samples"][0]["input"]


async def _request_nobody_serves(anvil: Anvil, tmp_path: Path) -> RequestTimeout:
    setup = ChainSetup(w3=connect(anvil.rpc_url), deployer_key=DEV_KEYS[0])
    setup.deploy(save=tmp_path / "deployment.json")
    setup.register_models(["mlp"])
    setup.mint([setup.address(DEV_KEYS[7])], 10 * TOKEN)
    info = setup.models["mlp"]
    async with Client(
        anvil.rpc_url,
        DEV_KEYS[7],
        deployment=setup.deployment,
        bundles={"mlp": info.bundle},
        model_ids={"mlp": info.model_id},
        self_help=False,
    ) as client:
        with pytest.raises(RequestTimeout) as caught:  # no solver, no provider: it stays open
            await client.request("mlp", SAMPLE, max_price=TOKEN // 10, deadline=60, on_chain=True, timeout=6)
    return caught.value


@pytest.mark.timeout(300)
async def test_timeout_on_a_chain_that_stands_still_says_why(tmp_path: Path) -> None:
    with Anvil() as anvil:  # mines a block per transaction, never on its own
        error = await _request_nobody_serves(anvil, tmp_path)
    assert error.last_state == "open"
    assert error.stalled
    assert error.chain_moved_s is not None
    assert "chain time moved only" in str(error)
    assert "anvil --block-time 1" in str(error)
    assert "tender devnet --keep-running" in str(error)


@pytest.mark.timeout(300)
async def test_timeout_on_a_chain_that_mines_says_nothing_about_chain_time(tmp_path: Path) -> None:
    with Anvil(block_time=1) as anvil:
        error = await _request_nobody_serves(anvil, tmp_path)
    assert error.last_state == "open"
    assert not error.stalled
    assert "chain time" not in str(error)
