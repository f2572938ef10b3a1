"""Setting up the devnet's chain: contracts, models, tokens and stakes.

Everything here is synchronous (web3 and EZKL are); the devnet runs it before the roles
start. Gas of every setup transaction is recorded by phase.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account
from web3 import Web3

from tender.chain import Deployment, Staking, Token, TxSender, deploy, snake
from tender.chain._deploy import deploy_artifact
from tender.errors import ArtifactError
from tender.paths import SAMPLE_MODELS

__all__ = ["ChainSetup", "ModelInfo"]

TOKEN = 10**18


@dataclass(frozen=True)
class ModelInfo:
    """A sample model as registered on the devnet."""

    name: str
    bundle: Path
    model_id: str
    verifier: str


@dataclass
class ChainSetup:
    """What the devnet put on its chain."""

    w3: Web3
    deployer_key: str
    deployment: Deployment | None = None
    models: dict[str, ModelInfo] = field(default_factory=dict)
    agent: str | None = None
    gas: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def _record(self, phase: str, receipt: Any) -> None:
        self.gas[phase] += int(receipt["gasUsed"])

    # -- contracts ---------------------------------------------------------------------

    def deploy(self, *, save: Path, params: dict[str, Any] | None = None) -> Deployment:
        """Token, registry, staking and both markets (``tender.chain.deploy``), with the
        default market parameters changed by ``params`` (``{"challenge_window": 10}``)."""
        from tender.chain._deploy import DEFAULT_PARAMS

        before = self.w3.eth.block_number
        market_params = dataclasses.replace(DEFAULT_PARAMS, **(params or {}))
        self.deployment = deploy(self.w3, self.deployer_key, save=save, params=market_params)
        self._gas_since(before, "deploy")
        return self.deployment

    def _gas_since(self, block: int, phase: str) -> None:
        for number in range(block + 1, self.w3.eth.block_number + 1):
            for tx_hash in self.w3.eth.get_block(number)["transactions"]:
                self._record(phase, self.w3.eth.get_transaction_receipt(tx_hash))  # type: ignore[arg-type]

    # -- models ------------------------------------------------------------------------

    def register_models(self, names: Iterable[str] = ("mlp", "cnn")) -> dict[str, ModelInfo]:
        """Build (cached) each sample model, deploy its verifier and register it."""
        from tender import models
        from tender.chain import ModelInfo as RegistryEntry
        from tender.chain import Registry

        assert self.deployment is not None
        sender = TxSender(self.w3, self.deployer_key)
        registry = Registry(self.w3, self.deployment.registry, sender=sender)
        for name in names:
            folder = SAMPLE_MODELS / name
            bundle = models.build(folder / "model.onnx", folder / "calibration.json", srs="dev", name=name)
            before = self.w3.eth.block_number
            verifier = models.deploy_verifier(self.w3, sender, bundle)
            self._gas_since(before, "deploy_verifier")
            entry = models.registry_entry(
                bundle, verifier=verifier, owner=sender.address, chain_id=sender.chain_id
            )
            info = RegistryEntry(**{snake(k): v for k, v in entry.items()})
            before = self.w3.eth.block_number
            model_id = registry.register_model(info)
            self._gas_since(before, "register_model")
            self.models[name] = ModelInfo(
                name=name, bundle=Path(bundle.path), model_id="0x" + bytes(model_id).hex(), verifier=verifier
            )
        return self.models

    # -- agent -------------------------------------------------------------------------

    def deploy_agent(self, owner_key: str) -> str | None:
        """The TenderAgent example consumer, owned by ``owner_key``'s account and able to use
        both markets (``None`` when its artefact is not built)."""
        from tender.client._agent import TenderAgentContract

        assert self.deployment is not None
        sender = TxSender(self.w3, owner_key)
        try:
            address, receipt = deploy_artifact(
                sender, "TenderAgent", self.deployment.markets["reverse"], sender.address
            )
        except ArtifactError:
            return None
        self._record("deploy_agent", receipt)
        agent = TenderAgentContract(self.w3, address, sender=sender)
        self._record("deploy_agent", agent.add_market(self.deployment.markets["dutch"]))
        self.agent = address
        return address

    # -- money -------------------------------------------------------------------------

    def mint(self, to: Iterable[str], amount: int) -> None:
        assert self.deployment is not None
        token = Token(self.w3, self.deployment.token, sender=TxSender(self.w3, self.deployer_key))
        for address in to:
            self._record("mint", token.mint(address, amount))

    def stake(self, key: str, amount: int) -> None:
        """``key``'s operator approves Staking and bonds ``amount``."""
        assert self.deployment is not None
        sender = TxSender(self.w3, key)
        token = Token(self.w3, self.deployment.token, sender=sender)
        self._record("stake", token.approve(self.deployment.staking, amount))
        self._record("stake", Staking(self.w3, self.deployment.staking, sender=sender).stake(amount))

    def operator(self, key: str, *, endpoint: str, region: str, solvers: Iterable[str]) -> None:
        """Publish ``key``'s operator record and let ``solvers`` bid, fill and deliver for it."""
        assert self.deployment is not None
        staking = Staking(self.w3, self.deployment.staking, sender=TxSender(self.w3, key))
        model_ids = [bytes.fromhex(m.model_id.removeprefix("0x")) for m in self.models.values()]
        region_bytes = bytes.fromhex(region.removeprefix("0x"))
        hardware = b"cpu".ljust(32, b"\x00")
        self._record(
            "operator",
            staking.register_operator(
                endpoint, region=region_bytes, hardware_class=hardware, models=model_ids
            ),
        )
        for solver in solvers:
            self._record("operator", staking.set_solver(solver, True))

    @staticmethod
    def address(key: str) -> str:
        return str(Account.from_key(key).address)
