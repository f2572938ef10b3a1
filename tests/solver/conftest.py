"""A deployed Tender on Anvil for the solver's tests: three staked providers (stub HTTP nodes
that deliver optimistically on chain), a funded requester, and helpers to run solvers."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from solver._config import GasSection, SolverSection
from solver._market import CHAIN_STATES, ChainJob, _flatten
from solver._solver import Solver
from solver.testing import StubFleet, StubProvider
from tender.anvil import DEV_KEYS, Anvil
from tender.chain import (
    Deployment,
    Market,
    MarketParams,
    ModelInfo,
    Registry,
    Staking,
    Token,
    TxSender,
    deploy,
    load_artifact,
)
from tender.config import ChainSection
from tender.errors import ArtifactError, ContractRevert
from tender.intents import AuctionType, Intent, ProofMode, random_nonce, sign_intent
from tender.wire import JobInput

UNIT = 10**18
OUTPUT = (11, 22, 33)
#: ``verifyProof`` is true iff the proof's first byte is 0x01 (raw EVM, as in tests/chain).
VERIFIER = bytes.fromhex(
    "602a80600b6000396000f3600435600401803515601e576020013560f81c60011460005260206000f35b50600060005260206000f3"
)
PARAMS = MarketParams(
    fee_bps=100, bond_multiple=2, challenger_reward_bps=5_000, challenge_window=2, proof_window=60,
    max_callback_gas=1_000_000, challenge_bond=UNIT,
)  # fmt: skip

#: (key index, price in tokens, latency s): different prices and latencies.
PROVIDERS = ((2, 3.0, 20), (3, 1.5, 120), (4, 2.2, 60))
SOLVER_KEYS = (DEV_KEYS[5], DEV_KEYS[6])


def built() -> bool:
    try:
        for name in ("ReverseAuctionMarket", "DutchAuctionMarket", "Staking"):
            load_artifact(name)
    except ArtifactError:
        return False
    return True


@dataclass
class Env:
    chain: Anvil
    w3: Web3
    deployment: Deployment
    model_id: bytes
    requester: TxSender
    markets: dict[AuctionType, Market]
    stubs: list[StubProvider]
    fleet: StubFleet
    delivered: list[str] = field(default_factory=list)

    def job(self, auction: AuctionType, job_id: str) -> ChainJob:
        """The market's record of a job (read with the ABI, as the solver reads it)."""
        market = self.markets[auction]
        outputs = next(e for e in market.artifact.abi if e.get("name") == "job")["outputs"]
        fields = _flatten(outputs, market.contract.functions.job(bytes.fromhex(job_id[2:])).call())
        return ChainJob(state=CHAIN_STATES[int(fields["state"])], fields=fields)

    def now(self) -> int:
        return max(int(self.w3.eth.get_block("latest")["timestamp"]), int(time.time()))

    def intent(self, auction: AuctionType, *, window: int = 4, weight: int = 5_000, **changes: Any) -> Intent:
        now = self.now()
        base = Intent(
            requester=self.requester.address,
            model_id=self.model_id,
            input_commitment=0xC0FFEE,
            input_location=b'data:application/json,[[1.0,2.0,3.0]]',
            max_price=10 * UNIT,
            start_price=UNIT // 2 if auction == AuctionType.DUTCH else 0,
            auction_type=auction,
            auction_window=window,
            deadline=now + window + 600,
            proof_mode=ProofMode.OPTIMISTIC,
            min_stake=0,
            price_weight_bps=weight,
            nonce=random_nonce(),
            expiry=now + 600,
        )
        return base.replace(**changes)

    def post(self, intent: Intent) -> str:
        market = self.markets[intent.auction_type]
        market.post(intent)
        return "0x" + market.job_id(intent).hex()

    def sign(self, intent: Intent) -> bytes:
        market = self.markets[intent.auction_type]
        return sign_intent(intent, DEV_KEYS[1], chain_id=31337, market=market.address)

    def solver_section(self, db: Path, *, margin_bps: int = 100, **changes: Any) -> SolverSection:
        return SolverSection(
            providers=self.fleet.entries(),
            listen=None,
            db_path=db,
            margin_bps=margin_bps,
            poll_interval_s=0.1,
            job_poll_s=0.2,
            quote_timeout_s=2.0,
            start_block=self.deployment.block,
            gas=GasSection(stuck_after_s=10),
            **changes,
        )

    def chain_section(self) -> ChainSection:
        return ChainSection(rpc_url=self.chain.rpc_url)


def _deliverer(w3: Web3, key: str, deployment: Deployment, env_delivered: list[str]) -> Any:
    """``on_job`` for a stub provider: deliver the output on chain, then finalize it."""
    sender = TxSender(w3, key)
    markets = {
        deployment.market("reverse").lower(): Market(w3, deployment.market("reverse"), sender=sender),
        deployment.market("dutch").lower(): Market(
            w3, deployment.market("dutch"), auction=AuctionType.DUTCH, sender=sender
        ),
    }
    lock = threading.Lock()

    def work(job: JobInput) -> None:
        market = markets[job.market.lower()]
        job_id = bytes.fromhex(job.jobId[2:])
        with lock:
            market.deliver(job_id, list(OUTPUT), b"")
        env_delivered.append(job.jobId)
        time.sleep(PARAMS.challenge_window + 1.0)
        for _ in range(20):
            w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
            try:
                with lock:
                    market.finalize(job_id)
                return
            except ContractRevert:
                time.sleep(0.5)

    async def on_job(job: JobInput) -> None:
        loop = asyncio.get_running_loop()
        loop.run_in_executor(None, work, job)

    return on_job


@pytest.fixture()
def env() -> Iterator[Env]:
    if not built():
        pytest.skip("Tender contracts not built: run `make contracts`")
    with Anvil(extra_args=["--disable-code-size-limit"]) as chain:
        w3 = Web3(Web3.HTTPProvider(chain.rpc_url))
        deployment = deploy(w3, DEV_KEYS[0], params=PARAMS, unbonding_delay=3_600)
        owner = TxSender(w3, DEV_KEYS[0])
        token = Token(w3, deployment.token, sender=owner)
        verifier, _ = owner.deploy(VERIFIER)
        info = ModelInfo(
            onnx_sha256=b"\x01" * 32, settings_hash=b"\x02" * 32, verifier=verifier, commitment_index=0,
            output_offset=1, output_length=len(OUTPUT), instance_count=1 + len(OUTPUT), proof_modes=3,
            audit_rate_bps=0,
        )  # fmt: skip
        model_id = Registry(w3, deployment.registry, sender=owner).register_model(info)
        requester = TxSender(w3, DEV_KEYS[1])
        token.mint(requester.address, 100_000 * UNIT)
        req_token = Token(w3, deployment.token, sender=requester)
        for name in ("reverse", "dutch"):
            req_token.approve(deployment.market(name), 2**256 - 1)
        delivered: list[str] = []
        stubs = []
        for index, price, latency in PROVIDERS:
            key = DEV_KEYS[index]
            sender = TxSender(w3, key)
            token.mint(sender.address, 10_000 * UNIT)
            Token(w3, deployment.token, sender=sender).approve(deployment.staking, 2**256 - 1)
            staking = Staking(w3, deployment.staking, sender=sender)
            staking.stake(10_000 * UNIT)
            for solver_key in SOLVER_KEYS:
                staking.set_solver(TxSender(w3, solver_key).address, True)
            stubs.append(
                StubProvider(key, price=int(price * UNIT), latency_s=latency,
                             on_job=_deliverer(w3, key, deployment, delivered))  # fmt: skip
            )
        markets = {
            AuctionType.REVERSE: Market(w3, deployment.market("reverse"), sender=requester),
            AuctionType.DUTCH: Market(w3, deployment.market("dutch"), auction=AuctionType.DUTCH, sender=requester),
        }
        with StubFleet(stubs) as fleet:
            yield Env(chain, w3, deployment, model_id, requester, markets, stubs, fleet, delivered)


class Running:
    """Solvers running in a background thread's event loop (each under ``supervise``)."""

    def __init__(self, solvers: list[Solver]) -> None:
        from tender.daemon import supervise

        self.solvers = solvers
        self.loop = asyncio.new_event_loop()
        self.codes: list[int] = []

        async def main() -> None:
            self.codes = list(await asyncio.gather(*(supervise(s) for s in solvers)))

        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(main(),), daemon=True)

    def __enter__(self) -> Running:
        self.thread.start()
        return self

    def stop(self) -> None:
        for solver in self.solvers:
            self.loop.call_soon_threadsafe(solver.request_stop)
        self.thread.join(timeout=30)

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_until(predicate: Any, *, timeout: float, step: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(step)
    raise AssertionError(f"condition not met within {timeout}s")
