"""The auditors' Ape suite: deploy Tender through Ape's project contracts on an Anvil that
ape-foundry starts, run jobs to settlement, slashing and expiry with the real MLP model (its
EZKL Halo2 verifier deployed from the bundle's compiled artefact), and check them as an
auditor would.

Run with ``ape test tests/ape`` (``make test-ape``). Offline: the compiler is the repository's
solc-js shim (``SOLCX_BINARY_PATH``) and the model bundle is built locally (dev SRS) or taken
from the cache.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import pytest
from ape.contracts import ContractContainer, ContractInstance
from ethpm_types import ContractType

from tender.intents import AuctionType, Intent, ProofMode, random_nonce
from tender.models import Bundle, Proof, build, input_commitment, prove, registry_entry
from tender.paths import ROOT, SAMPLE_MODELS

UNIT = 10**18
STAKE = 1_000 * UNIT
PARAMS = {
    "feeBps": 100,
    "stakeMultiple": 2,
    "challengerRewardBps": 5_000,
    "challengeWindow": 120,
    "proofWindow": 120,
    "maxCallbackGas": 1_000_000,
    "challengeBond": UNIT,
}


@cache
def mlp() -> Bundle:
    return build(SAMPLE_MODELS / "mlp" / "model.onnx", SAMPLE_MODELS / "mlp" / "calibration.json")


@cache
def sample(index: int) -> list[float]:
    data = json.loads((SAMPLE_MODELS / "mlp" / "samples.json").read_text())
    return [float(v) for v in data["samples"][index]["input"]]


@cache
def proof_of(index: int) -> Proof:
    return prove(mlp(), sample(index))


def _struct(abi_inputs: list[Any], values: dict[str, Any]) -> tuple[Any, ...]:
    """A struct tuple in ABI order from values by Solidity name."""
    return tuple(values[item["name"]] for item in abi_inputs)


def _constructor_struct(container: ContractContainer, name: str, values: dict[str, Any]) -> tuple[Any, ...]:
    constructor = container.contract_type.constructor
    for item in constructor.inputs:
        if item.name == name:
            return _struct([c.model_dump() for c in item.components or []], values)
    raise KeyError(name)


@dataclass
class Protocol:
    """Tender deployed through Ape, with the jobs the session ran."""

    token: ContractInstance
    registry: ContractInstance
    staking: ContractInstance
    market: ContractInstance
    verifier: ContractInstance
    model_id: bytes
    deployer: Any
    requester: Any
    provider: Any
    challenger: Any
    jobs: dict[str, list[bytes]] = field(default_factory=dict)


@pytest.fixture(scope="session")
def fresh_contracts(project: Any) -> Any:
    """``project`` compiled from the current sources.

    ape-solidity recompiles a changed file but not the contracts that import it (a change to
    ``BaseMarket.sol`` leaves ``DutchAuctionMarket`` stale), so when any source differs from the
    last full build everything is compiled again.
    """
    digest = hashlib.sha256()
    for path in sorted((ROOT / "contracts" / "src").rglob("*.sol")):
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    stamp = ROOT / ".build" / "tender-sources.sha256"
    if not stamp.is_file() or stamp.read_text() != digest.hexdigest():
        project.load_contracts(use_cache=False)
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(digest.hexdigest())
    return project


@pytest.fixture(scope="session")
def protocol(fresh_contracts: Any, accounts: Any, chain: Any) -> Protocol:
    project = fresh_contracts
    deployer, requester, provider, challenger = accounts[0], accounts[1], accounts[2], accounts[3]
    token = project.TestToken.deploy("Tender USD", "TUSD", 18, sender=deployer)
    registry = project.ModelRegistry.deploy(sender=deployer)
    staking = project.Staking.deploy(token, deployer, 3_600, 10**15, sender=deployer)  # minCountedFee
    params = _constructor_struct(project.DutchAuctionMarket, "params_", PARAMS)
    market = project.DutchAuctionMarket.deploy(
        token, registry, staking, deployer, deployer, params, sender=deployer
    )
    staking.setMarket(market, True, sender=deployer)

    # the model's real EZKL verifier, from the bundle's compiled artefact
    bundle = mlp()
    artefact = bundle.verifier()
    verifier_type = ContractType.model_validate(
        {
            "contractName": "Halo2Verifier",
            "abi": artefact["abi"],
            "deploymentBytecode": {"bytecode": artefact["bytecode"]},
            "runtimeBytecode": {"bytecode": artefact["deployed_bytecode"]},
        }
    )
    verifier = ContractContainer(verifier_type).deploy(sender=deployer)
    entry = registry_entry(bundle, verifier=verifier.address, owner=deployer.address, chain_id=chain.chain_id)
    info = tuple(entry[item["name"]] for item in _model_info_abi(registry))
    receipt = registry.register(info, sender=deployer)
    model_id = bytes(receipt.events[0].modelId)

    for who in (requester, challenger):
        token.mint(who, 10_000 * UNIT, sender=deployer)
        token.approve(market, 2**256 - 1, sender=who)
    token.mint(provider, STAKE, sender=deployer)
    token.approve(staking, 2**256 - 1, sender=provider)
    staking.stake(STAKE, sender=provider)
    protocol = Protocol(
        token, registry, staking, market, verifier, model_id, deployer, requester, provider, challenger
    )
    _run_jobs(protocol, chain)
    return protocol


def _model_info_abi(registry: ContractInstance) -> list[dict[str, Any]]:
    abi = next(a for a in registry.contract_type.abi if getattr(a, "name", None) == "register")
    return [c.model_dump() for c in abi.inputs[0].components]


def _intent(p: Protocol, chain: Any, index: int, mode: ProofMode, *, location: bytes | None = None) -> Intent:
    now = chain.pending_timestamp
    x = sample(index)
    return Intent(
        requester=p.requester.address,
        model_id=p.model_id,
        input_commitment=input_commitment(mlp(), x),
        input_location=json.dumps(x).encode() if location is None else location,
        max_price=10 * UNIT,
        start_price=2 * UNIT,
        auction_type=AuctionType.DUTCH,
        auction_window=60,
        deadline=now + 3_600,
        proof_mode=mode,
        min_stake=5 * UNIT,
        price_weight_bps=8_000,
        nonce=random_nonce(),
        expiry=now + 600,
    )


def _open(p: Protocol, chain: Any, index: int, mode: ProofMode, *, latency: int = 300) -> bytes:
    intent = _intent(p, chain, index, mode)
    receipt = p.market.post(intent.to_abi(), sender=p.requester)
    job = bytes(receipt.events.filter(p.market.IntentPosted)[0].jobId)
    p.market.fill(job, p.provider, latency, sender=p.provider)
    return job


def _run_jobs(p: Protocol, chain: Any) -> None:
    """Three zk jobs settled, one optimistic proven after a challenge, one wrong optimistic
    output challenged and slashed, one honest optimistic finalized, one silent provider expired."""
    jobs: dict[str, list[bytes]] = {"zk": [], "proved": [], "slashed": [], "finalized": [], "expired": []}
    for index in range(3):
        job = _open(p, chain, index, ProofMode.ZK)
        proof = proof_of(index)
        p.market.deliver(job, proof.output_felts, proof.proof, sender=p.provider)
        jobs["zk"].append(job)
    job = _open(p, chain, 0, ProofMode.OPTIMISTIC)
    p.market.deliver(job, proof_of(0).output_felts, b"", sender=p.provider)
    p.market.challenge(job, sender=p.challenger)
    p.market.prove(job, proof_of(0).proof, sender=p.provider)
    jobs["proved"].append(job)
    job = _open(p, chain, 1, ProofMode.OPTIMISTIC)
    wrong = list(proof_of(1).output_felts)
    wrong[0] += 5 * 2 ** mlp().card.output_scale
    p.market.deliver(job, wrong, b"", sender=p.provider)
    p.market.challenge(job, sender=p.challenger)
    jobs["slashed"].append(job)
    job = _open(p, chain, 2, ProofMode.OPTIMISTIC)
    p.market.deliver(job, proof_of(2).output_felts, b"", sender=p.provider)
    jobs["finalized"].append(job)
    jobs["expired"].append(_open(p, chain, 0, ProofMode.ZK, latency=60))
    chain.mine(timestamp=chain.pending_timestamp + 400)
    p.market.expire(jobs["slashed"][0], sender=p.challenger)
    p.market.finalize(jobs["finalized"][0], sender=p.challenger)
    p.market.expire(jobs["expired"][0], sender=p.challenger)
    p.jobs = jobs
