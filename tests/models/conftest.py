"""Fixtures for the model tests: the two sample bundles (polycommit, the default), the MLP
with a hashed input, a perturbed MLP, a live Anvil with Tender deployed.

Bundles are built once into the Tender cache (``TENDER_CACHE`` or ``.cache/tender``) and
reused by later runs, so only the first run pays for EZKL's setup (~25 s a bundle on 2 cores).
"""

from __future__ import annotations

import shutil
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
from tender.chain import Deployment, Market, ModelInfo, Registry, Staking, Token, TxSender, deploy
from tender.intents import AuctionType, Intent, ProofMode, random_nonce
from tender.models import Bundle, build, deploy_verifier, registry_entry
from tender.models._recipe import RECIPE_FILE
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
def hashed_bundle() -> Bundle:
    """The MLP with its input Poseidon-hashed as instance 0 (``INPUT_HASHED``)."""
    mlp = SAMPLE_MODELS / "mlp"
    return build(mlp / "model.onnx", mlp / "calibration.json", input_visibility="hashed")


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
    shutil.copyfile(SAMPLE_MODELS / "mlp" / RECIPE_FILE, folder / RECIPE_FILE)  # the sample's recipe
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


UNIT = 10**18


@dataclass
class MarketEnv:
    """Tender deployed on the session's Anvil, with a staked provider and a funded requester."""

    chain: Chain
    deployment: Deployment
    requester: Market
    provider: Market
    provider_address: str
    model_ids: dict[str, bytes]

    def register(self, name: str, bundle: Bundle) -> bytes:
        """Deploy ``bundle``'s verifier and register it (once per name)."""
        if name not in self.model_ids:
            sender = self.chain.sender
            verifier = deploy_verifier(self.chain.w3, sender, bundle)
            entry = registry_entry(bundle, verifier=verifier, owner=sender.address, chain_id=31337)
            registry = Registry(self.chain.w3, self.deployment.registry, sender=sender)
            self.model_ids[name] = registry.register_model(ModelInfo.from_dict(entry))
        return self.model_ids[name]

    def open_job(self, model_id: bytes, commitment: int) -> bytes:
        """Post a zk Dutch intent committing to ``commitment`` and fill it for the provider."""
        now = int(self.chain.w3.eth.get_block("latest")["timestamp"])
        intent = Intent(
            requester=self.requester.sender.address,
            model_id=model_id,
            input_commitment=commitment,
            max_price=UNIT,
            start_price=UNIT // 10,
            auction_type=AuctionType.DUTCH,
            auction_window=60,
            deadline=now + 3_600,
            proof_mode=ProofMode.ZK,
            price_weight_bps=5_000,
            nonce=random_nonce(),
            expiry=now + 600,
        )
        job = self.requester.job_id(intent)
        self.requester.post(intent)
        self.provider.fill(job, self.provider_address, 300)
        return job


@pytest.fixture(scope="session")
def market(chain: Chain) -> MarketEnv:
    w3 = chain.w3
    deployment = deploy(w3, DEV_KEYS[0], unstaking_delay=3_600)
    requester, provider = TxSender(w3, DEV_KEYS[4]), TxSender(w3, DEV_KEYS[5])
    owner_token = Token(w3, deployment.token, sender=chain.sender)
    owner_token.mint(requester.address, 1_000 * UNIT)
    owner_token.mint(provider.address, 1_000 * UNIT)
    Token(w3, deployment.token, sender=requester).approve(deployment.market("dutch"), 2**256 - 1)
    Token(w3, deployment.token, sender=provider).approve(deployment.staking, 2**256 - 1)
    Staking(w3, deployment.staking, sender=provider).stake(1_000 * UNIT)
    dutch = deployment.market("dutch")
    return MarketEnv(
        chain,
        deployment,
        requester=Market(w3, dutch, auction=AuctionType.DUTCH, sender=requester),
        provider=Market(w3, dutch, auction=AuctionType.DUTCH, sender=provider),
        provider_address=provider.address,
        model_ids={},
    )
