"""Fixtures of the solver's tests: a deployed Tender on Anvil (see :func:`solver.testing.devnet`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from solver.testing import PROVIDERS, SOLVER_KEYS, UNIT, Env, Running, built, devnet, wait_until

__all__ = ["PROVIDERS", "SOLVER_KEYS", "UNIT", "Env", "Running", "wait_until"]


@pytest.fixture
def env() -> Iterator[Env]:
    if not built():
        pytest.skip("Tender contracts not built: run `make contracts`")
    with devnet() as running:
        yield running
