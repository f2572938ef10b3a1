"""Test and benchmark support: a Tender deployment on a private Anvil with the real ``mlp``
model (EZKL bundle, Halo2 verifier contract, onnxruntime), and a job history driven through
every ending. Used by ``tests/verifier`` and ``benchmarks/audit.py``; not imported by the agent.

Actors (Anvil dev accounts): 0 deployer/treasury, 1 requester, 2 provider, 3 the verifier
agent (challenger), 4 a bystander.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from web3 import Web3

from tender.anvil import DEV_KEYS, Anvil
from tender.chain import (
    DEFAULT_PARAMS,
    Deployment,
    Market,
    MarketParams,
    ModelInfo,
    Registry,
    Staking,
    Token,
    TxSender,
    deploy,
)
from tender.intents import AuctionType, Intent, ProofMode, random_nonce
from tender.models import (
    FIELD_MODULUS,
    Bundle,
    Proof,
    build,
    deploy_verifier,
    input_commitment,
    prove,
    registry_entry,
)
from tender.paths import SAMPLE_MODELS

UNIT = 10**18
STAKE = 1_000 * UNIT
FUNDS = 10_000 * UNIT
#: Short windows so tests move time by little.
PARAMS = MarketParams(
    **{
        **{name: getattr(DEFAULT_PARAMS, name) for name in MarketParams.__dataclass_fields__},
        "challenge_window": 120,
        "proof_window": 120,
    }
)


@cache
def mlp_bundle() -> Bundle:
    """The sample MLP's bundle (built once into the cache, then reused)."""
    return build(SAMPLE_MODELS / "mlp" / "model.onnx", SAMPLE_MODELS / "mlp" / "calibration.json")


@cache
def samples() -> list[list[float]]:
    data = json.loads((SAMPLE_MODELS / "mlp" / "samples.json").read_text())
    return [list(map(float, s["input"])) for s in data["samples"]]


@cache
def proof_of(index: int) -> Proof:
    """A real proof of sample ``index`` (a proof binds the input and output, not the job: reusable)."""
    return prove(mlp_bundle(), samples()[index])


@dataclass
class Party:
    sender: TxSender
    market: Market  # the Dutch market: one-transaction fills keep tests short
    reverse: Market
    token: Token
    staking: Staking

    @property
    def address(self) -> str:
        return self.sender.address


def party(w3: Web3, key: str, deployment: Deployment) -> Party:
    sender = TxSender(w3, key)
    return Party(
        sender=sender,
        market=Market(w3, deployment.market("dutch"), auction=AuctionType.DUTCH, sender=sender),
        reverse=Market(w3, deployment.market("reverse"), sender=sender),
        token=Token(w3, deployment.token, sender=sender),
        staking=Staking(w3, deployment.staking, sender=sender),
    )


@dataclass
class Env:
    chain: Anvil
    w3: Web3
    deployment: Deployment
    bundle: Bundle
    model_id: bytes
    verifier: str
    deployer: Party
    requester: Party
    provider: Party
    agent: Party
    bystander: Party
    jobs: list[bytes] = field(default_factory=list)

    @property
    def agent_key(self) -> str:
        return DEV_KEYS[3]

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def advance(self, seconds: int) -> None:
        self.chain.rpc("evm_increaseTime", [seconds])
        self.chain.rpc("evm_mine", [])

    def intent(self, x: list[float], *, mode: ProofMode, inline: bool = True, **changes: Any) -> Intent:
        now = self.now()
        base = Intent(
            requester=self.requester.address,
            model_id=self.model_id,
            input_commitment=input_commitment(self.bundle, x),
            input_location=json.dumps(x).encode() if inline else b"ipfs://unreachable",
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
        return base.replace(**changes)

    def open_job(self, x: list[float], *, mode: ProofMode, latency: int = 300, **changes: Any) -> bytes:
        """Post an intent for ``x`` and fill it for the provider: the job is awarded."""
        intent = self.intent(x, mode=mode, **changes)
        job = self.requester.market.job_id(intent)
        self.requester.market.post(intent)
        self.provider.market.fill(job, self.provider.address, latency)
        self.jobs.append(job)
        return job

    def deliver_zk(self, job: bytes, index: int) -> None:
        proof = proof_of(index)
        self.provider.market.deliver(job, proof.output_felts, proof.proof)

    def deliver_optimistic(self, job: bytes, output: list[int]) -> None:
        self.provider.market.deliver(job, output, b"")


def make_env(chain: Anvil) -> Env:
    """Deploy Tender, register the real MLP (its EZKL verifier deployed), fund and stake."""
    w3 = Web3(Web3.HTTPProvider(chain.rpc_url))
    deployment = deploy(w3, DEV_KEYS[0], params=PARAMS, unstaking_delay=3_600)
    deployer, requester, provider, agent, bystander = (party(w3, DEV_KEYS[i], deployment) for i in range(5))
    bundle = mlp_bundle()
    verifier = deploy_verifier(w3, deployer.sender, bundle)
    entry = registry_entry(bundle, verifier=verifier, owner=deployer.address, chain_id=int(w3.eth.chain_id))
    model_id = Registry(w3, deployment.registry, sender=deployer.sender).register_model(
        ModelInfo.from_dict(entry)
    )
    for who in (requester, agent, bystander):
        deployer.token.mint(who.address, FUNDS)
        who.token.approve(deployment.market("dutch"), 2**256 - 1)
        who.token.approve(deployment.market("reverse"), 2**256 - 1)
    deployer.token.mint(provider.address, STAKE)
    provider.token.approve(deployment.staking, 2**256 - 1)
    provider.staking.stake(STAKE)
    return Env(
        chain, w3, deployment, bundle, model_id, verifier, deployer, requester, provider, agent, bystander
    )


@dataclass
class History:
    """Jobs driven to every ending, by kind."""

    zk: list[bytes] = field(default_factory=list)
    finalized: list[bytes] = field(default_factory=list)
    slashed: list[bytes] = field(default_factory=list)
    proved: list[bytes] = field(default_factory=list)
    expired: list[bytes] = field(default_factory=list)
    refunded: list[bytes] = field(default_factory=list)

    @property
    def all(self) -> list[bytes]:
        return [*self.zk, *self.finalized, *self.slashed, *self.proved, *self.expired, *self.refunded]


def build_history(
    env: Env,
    *,
    zk: int = 8,
    finalized: int = 5,
    slashed: int = 2,
    proved: int = 2,
    expired: int = 2,
    refunded: int = 1,
) -> History:
    """Run jobs to settlement (zk and optimistic), slashing, proof after challenge, expiry and refund.

    The wrong optimistic outputs are challenged by the bystander; time moves once for all. Then
    the requester pays one more zk job from its credit in the market (the refunds: no token
    transfer), and the provider and the bystander withdraw what the market owes them.
    """
    from verifier._models import witness_outputs

    xs = samples()
    history = History()
    honest = {i: witness_outputs(env.bundle, x) for i, x in enumerate(xs)}
    for n in range(zk):
        i = n % len(xs)
        job = env.open_job(xs[i], mode=ProofMode.ZK)
        env.deliver_zk(job, i)
        history.zk.append(job)
    if zk:  # the treasury takes the fees so far; later settlements accrue more (feesOwed > 0)
        env.bystander.sender.send(env.bystander.market.fn.withdrawFees())
    for n in range(finalized):
        i = n % len(xs)
        job = env.open_job(xs[i], mode=ProofMode.OPTIMISTIC)
        env.deliver_optimistic(job, honest[i])
        history.finalized.append(job)
    for n in range(slashed):
        i = n % len(xs)
        job = env.open_job(xs[i], mode=ProofMode.OPTIMISTIC)
        wrong = list(witness_outputs(env.bundle, xs[i]))
        wrong[0] = (wrong[0] + 3 * 2**env.bundle.card.output_scale) % FIELD_MODULUS
        env.deliver_optimistic(job, wrong)
        env.bystander.market.challenge(job)
        history.slashed.append(job)
    for n in range(proved):
        i = n % len(xs)
        job = env.open_job(xs[i], mode=ProofMode.OPTIMISTIC)
        env.deliver_optimistic(job, honest[i])
        env.bystander.market.challenge(job)
        env.provider.market.prove(job, proof_of(i).proof)
        history.proved.append(job)
    for n in range(expired):
        history.expired.append(env.open_job(xs[n % len(xs)], mode=ProofMode.ZK, latency=60))
    for n in range(refunded):
        intent = env.intent(xs[n % len(xs)], mode=ProofMode.ZK)
        env.requester.market.post(intent)
        history.refunded.append(env.requester.market.job_id(intent))
    env.advance(400)
    for job in history.finalized:
        env.bystander.market.finalize(job)
    for job in [*history.slashed, *history.expired]:
        env.bystander.market.expire(job)
    for job in history.refunded:
        env.bystander.market.refund(job)
    if zk:  # an escrow paid from the requester's credit (refunds, unspent escrow)
        intent = env.intent(xs[0], mode=ProofMode.ZK)
        escrow = env.requester.market.escrow_for(intent.max_price)
        assert env.requester.market.covered_by_credit(env.requester.address, escrow)
        job = env.requester.market.job_id(intent)
        env.requester.market.post(intent)
        env.provider.market.fill(job, env.provider.address, 300)
        env.deliver_zk(job, 0)
        history.zk.append(job)
    for who in (env.provider, env.bystander):
        if who.market.owed(who.address):
            who.market.withdraw()
    return history
