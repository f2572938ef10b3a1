"""The persistent local network the documents run against (one per test session)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from docs_network import LocalNetwork, start_network, stop_network


@pytest.fixture(scope="session")
def local_network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNetwork]:
    network = start_network(tmp_path_factory.mktemp("network"))
    try:
        yield network
    finally:
        stop_network(network)
