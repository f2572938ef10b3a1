"""Fixtures: one Anvil with Tender and the real MLP per module, rewound after each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tender.anvil import Anvil
from tender.chain import load_artifact, resync_nonces
from tender.errors import ArtifactError
from tests.harness.verifier import Env, make_env


def _built() -> bool:
    try:
        load_artifact("DutchAuctionMarket")
    except ArtifactError:
        return False
    return True


@pytest.fixture(scope="module")
def tender_env() -> Iterator[Env]:
    if not _built():
        pytest.skip("Tender contracts not built: run `make contracts`")
    with Anvil() as chain:
        yield make_env(chain)


@pytest.fixture
def env(tender_env: Env) -> Iterator[Env]:
    """The module's deployment, rewound to its fresh state after the test."""
    snapshot = tender_env.chain.rpc("evm_snapshot", [])
    tender_env.jobs.clear()
    try:
        yield tender_env
    finally:
        tender_env.chain.rpc("evm_revert", [snapshot])
        resync_nonces(tender_env.w3)


@pytest.fixture
def deployment_file(env: Env, tmp_path: Path) -> Path:
    return env.deployment.save(tmp_path / "deployment.json")
