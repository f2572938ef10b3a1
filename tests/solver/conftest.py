"""Fixtures of the solver's tests: a deployed Tender on Anvil, with real provider nodes
(``live``, see :func:`tests.harness.solver.live_devnet`) or with stand-in providers for unit-level
tests of the solver's own behaviour (``env``, see :func:`tests.harness.solver.devnet`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness.solver import (
    SOLVER_KEYS,
    UNIT,
    Env,
    LiveEnv,
    RecordingSolver,
    Running,
    built,
    devnet,
    live_devnet,
    wait_until,
)

__all__ = ["SOLVER_KEYS", "UNIT", "Env", "LiveEnv", "RecordingSolver", "Running", "wait_until"]


@pytest.fixture
def env() -> Iterator[Env]:
    if not built():
        pytest.skip("Tender contracts not built: run `make contracts`")
    with devnet() as running:
        yield running


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveEnv]:
    """Three real provider nodes on one devnet, shared by a module's tests (starting the nodes
    is the slow part); each test's solvers start at the then current block."""
    if not built():
        pytest.skip("Tender contracts not built: run `make contracts`")
    with live_devnet(tmp_path_factory.mktemp("live")) as running:
        yield running
