"""Fixtures for the model tests: the two sample bundles, a perturbed MLP, a live Anvil.

Bundles are built once into the Tender cache (``TENDER_CACHE`` or ``.cache/tender``) and
reused by later runs, so only the first run pays for EZKL's setup.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from web3 import Web3

from tender.anvil import DEV_KEYS, Anvil
from tender.chain import TxSender
from tender.models import Bundle, build, deploy_verifier
from tender.paths import SAMPLE_MODELS

#: Gas figures measured by the tests, printed at the end of the session.
GAS: dict[str, int] = {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: builds circuits or proves (seconds to minutes)")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if GAS:
        terminalreporter.section("verifyProof gas (Anvil, whole transaction)")
        for name, gas in sorted(GAS.items()):
            terminalreporter.write_line(f"{name:>24}: {gas:,}")


@pytest.fixture(scope="session")
def gas_report() -> dict[str, int]:
    """Record gas figures here; they are printed in the session summary."""
    return GAS


@pytest.fixture(scope="session")
def samples() -> dict[str, list[dict[str, Any]]]:
    import json

    return {
        name: json.loads((SAMPLE_MODELS / name / "samples.json").read_text())["samples"]
        for name in ("mlp", "cnn")
    }


@pytest.fixture(scope="session")
def bundles() -> dict[str, Bundle]:
    return {
        name: build(SAMPLE_MODELS / name / "model.onnx", SAMPLE_MODELS / name / "calibration.json")
        for name in ("mlp", "cnn")
    }


@pytest.fixture(scope="session")
def perturbed_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The MLP with one first-layer weight nudged: same shapes, other weights."""
    model = onnx.load(str(SAMPLE_MODELS / "mlp" / "model.onnx"))
    first = model.graph.initializer[0]
    weights = numpy_helper.to_array(first).copy()
    weights.flat[0] += np.float32(0.5)
    first.CopyFrom(numpy_helper.from_array(weights, first.name))
    folder = tmp_path_factory.mktemp("mlp_perturbed")
    path = folder / "model.onnx"
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="session")
def perturbed_bundle(perturbed_onnx: Path) -> Bundle:
    return build(perturbed_onnx, SAMPLE_MODELS / "mlp" / "calibration.json", name="mlp-perturbed")


@dataclass
class Chain:
    anvil: Anvil
    w3: Web3
    sender: TxSender


@pytest.fixture(scope="session")
def chain() -> Iterator[Chain]:
    with Anvil() as anvil:
        w3 = Web3(Web3.HTTPProvider(anvil.rpc_url))
        yield Chain(anvil, w3, TxSender(w3, DEV_KEYS[0]))


@pytest.fixture(scope="session")
def verifiers(chain: Chain, bundles: dict[str, Bundle]) -> dict[str, str]:
    return {name: deploy_verifier(chain.w3, chain.sender, bundle) for name, bundle in bundles.items()}
