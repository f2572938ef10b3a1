"""Test harnesses of the solver (never used in production).

Two devnets on Anvil, both with the real contracts and real ``Solver`` instances:

* :func:`live_devnet`: three **real provider nodes** (the ``provider`` package, each started as
  ``tender provider run`` in its own process group, like ``tender devnet`` does): staked and
  registered operators on chain, serving their HTTP quote API, running the sample MLP in
  onnxruntime, proving it with EZKL, delivering and finalizing on chain themselves, getting paid.
  The acceptance tests (``tests/solver/test_integration.py``) run on it.
* :func:`devnet`: stand-in providers, for unit-level tests of the solver's own behaviour
  (reorgs, restarts, the intent API) and the benchmarks. A :class:`StubProvider` answers
  ``POST /quote`` with a quote signed by its key, at a fixed price and latency, and records
  ``POST /jobs``; :class:`StubFleet` runs many of them on loopback in a thread of their own
  (its own event loop), so a client under test does not share a loop with the servers::

    with StubFleet([StubProvider(key, price=100, latency_s=5)]) as fleet:
        entries = fleet.entries()     # ProviderEntry list for SolverSection.providers
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web
from eth_account import Account
from eth_utils import keccak
from web3 import Web3

from solver._config import GasSection, ProviderEntry, SolverSection
from solver._policy import Offer
from solver._quotes import VerifiedQuote
from solver._solver import Solver
from tender.anvil import DEV_KEYS, Anvil, free_port
from tender.chain import (
    Deployment,
    Job,
    Market,
    MarketParams,
    ModelInfo,
    Registry,
    Staking,
    Token,
    TxSender,
    connect,
    deploy,
    load_artifact,
)
from tender.config import ChainSection
from tender.errors import ArtifactError, ContractRevert
from tender.intents import AuctionType, Intent, ProofMode, random_nonce, sign_digest, sign_intent
from tender.paths import SAMPLE_MODELS
from tender.wire import JobInput, Quote, QuoteRefusal, QuoteRequest, quote_digest

if TYPE_CHECKING:  # the provider node, EZKL and the devnet load only where a test needs them
    from provider import StoredJob as ProviderJob
    from tender.devnet import Supervisor
    from tender.models import Bundle

__all__ = [
    "NODES",
    "Deployed",
    "Env",
    "LiveEnv",
    "Node",
    "NodePlan",
    "RecordingSolver",
    "Running",
    "StubFleet",
    "StubProvider",
    "devnet",
    "live_devnet",
    "sign_quote",
    "wait_until",
]

_EIP191_PREFIX = b"\x19Ethereum Signed Message:\n32"


def sign_quote(quote: Quote, key: str) -> Quote:
    """``quote`` with its EIP-191 signature by ``key`` filled in."""
    signature = sign_digest(keccak(_EIP191_PREFIX + quote_digest(quote)), key)
    return quote.model_copy(update={"signature": "0x" + signature.hex()})


@dataclass
class StubProvider:
    """A fake provider: fixed price and latency, optional delay, failure or refusal.

    ``on_job`` is awaited with each accepted job input (a test can deliver on-chain there).
    """

    key: str
    price: int = 100
    latency_s: int = 10
    delay_s: float = 0.0
    fail: bool = False
    refuse: bool = False
    ttl_s: int = 60
    name: str = ""
    port: int = 0
    on_job: Callable[[JobInput], Awaitable[None]] | None = None
    jobs: dict[str, JobInput] = field(default_factory=dict)
    quotes: int = 0

    def __post_init__(self) -> None:
        self.address: str = Account.from_key(self.key).address
        self.name = self.name or f"stub-{self.address[2:8].lower()}"

    def entry(self) -> ProviderEntry:
        return ProviderEntry(name=self.name, url=f"http://127.0.0.1:{self.port}", address=self.address)

    async def _quote(self, request: web.Request) -> web.Response:
        self.quotes += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail:
            return web.json_response({"error": "internal", "message": "stub failure"}, status=500)
        ask = QuoteRequest.model_validate_json(await request.read())
        if self.refuse:
            refusal = QuoteRefusal(jobId=ask.jobId, provider=self.address, reason="stub refuses")
            return web.Response(body=refusal.model_dump_json(), content_type="application/json")
        quote = Quote(
            jobId=ask.jobId,
            provider=self.address,
            price=str(self.price),
            latency_s=self.latency_s,
            capacity=8,
            region="0x0000",
            expires_at=int(time.time()) + self.ttl_s,
            signature="0x",
        )
        return web.Response(
            body=sign_quote(quote, self.key).model_dump_json(), content_type="application/json"
        )

    async def _job(self, request: web.Request) -> web.Response:
        job = JobInput.model_validate_json(await request.read())
        self.jobs[job.jobId.lower()] = job
        if self.on_job is not None:
            await self.on_job(job)
        return web.json_response({"jobId": job.jobId, "state": "accepted"}, status=202)

    async def _status(self, request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"].lower()
        if job_id not in self.jobs:
            return web.json_response({"error": "unknown_job", "message": job_id}, status=404)
        return web.json_response({"jobId": job_id, "state": "accepted"})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/quote", self._quote)
        app.router.add_post("/jobs", self._job)
        app.router.add_get("/jobs/{job_id}", self._status)
        return app


class StubFleet:
    """Run :class:`StubProvider` servers on loopback in a background thread."""

    def __init__(self, providers: Sequence[StubProvider]) -> None:
        self.providers = list(providers)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="stub-fleet", daemon=True)
        self._runners: list[web.AppRunner] = []

    def entries(self) -> list[ProviderEntry]:
        return [p.entry() for p in self.providers]

    async def _start(self) -> None:
        for provider in self.providers:
            provider.port = provider.port or free_port()
            runner = web.AppRunner(provider.app(), access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", provider.port, backlog=1024).start()
            self._runners.append(runner)

    async def _stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()

    def call(self, coro: Awaitable[Any]) -> Any:
        """Run ``coro`` on the fleet's loop and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)  # type: ignore[arg-type]

    def __enter__(self) -> StubFleet:
        self._thread.start()
        self.call(self._start())
        return self

    def __exit__(self, *exc: object) -> None:
        self.call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()


# -- a whole devnet ---------------------------------------------------------------------

UNIT = 10**18
OUTPUT = (11, 22, 33)
#: ``verifyProof`` is true iff the proof's first byte is 0x01 (raw EVM, as in tests/chain).
VERIFIER = bytes.fromhex(
    "602a80600b6000396000f3600435600401803515601e576020013560f81c60011460005260206000f35b50600060005260206000f3"
)
PARAMS = MarketParams(
    fee_bps=100,
    stake_multiple=2,
    challenger_reward_bps=5_000,
    challenge_window=2,
    proof_window=60,
    max_callback_gas=1_000_000,
    challenge_bond=UNIT,
)

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
class Deployed:
    """What both devnets share: Anvil with Tender deployed, a registered model, a funded
    requester (approved on both markets) and its market wrappers."""

    chain: Anvil
    w3: Web3
    deployment: Deployment
    model_id: bytes
    requester: TxSender
    markets: dict[AuctionType, Market]

    def job(self, auction: AuctionType, job_id: str) -> Job:
        """The market's record of a job."""
        return self.markets[auction].job(bytes.fromhex(job_id[2:]))

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def post(self, intent: Intent) -> str:
        market = self.markets[intent.auction_type]
        market.post(intent)
        return "0x" + market.job_id(intent).hex()

    def sign(self, intent: Intent) -> bytes:
        market = self.markets[intent.auction_type]
        return sign_intent(intent, DEV_KEYS[1], chain_id=31337, market=market.address)

    def entries(self) -> list[ProviderEntry]:
        """The providers a solver asks for quotes."""
        raise NotImplementedError

    def solver_section(self, db: Path, *, margin_bps: int = 100, **changes: Any) -> SolverSection:
        settings: dict[str, Any] = {
            "providers": self.entries(),
            "listen": None,
            "store": db,
            "margin_bps": margin_bps,
            "poll_interval_s": 0.1,
            "job_poll_s": 0.2,
            "quote_timeout_s": 2.0,
            "start_block": self.deployment.block,
            "gas": GasSection(stuck_after_s=10),
        }
        return SolverSection(**{**settings, **changes})

    def chain_section(self) -> ChainSection:
        return ChainSection(rpc_url=self.chain.rpc_url)


@dataclass
class Env(Deployed):
    """The devnet of stand-in providers (:func:`devnet`)."""

    stubs: list[StubProvider]
    fleet: StubFleet
    delivered: list[str] = field(default_factory=list)

    def entries(self) -> list[ProviderEntry]:
        return self.fleet.entries()

    def intent(self, auction: AuctionType, *, window: int = 4, weight: int = 5_000, **changes: Any) -> Intent:
        now = self.now()
        base = Intent(
            requester=self.requester.address,
            model_id=self.model_id,
            input_commitment=0xC0FFEE,
            input_location=b"data:application/json,[[1.0,2.0,3.0]]",
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


@contextlib.contextmanager
def devnet() -> Iterator[Env]:
    """Anvil with Tender deployed, a model registered, three staked stub providers (both
    :data:`SOLVER_KEYS` authorised for each) and a funded requester; blocks tick every second."""
    with Anvil() as chain:
        w3 = Web3(Web3.HTTPProvider(chain.rpc_url))
        deployment = deploy(w3, DEV_KEYS[0], params=PARAMS, unstaking_delay=3_600)
        owner = TxSender(w3, DEV_KEYS[0])
        token = Token(w3, deployment.token, sender=owner)
        verifier, _ = owner.deploy(VERIFIER)
        info = ModelInfo(
            onnx_sha256=b"\x01" * 32,
            settings_hash=b"\x02" * 32,
            verifier=verifier,
            commitment_index=0,
            output_offset=1,
            output_length=len(OUTPUT),
            instance_count=1 + len(OUTPUT),
            proof_modes=3,
            audit_rate_bps=0,
        )
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
                StubProvider(
                    key,
                    price=int(price * UNIT),
                    latency_s=latency,
                    on_job=_deliverer(w3, key, deployment, delivered),
                )
            )
        markets = {
            AuctionType.REVERSE: Market(w3, deployment.market("reverse"), sender=requester),
            AuctionType.DUTCH: Market(
                w3, deployment.market("dutch"), auction=AuctionType.DUTCH, sender=requester
            ),
        }
        with StubFleet(stubs) as fleet, _ticking(chain):
            yield Env(chain, w3, deployment, model_id, requester, markets, stubs, fleet, delivered)


@contextlib.contextmanager
def _ticking(chain: Anvil, every: float = 1.0) -> Iterator[None]:
    """Mine an empty block every second besides automining, like a real chain: the chain's
    clock (the latest block's time) keeps moving when nobody sends transactions."""
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(every):
            with contextlib.suppress(Exception):
                chain.rpc("evm_mine")

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


# -- a devnet of real provider nodes ---------------------------------------------------------


@dataclass(frozen=True)
class NodePlan:
    """One real provider node of :func:`live_devnet` and its ``[provider.pricing]``.

    The node quotes ``price = (proof_cost + gpu_hour_cost * compute_s / 3600) * (1 + margin)``
    (no queue penalty, so its price stays put under load) and promises a latency of
    ``compute_s * latency_slack + delivery_s`` (plus the proofs queued ahead), where
    ``compute_s`` is the inference and proving time it measured itself (``provider._pricing``).
    """

    name: str
    key_index: int
    proof_cost: int
    delivery_s: float
    latency_slack: float = 2.0
    gpu_hour_cost: int = UNIT // 10
    margin: float = 0.2


#: Fast and dear, middling, cheap and slow: quotes near (5.9 tokens, ~610 s), (2.9, ~1210 s)
#: and (1.2, ~2410 s). Under the intents' price weights from 10% to 95% (and their hour-long
#: latency bound) each wins about a third of the reverse auctions. The promises are generous on
#: purpose: a node quotes each intent as if it were its only job, then may win a dozen at once
#: and prove them one after another (every job is proved: the output felts the node delivers
#: are the proof's public instances) on a machine that other work slows down.
NODES = (
    NodePlan("fast", 2, proof_cost=49 * UNIT // 10, delivery_s=600),
    NodePlan("middle", 3, proof_cost=24 * UNIT // 10, delivery_s=1_200),
    NodePlan("cheap", 4, proof_cost=UNIT, delivery_s=2_400),
)


@dataclass
class Node:
    """A running provider node (a ``tender provider run`` process)."""

    plan: NodePlan
    key: str
    address: str
    url: str
    store: Path

    def entry(self) -> ProviderEntry:
        return ProviderEntry(name=self.plan.name, url=self.url, address=self.address)


@dataclass
class LiveEnv(Deployed):
    """The devnet of real provider nodes (:func:`live_devnet`)."""

    bundle: Bundle
    nodes: list[Node]
    supervisor: Supervisor
    samples: list[Any]

    def entries(self) -> list[ProviderEntry]:
        return [n.entry() for n in self.nodes]

    def node(self, address: str) -> Node:
        return next(n for n in self.nodes if n.address.lower() == address.lower())

    def intent(
        self,
        auction: AuctionType,
        *,
        window: int = 4,
        weight: int = 5_000,
        sample: int = 0,
        mode: ProofMode = ProofMode.OPTIMISTIC,
        **changes: Any,
    ) -> Intent:
        """An intent for the sample MLP on ``samples[sample]``, carried inline (as the SDK does
        for small inputs) with its real input commitment."""
        from tender import models

        data = self.samples[sample % len(self.samples)]
        now = self.now()
        base = Intent(
            requester=self.requester.address,
            model_id=self.model_id,
            input_commitment=int(models.input_commitment(self.bundle, data)),
            input_location=json.dumps(data, separators=(",", ":")).encode(),
            max_price=10 * UNIT,
            start_price=UNIT // 2 if auction == AuctionType.DUTCH else 0,
            auction_type=auction,
            auction_window=window,
            deadline=now + window + 3_600,
            proof_mode=mode,
            min_stake=0,
            price_weight_bps=weight,
            nonce=random_nonce(),
            expiry=now + 600,
        )
        return base.replace(**changes)

    def solver_section(self, db: Path, *, margin_bps: int = 100, **changes: Any) -> SolverSection:
        """A solver that starts at the current block (the devnet may outlive one test) and waits
        longer for quotes (real nodes answer from a loaded machine). Its finalize backstop waits
        two minutes: the nodes finalize their own optimistic deliveries, and the tests check that."""
        settings = {
            "start_block": int(self.w3.eth.block_number),
            "quote_timeout_s": 5.0,
            "finalize_grace_s": 120.0,
            **changes,
        }
        return super().solver_section(db, margin_bps=margin_bps, **settings)

    def provider_job(self, address: str, job_id: str) -> ProviderJob | None:
        """What the node of ``address`` has in its own job store about ``job_id``."""
        from provider import JobStore

        store = JobStore(self.node(address).store)
        try:
            return store.get(job_id.lower())
        finally:
            store.close()


def _node_config(
    plan: NodePlan, *, rpc_url: str, deployment: Path, port: int, model: dict[str, Any], store: Path
) -> dict[str, Any]:
    return {
        "chain": {"rpc_url": rpc_url, "deployment": deployment, "poll_interval_s": 0.1},
        "provider": {
            "listen": f"127.0.0.1:{port}",
            "region": "0x0001",
            "hardware": "cpu",
            "models": [model],
            "pricing": {
                "gpu_hour_cost": plan.gpu_hour_cost,
                "proof_cost": plan.proof_cost,
                "margin": plan.margin,
                "queue_penalty": 0.0,
                "quote_ttl_s": 60,
                "latency_slack": plan.latency_slack,
                "delivery_s": plan.delivery_s,
            },
            "batching": {"enabled": False},
            "backend": {"kind": "onnxruntime", "device": "cpu"},
            "store": store,
            "proving_workers": 1,
            "poll_interval_s": 0.2,
        },
    }


@contextlib.contextmanager
def live_devnet(folder: Path, nodes: Sequence[NodePlan] = NODES) -> Iterator[LiveEnv]:
    """Anvil with Tender deployed (challenge window of 2 s), the sample MLP built (cached by
    ``tender.models``) with its EZKL verifier deployed and registered, a funded requester, and
    one real provider node per plan: staked, registered as an operator serving the MLP, both
    :data:`SOLVER_KEYS` authorised, running as ``tender provider run --config <toml>`` under a
    :class:`~tender.devnet.Supervisor` (own process group, log in ``folder/logs``). Blocks tick
    every second. Every process (nodes, their proving workers, Anvil) is stopped on exit."""
    from provider import ProviderConfig
    from tender import models
    from tender.devnet import ChainSetup, Supervisor, write_config

    (folder / "logs").mkdir(parents=True, exist_ok=True)
    samples = [
        s["input"] for s in json.loads((SAMPLE_MODELS / "mlp" / "samples.json").read_text())["samples"]
    ]
    with Anvil(log_path=folder / "logs" / "anvil.log") as chain, Supervisor(logs=folder / "logs") as sup:
        w3 = connect(chain.rpc_url)
        deployment_path = folder / "deployment.json"
        deployment = deploy(w3, DEV_KEYS[0], params=PARAMS, unstaking_delay=3_600, save=deployment_path)
        # the devnet's own set-up: the MLP built (cached), its verifier deployed and registered
        setup = ChainSetup(w3=w3, deployer_key=DEV_KEYS[0], deployment=deployment)
        mlp = setup.register_models(["mlp"])["mlp"]
        bundle = models.Bundle.load(mlp.bundle)
        model_id = bytes.fromhex(mlp.model_id.removeprefix("0x"))
        requester = TxSender(w3, DEV_KEYS[1])
        setup.mint([requester.address], 100_000 * UNIT)
        req_token = Token(w3, deployment.token, sender=requester)
        for name in ("reverse", "dutch"):
            req_token.approve(deployment.market(name), 2**256 - 1)
        model = {
            "name": "mlp",
            "onnx": SAMPLE_MODELS / "mlp" / "model.onnx",
            "bundle": mlp.bundle,
            "model_id": mlp.model_id,
        }
        solvers = [Account.from_key(k).address for k in SOLVER_KEYS]
        running: list[Node] = []
        for plan in nodes:
            key = DEV_KEYS[plan.key_index]
            address = ChainSetup.address(key)
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            setup.mint([address], 10_000 * UNIT)
            setup.stake(key, 10_000 * UNIT)
            setup.operator(key, endpoint=url, region="0x0001", solvers=solvers)
            store = folder / f"{plan.name}.db"
            config = _node_config(
                plan, rpc_url=chain.rpc_url, deployment=deployment_path, port=port, model=model, store=store
            )
            path = write_config(folder / f"{plan.name}.toml", ProviderConfig.model_validate(config))
            sup.start(plan.name, ["provider", "run", "--config", str(path)], env={"TENDER_PRIVATE_KEY": key})
            running.append(Node(plan, key, address, url, store))
        for node in running:
            sup.wait_http(node.plan.name, f"{node.url}/health", timeout=300)
        markets = {
            AuctionType.REVERSE: Market(w3, deployment.market("reverse"), sender=requester),
            AuctionType.DUTCH: Market(
                w3, deployment.market("dutch"), auction=AuctionType.DUTCH, sender=requester
            ),
        }
        with _ticking(chain):
            yield LiveEnv(chain, w3, deployment, model_id, requester, markets, bundle, running, sup, samples)


class RecordingSolver(Solver):
    """A :class:`Solver` that also keeps the verified quotes of its latest fan-out per job (the
    ones it decided on), so a test can hold its bids against the providers' real quotes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.quotes: dict[str, list[Offer]] = {}

    async def setup(self) -> None:
        await super().setup()
        gather_round = self.fanout.gather_round

        async def recording(
            request: QuoteRequest, *, window: float | None = None
        ) -> tuple[list[VerifiedQuote], int]:
            quotes, answered = await gather_round(request, window=window)
            self.quotes[request.jobId.lower()] = [q.offer for q in quotes]
            return quotes, answered

        self.fanout.gather_round = recording  # type: ignore[method-assign]


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


def start_solver_process(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """``tender solver run --config <config>`` as a real process (its own session, so a test can kill -9
    it), signing with ``SOLVER_KEYS[0]``, its output appended to ``log``."""
    environ = {**os.environ, "SOLVER_TEST_KEY": SOLVER_KEYS[0]}
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "tender"), "solver", "run", "--config", str(config)],
        cwd=Path(__file__).resolve().parents[2],
        env=environ,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
