"""The devnet: a whole Tender market on a local chain, driven by a workload.

Steps: start Anvil; deploy the contracts; build (cached) and register both sample models;
mint test tokens and stake the providers; start three providers, two solvers and a verifier
agent as separate processes; send the workload through the SDK (the agent share through the
TenderAgent contract, to which the market pushes each result with its consumer callback); withdraw
what the markets owe every role (the markets credit payments and refunds: the providers withdraw
theirs as they go, past their ``withdraw_threshold``, and the devnet withdraws the rest for every
role, so that everyone ends up holding their tokens); run ``tender audit``; print the summary,
write the JSON and PNG. Whatever happens (Ctrl-C included), every process group it started is
stopped and Anvil with them.

Roles and their Anvil development keys (devnet only):

=====  ===========================================================
key    role
=====  ===========================================================
0      deployer (owns the contracts, mints test tokens)
1-3    providers gpu-a, gpu-b, gpu-c (gpu-c is cheap, fast and misbehaves)
4-5    solvers solver-1 (all providers), solver-2 (gpu-b, gpu-c)
6      verifier agent (challenges, expiries, finalizations)
7-8    requesters (the SDK)
9      owner of the TenderAgent consumer contract (it makes the agent ``ask``)
10-13  newcomer keys of a kept-running network (``tender.devnet._network``)
14-22  the token phase (``tender.devnet._tokens``)
23-24  the quote requester process (``tender.devnet._quotes``; a process of its own sends from
       its own keys: two processes sending from one account would race for its nonces)
=====  ===========================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live

from provider import MisbehaveSection, ModelEntry
from solver import ProviderEntry
from tender.anvil import DEV_KEYS, Anvil, dev_key, free_port
from tender.chain import Event, JobState, connect
from tender.client._agent import AgentClient, AgentResult
from tender.client._client import Client
from tender.client._errors import (
    AgentResultMissing,
    ProviderSlashed,
    RequestExpired,
    RequestRefunded,
    RequestRejected,
)
from tender.client._tracker import JobTracker
from tender.devnet._chain import TOKEN, ChainSetup
from tender.devnet._configs import (
    ProviderPlan,
    RoleConfig,
    provider_config,
    solver_config,
    verifier_config,
    write_config,
)
from tender.devnet._live import render
from tender.devnet._network import NEWCOMER_KEYS, NEWCOMER_TOKENS, network_lines
from tender.devnet._quotes import QuoteRequester, requester_client
from tender.devnet._summary import (
    RequestRecord,
    Summary,
    check_invariants,
    request_state,
    summarize,
    summary_table,
)
from tender.devnet._supervisor import Supervisor
from tender.devnet._tokens import TOKEN_ACCOUNTS, TokenPhase, token_problems
from tender.devnet._workload import Planned, plan_workload, sample_input
from tender.errors import DevChainError, RequestError, TenderError, TransactionFailed
from tender.logs import log
from tender.paths import SAMPLE_MODELS, cache_dir

__all__ = ["Devnet", "DevnetOptions"]

logger = logging.getLogger("tender.devnet")

PROVIDERS = (
    ProviderPlan("gpu-a", 1, "0x0001", price_factor=1.0),
    ProviderPlan("gpu-b", 2, "0x0002", price_factor=1.6),
    ProviderPlan(
        "gpu-c",
        3,
        "0x0003",
        price_factor=0.6,
        misbehave=MisbehaveSection(silent_on_job=1, wrong_output_on_job=1),
    ),
)
SOLVER_KEYS = (4, 5)
#: The providers each solver asks for quotes (solver-2 is the one the fault requests go to).
SOLVER_PROVIDERS = (("gpu-a", "gpu-b"), ("gpu-c",))
VERIFIER_KEY = 6
REQUESTER_KEYS = (7, 8)
AGENT_OWNER_KEY = 9
#: Development accounts of the quote requester process (after the token phase's).
QUOTE_REQUESTER_ACCOUNTS = (14 + TOKEN_ACCOUNTS, 15 + TOKEN_ACCOUNTS)
BAD_PROVIDER = "gpu-c"

#: Market parameters of the devnet: short windows so that a demo run takes a minute or two.
MARKET_PARAMS: dict[str, Any] = {"challenge_window": 10, "proof_window": 8}


@dataclass
class DevnetOptions:
    """How to run the devnet (the ``tender devnet`` options)."""

    requests: int = 40
    seed: int = 0
    live: bool = True
    json_path: Path | None = None
    png_path: Path | None = None  # None: <run_dir>/chart.png (when ``png``)
    png: bool = True
    run_dir: Path | None = None
    concurrency: int = 4
    faults: bool | None = None  # None: on when the workload is large enough (>= 10 requests)
    audit: bool = True
    keep_running: bool = False  # after the workload (if any), serve the network until stopped
    port: int | None = None  # Anvil's port (None: a free one)
    quotes: int | None = None  # quote-market requests beside the workload (None: requests // 4)
    tokens: int | None = None  # token-model requests after the workload (None: 8 when requests >= 8)
    block_time: float | None = None  # Anvil's block time (None: a block per transaction)
    proving_idle: bool = False  # the providers' proving workers under SCHED_IDLE (provider.proving_idle)

    @property
    def quote_requests(self) -> int:
        return self.requests // 4 if self.quotes is None else self.quotes

    @property
    def token_requests(self) -> int:
        if self.tokens is not None:
            return self.tokens
        return 8 if self.requests >= 8 else 0

    @property
    def with_faults(self) -> bool:
        return self.requests >= 10 if self.faults is None else self.faults


@dataclass
class Devnet:
    """One devnet run; :meth:`run` returns the process exit code."""

    options: DevnetOptions
    console: Console = field(default_factory=Console)
    records: list[RequestRecord] = field(default_factory=list)
    trackers: dict[int, JobTracker] = field(default_factory=dict)
    provider_names: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.run_dir = (self.options.run_dir or cache_dir() / "devnet" / stamp).resolve()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.supervisor = Supervisor(logs=self.run_dir / "logs")
        # Accounts: see the module's table (the quote requester's are the last).
        self.anvil = Anvil(
            log_path=self.run_dir / "logs" / "anvil.log",
            port=self.options.port,
            accounts=QUOTE_REQUESTER_ACCOUNTS[-1] + 1,
            block_time=self.options.block_time,
        )
        self.started = time.monotonic()
        self.solver_urls: list[str] = []
        self.provider_entries: dict[str, dict[str, str]] = {}
        self.summary: Summary | None = None
        self._background: set[asyncio.Task[None]] = set()
        self.agent: AgentClient | None = None
        self.payouts: dict[str, Any] | None = None
        self._heartbeat_stop = threading.Event()
        self.token_phase: TokenPhase | None = None
        self.token_summary: dict[str, Any] | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def run(self) -> int:
        """Run everything; 0 when every request ended and the audit is clean.

        With ``keep_running`` the network then stays up (the workload may be empty) until
        Ctrl-C or SIGTERM, which raise :class:`KeyboardInterrupt` after every process stopped.
        """
        with self._stopping_everything():
            setup = self._setup()
            self._start_roles(setup)
            code = 0
            if self.options.requests > 0:
                self.records = [RequestRecord.of(p) for p in [*self._plan(), *self._quote_plan()]]
                asyncio.run(self._workload(setup))
                if self.token_phase is not None:
                    self._step(
                        f"token requests: {self.options.token_requests} on TokenMarket (streamed, per 1k)"
                    )
                    asyncio.run(self.token_phase.run(self.options.token_requests, seed=self.options.seed))
                    self.token_summary = self.token_phase.summary()
                try:
                    self.payouts = self._payouts(setup)
                except TenderError as exc:  # reported in the summary; the audit still checks the books
                    log(logger, "devnet.payouts_failed", level=logging.ERROR, error=repr(exc))
                    self.payouts = {"errors": [f"{type(exc).__name__}: {exc}"]}
                audit = self._audit(setup) if self.options.audit else None
                code = self._finish(setup, audit)
            if self.options.keep_running:
                self._serve(setup)
            return code

    def _serve(self, setup: ChainSetup) -> None:
        """Publish the network (:class:`Network`), then watch the roles until interrupted."""
        from tender.chain._deployment import default_path
        from tender.devnet._network import Network

        assert setup.deployment is not None
        record = default_path(setup.deployment.chain_id)
        setup.deployment.save(record)
        network = Network(
            rpc_url=self.anvil.rpc_url,
            chain_id=setup.deployment.chain_id,
            deployment=record,
            token=setup.deployment.token,
            run_dir=self.run_dir,
            pid=os.getpid(),
            solvers={f"solver-{n}": url for n, url in enumerate(self.solver_urls, start=1)},
            providers=self.provider_entries,
            models={
                name: {"model_id": info.model_id, "bundle": str(info.bundle)}
                for name, info in setup.models.items()
            },
        )
        env, _ = network.write()
        try:
            self._step("the network is up (funded dev keys for a newcomer, one per role):")
            for line in network_lines(network, env):
                self.console.print(line, soft_wrap=True, highlight=False)
            self.console.print(f"[bold green]✓ network up[/]: `source {_shown(env)}`; Ctrl-C stops it")
            sys.stdout.flush()
            while True:
                self.supervisor.check()
                time.sleep(1.0)
        finally:
            network.remove(record)

    @contextlib.contextmanager
    def _stopping_everything(self) -> Iterator[None]:
        previous = signal.getsignal(signal.SIGTERM)
        previous_int = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGTERM, _raise_interrupt)
        # Ctrl-C stops it even when started in the background of a script (which ignores SIGINT)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            yield
        except KeyboardInterrupt:
            self.console.print("[yellow]interrupted: stopping every process…[/]")
            raise
        finally:
            self._heartbeat_stop.set()
            codes = self.supervisor.stop_all()
            self.anvil.stop()
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, previous_int)
            log(logger, "devnet.stopped", codes=codes, run_dir=str(self.run_dir))

    def _start_heartbeat(self) -> None:
        """Mine an empty block every second, as a live L2 would, so chain time moves on even
        when nobody sends a transaction: deadlines and challenge windows close on chain time."""

        def beat() -> None:
            while not self._heartbeat_stop.wait(1.0):
                with contextlib.suppress(OSError, DevChainError):
                    self.anvil.rpc("evm_mine")

        threading.Thread(target=beat, name="anvil-heartbeat", daemon=True).start()

    def _step(self, text: str) -> None:
        self.console.print(f"[bold blue]==>[/] {text} [dim]({time.monotonic() - self.started:.1f}s)[/]")

    # -- set-up ------------------------------------------------------------------------

    def _setup(self) -> ChainSetup:
        self._step(
            "starting Anvil"
            + (f" (a block every {self.options.block_time:g} s)" if self.options.block_time else "")
        )
        self.anvil.start()
        if self.options.block_time is None:  # interval mining moves chain time on by itself
            self._start_heartbeat()
        w3 = connect(self.anvil.rpc_url)
        setup = ChainSetup(w3=w3, deployer_key=DEV_KEYS[0])
        self._step("deploying Tender (token, registry, staking, reverse + Dutch markets)")
        setup.deploy(save=self.run_dir / "deployment.json", params=MARKET_PARAMS)
        if self.options.token_requests > 0 and setup.deployment is not None:
            # before anyone stakes: Staking authorises a market at once only then
            self.token_phase = TokenPhase(w3, DEV_KEYS[0], self._step, block_time=self.options.block_time)
            address = self.token_phase.deploy(setup.deployment)
            setup.deployment.save(self.run_dir / "deployment.json")
            self.console.print(f"    TokenMarket {address[:12]}… (re-execution tier, per-1k pricing)")
        self._step("building (cached) and registering the sample models mlp and cnn")
        setup.register_models()
        for name, info in setup.models.items():
            self.console.print(f"    {name}: model id {info.model_id[:18]}…, verifier {info.verifier[:12]}…")
        self._step("minting test tokens, staking providers")
        requesters = [setup.address(DEV_KEYS[i]) for i in (*REQUESTER_KEYS, AGENT_OWNER_KEY, VERIFIER_KEY)]
        requesters += [setup.address(dev_key(i)) for i in QUOTE_REQUESTER_ACCOUNTS]
        setup.mint(requesters, 1_000 * TOKEN)
        for plan in PROVIDERS:
            stake = (5_000 if plan.name == BAD_PROVIDER else 1_000) * TOKEN
            setup.mint([setup.address(DEV_KEYS[plan.key_index])], stake + 100 * TOKEN)
            setup.stake(DEV_KEYS[plan.key_index], stake)
            self.provider_names[setup.address(DEV_KEYS[plan.key_index])] = plan.name
        newcomers = [setup.address(key) for key in NEWCOMER_KEYS.values()]
        setup.mint(newcomers, NEWCOMER_TOKENS * TOKEN)
        if self.token_phase is not None:
            self.token_phase.fund(setup)
        agent = setup.deploy_agent(DEV_KEYS[AGENT_OWNER_KEY])
        if agent is not None:
            setup.mint([agent], 500 * TOKEN)
        return setup

    def _start_roles(self, setup: ChainSetup) -> None:
        rpc, deployment = self.anvil.rpc_url, self.run_dir / "deployment.json"
        self._step("starting 3 providers, 2 solvers and a verifier agent")
        models = [
            ModelEntry(
                name=name,
                onnx=SAMPLE_MODELS / name / "model.onnx",
                bundle=info.bundle,
                model_id=info.model_id,
            )
            for name, info in setup.models.items()
        ]
        entries: dict[str, ProviderEntry] = {}
        workers = max(1, (os.cpu_count() or 2) // 2)
        for plan in PROVIDERS:
            if not self.options.with_faults:
                plan = dataclasses.replace(plan, misbehave=None)
            port = free_port()
            key = DEV_KEYS[plan.key_index]
            solvers = [
                setup.address(DEV_KEYS[k])
                for k, names in zip(SOLVER_KEYS, SOLVER_PROVIDERS, strict=True)
                if plan.name in names
            ]
            if plan.name == PROVIDERS[0].name:  # the newcomer's solver may bid for gpu-a
                solvers.append(setup.address(NEWCOMER_KEYS["solver"]))
            setup.operator(key, endpoint=f"http://127.0.0.1:{port}", region=plan.region, solvers=solvers)
            provider = provider_config(
                plan,
                rpc_url=rpc,
                deployment=deployment,
                port=port,
                models=models,
                run_dir=self.run_dir,
                workers=workers,
                proving_idle=self.options.proving_idle,
            )
            self._start_role("provider", plan.name, provider, key)
            entries[plan.name] = ProviderEntry(
                name=plan.name, url=f"http://127.0.0.1:{port}", address=setup.address(key)
            )
        self.provider_entries = {name: {"url": e.url, "address": e.address} for name, e in entries.items()}
        solver_providers = [[entries[name] for name in names] for names in SOLVER_PROVIDERS]
        token_ports = [free_port() for _ in range(8)]  # the token desks' and verifiers', known to solver-1
        token_desks = [] if self.token_phase is None else self.token_phase.honest_desks(token_ports)
        for n, (key_index, providers) in enumerate(zip(SOLVER_KEYS, solver_providers, strict=True), start=1):
            port = free_port()
            name = f"solver-{n}"
            solver = solver_config(
                rpc_url=rpc,
                deployment=deployment,
                port=port,
                providers=providers,
                run_dir=self.run_dir,
                name=name,
                margin_bps=100 * n,
                token_desks=token_desks if n == 1 else (),
            )
            self._start_role("solver", name, solver, DEV_KEYS[key_index])
            self.solver_urls.append(f"http://127.0.0.1:{port}")
        verifier = verifier_config(rpc_url=rpc, deployment=deployment, run_dir=self.run_dir)
        self.verifier_config = self._start_role("verifier", "verifier", verifier, DEV_KEYS[VERIFIER_KEY])
        for plan in PROVIDERS:
            self.supervisor.wait_http(plan.name, f"{entries[plan.name].url}/health", timeout=120)
        for n, url in enumerate(self.solver_urls, start=1):
            self.supervisor.wait_http(f"solver-{n}", f"{url}/status", timeout=60)
        if self.token_phase is not None:
            self._step(
                "starting 4 token desks (2 honest, one serving a cheaper model, one truncating) and 4 token verifiers"
            )
            self.token_phase.solver_url = self.solver_urls[0]
            self.token_phase.start(self.supervisor, rpc, token_ports)
        # Requests go to warm providers only: /health is 503 ("warming") until a provider has
        # made its first commitment and witness per model and one timed proof per model, so no
        # first quote round pays for them or runs beside the calibration proofs.
        self._step("waiting for the providers to warm up (first witness and timed proof per model)")
        for plan in PROVIDERS:
            self.supervisor.wait_http(plan.name, f"{entries[plan.name].url}/health", timeout=300, ok=True)
        time.sleep(0.5)
        self.supervisor.check()

    # -- workload ----------------------------------------------------------------------

    def _start_role(self, role: str, name: str, config: RoleConfig, key: str) -> Path:
        """Write ``config`` to ``<run dir>/<name>.toml`` and start ``tender <role> run`` on it,
        signing with ``key``; the config's path."""
        path = write_config(self.run_dir / f"{name}.toml", config)
        self.supervisor.start(name, [role, "run", "--config", str(path)], env={"TENDER_PRIVATE_KEY": key})
        return path

    def _plan(self) -> list[Planned]:
        return plan_workload(self.options.requests, seed=self.options.seed, faults=self.options.with_faults)

    def _quote_plan(self) -> list[Planned]:
        from tender.devnet._quotes import plan_quotes

        return plan_quotes(
            self.options.quote_requests, first_index=self.options.requests, seed=self.options.seed
        )

    async def _workload(self, setup: ChainSetup) -> None:
        plan = [*self._plan(), *self._quote_plan()]
        assert setup.deployment is not None
        bundles = {name: info.bundle for name, info in setup.models.items()}
        ids = {name: info.model_id for name, info in setup.models.items()}
        clients = [
            requester_client(
                self.anvil.rpc_url,
                DEV_KEYS[k],
                solvers=self.solver_urls,
                deployment=setup.deployment,
                bundles=bundles,
                model_ids=ids,
            )
            for k in REQUESTER_KEYS
        ]
        owner: Client | None = None
        if setup.agent is not None:
            owner = requester_client(
                self.anvil.rpc_url,
                DEV_KEYS[AGENT_OWNER_KEY],
                deployment=setup.deployment,
                bundles=bundles,
                model_ids=ids,
            )
            self.agent = owner.agent(setup.agent)
        for client in [*clients, *([owner] if owner else [])]:
            client.listeners.append(self._on_event)
        quotes = self._quote_requester(setup, [p for p in plan if p.auction == "quote"])
        try:
            await asyncio.gather(
                *(client.warm() for client in clients),  # off the first requests' clocks
                *([quotes.start()] if quotes is not None else []),
            )
            self._step(f"sending {len(plan)} requests ({self.options.concurrency} at a time)")
            # --concurrency is the whole run's: the requester process has its share (below)
            limit = asyncio.Semaphore(
                max(1, self.options.concurrency - (quotes.concurrency if quotes else 0))
            )
            started = time.monotonic()

            async def one(p: Planned) -> None:
                await asyncio.sleep(max(0.0, p.delay_s - (time.monotonic() - started)))
                async with limit:
                    await self._one(clients[p.index % len(clients)], p, setup)

            live = (
                Live(self._frame(), console=self.console, refresh_per_second=4, transient=False)
                if self.options.live
                else contextlib.nullcontext()
            )
            with live as view:
                tasks = [asyncio.create_task(one(p)) for p in plan if not p.targeted and p.auction != "quote"]
                if quotes is not None:
                    tasks.append(asyncio.create_task(quotes.run()))
                faults = [p for p in plan if p.targeted]
                if faults:
                    tasks.append(asyncio.create_task(self._faults(clients[0], faults, setup)))
                pending: set[asyncio.Task[None]] = set(tasks)
                while pending or self._background:
                    pending |= self._background
                    _, pending = await asyncio.wait(pending, timeout=0.25)
                    if view is not None:
                        view.update(self._frame())
                    self.supervisor.check()
                for task in tasks:
                    task.result()  # a bug in the driver itself must not go unseen
        finally:  # a role that died, a failed start: the requester process never outlives the run
            if quotes is not None:
                await quotes.stop()
        for client in [*clients, *([owner] if owner else [])]:
            await client.aclose()

    def _quote_requester(self, setup: ChainSetup, plan: list[Planned]) -> QuoteRequester | None:
        """The quote requests' own requester process (:mod:`tender.devnet._quotes`), not started."""
        if not plan:
            return None
        assert setup.deployment is not None
        spec = {
            "rpc_url": self.anvil.rpc_url,
            "keys": [dev_key(i) for i in QUOTE_REQUESTER_ACCOUNTS],
            "solvers": self.solver_urls,
            "deployment": setup.deployment.to_json(),
            "bundles": {name: str(info.bundle) for name, info in setup.models.items()},
            "model_ids": {name: info.model_id for name, info in setup.models.items()},
            # --concurrency is the whole run's: the requester process has the quote requests' share
            # of it (with the defaults one of four in flight, settlement included) and this process
            # the rest, so the providers carry the load of one process sending everything
            "concurrency": max(1, round(self.options.concurrency * len(plan) / max(1, len(self.records)))),
            "plan": [dataclasses.asdict(p) for p in plan],
        }
        return QuoteRequester(
            spec,
            self.records,
            spec_path=self.run_dir / "quotes.json",
            log_path=self.run_dir / "logs" / "quotes.log",
        )

    async def _faults(self, client: Client, faults: list[Planned], setup: ChainSetup) -> None:
        """The requests aimed at the misbehaving provider, one after another: each must be its
        next job (its misbehave knobs count jobs), so the next is sent once the last is awarded."""
        for planned in faults:
            await self._one(client, planned, setup, solvers=[self.solver_urls[-1]], until_awarded=True)

    def _frame(self) -> Any:
        return render(self.records, started=self.started, providers=self.provider_names)

    def _on_event(self, tracker: JobTracker, event: Event) -> None:
        record = next((r for r in self.records if r.job_id == tracker.job_id), None)
        if record is None:
            return
        if not record.terminal:
            record.state = request_state(tracker.state)
        record.bids = tracker.bids
        record.provider = tracker.provider
        record.price_paid = tracker.price if tracker.state is JobState.SETTLED else record.price_paid
        record.challenged = tracker.challenged
        record.slashed = tracker.slashed

    async def _one(
        self,
        client: Client,
        planned: Planned,
        setup: ChainSetup,
        *,
        solvers: list[str] | None = None,
        until_awarded: bool = False,
    ) -> None:
        record = self.records[planned.index]
        data = sample_input(planned.model, planned.index)
        options: dict[str, Any] = {
            "max_price": planned.max_price,
            "deadline": planned.deadline_s,
            "proof": planned.proof_mode,
            "auction": planned.auction,
            "region": "0x0003" if planned.targeted else "0x0000",
            "min_stake": 2_000 * TOKEN if planned.targeted else 0,
        }
        agent = self.agent if planned.source == "agent" else None
        try:
            if agent is not None:
                # The on-chain agent: its owner makes the TenderAgent contract post the intent;
                # the market calls the contract back with the output at settlement.
                intent, handle = await agent.build_intent(planned.model, data, **options)
                record.job_id = agent.client.job_id(intent)
                record.callback_gas_limit = intent.callback_gas_limit
                record.state = request_state(JobState.NONE)
                tracker = await agent.ask(intent)
                follow: asyncio.Task[Any] = asyncio.create_task(agent.follow(tracker, intent, handle))
            else:
                intent, handle = await client.build_intent(planned.model, data, **options)
                record.job_id = client.job_id(intent)
                record.state = request_state(JobState.NONE)
                tracker = await client.send(intent, on_chain=planned.source != "signed", solvers=solvers)
                follow = asyncio.create_task(client.follow(tracker, intent, handle))
            self.trackers[planned.index] = tracker
            if until_awarded:
                while tracker.state in (JobState.NONE, JobState.OPEN) and not follow.done():  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
                self._follow_later(follow, record, tracker)
                return
            await self._settle_record(follow, record, tracker)
        except RequestRejected as exc:
            record.state, record.error = "failed", str(exc)
            record.callback = "none" if record.callback else None
        except TenderError as exc:
            record.state, record.error = "failed", f"{type(exc).__name__}: {exc}"
            record.callback = "none" if record.callback else None
            log(logger, "devnet.request_failed", level=logging.ERROR, index=planned.index, error=repr(exc))

    def _follow_later(self, follow: asyncio.Task[Any], record: RequestRecord, tracker: JobTracker) -> None:
        task = asyncio.create_task(self._settle_record(follow, record, tracker))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _settle_record(
        self, follow: asyncio.Task[Any], record: RequestRecord, tracker: JobTracker
    ) -> None:
        try:
            result = await follow
            record.state = request_state(JobState.SETTLED)
            record.price_paid = result.price_paid
            record.provider = result.provider
            record.verified_locally = result.verified
            record.verified_onchain = result.proof_mode == "zk" and "delivered" in tracker.tx_hashes
            record.tx_hashes = dict(result.tx_hashes)
            if isinstance(result, AgentResult):
                record.callback = "ok" if result.callback_output == result.output else "failed"
        except AgentResultMissing as exc:  # settled and paid, but the agent stored nothing
            record.state, record.callback, record.error = request_state(JobState.SETTLED), "failed", str(exc)
            if exc.result is not None:
                record.price_paid, record.provider = exc.result.price_paid, exc.result.provider
                record.verified_locally = exc.result.verified
            record.verified_onchain = record.proof_mode == "zk" and "delivered" in tracker.tx_hashes
        except RequestExpired as exc:
            record.state, record.compensation, record.error = (
                request_state(JobState.EXPIRED),
                exc.compensation,
                str(exc),
            )
            record.slashed = record.slashed or exc.compensation > 0
        except ProviderSlashed as exc:
            record.state, record.compensation, record.error = (
                request_state(JobState.SLASHED),
                exc.compensation,
                str(exc),
            )
            record.slashed = record.challenged = True
        except RequestRefunded as exc:
            record.state, record.error = request_state(JobState.REFUNDED), str(exc)
        except RequestError as exc:  # the proof does not verify locally, a timeout, ...
            record.state, record.error = "failed", f"{type(exc).__name__}: {exc}"
        if record.callback == "pending":  # an agent job that did not settle: no callback was due
            record.callback = "none"
        record.bids = tracker.bids
        record.provider = record.provider or tracker.provider
        record.challenged = record.challenged or tracker.challenged
        record.auction_ms = tracker.auction_ms
        record.e2e_ms = tracker.total_ms
        record.tx_hashes = record.tx_hashes or dict(tracker.tx_hashes)

    # -- the end -----------------------------------------------------------------------

    def _roles(self, setup: ChainSetup) -> dict[str, tuple[str, str, str]]:
        """Every account the markets may owe: address -> (role, name, key) (the agent's key is
        its owner's: it withdraws through ``TenderAgent.withdrawFrom``)."""
        roles: dict[str, tuple[str, str, str]] = {}
        for plan in PROVIDERS:
            key = DEV_KEYS[plan.key_index]
            roles[setup.address(key)] = ("providers", plan.name, key)
        for n, key in enumerate(
            [*(DEV_KEYS[i] for i in REQUESTER_KEYS), *map(dev_key, QUOTE_REQUESTER_ACCOUNTS)], 1
        ):
            roles[setup.address(key)] = ("requesters", f"requester-{n}", key)
        roles[setup.address(DEV_KEYS[VERIFIER_KEY])] = ("verifier", "verifier", DEV_KEYS[VERIFIER_KEY])
        if setup.agent is not None:
            roles[setup.agent] = ("agent", "TenderAgent", DEV_KEYS[AGENT_OWNER_KEY])
        return roles

    def _payouts(self, setup: ChainSetup) -> dict[str, Any]:
        """Withdraw what the markets still owe every role, then total what each role was paid out.

        The markets credit payments (providers), unspent escrow and refunds (requesters, the
        agent) and returned bonds (the verifier); ``Staking`` credits slashed stake (a
        requester's compensation, a challenger's reward), which every role claims here. The providers' nodes withdraw theirs past their threshold while the workload runs.
        Every ``Withdrawn`` and ``Claimed`` of the run counts.
        """
        from tender.chain import Market, Staking, TxSender
        from tender.client._agent import TenderAgentContract
        from tender.intents import AuctionType

        self._step("withdrawing what the markets owe every role")
        assert setup.deployment is not None
        roles = self._roles(setup)
        markets = {
            name: Market(setup.w3, address, auction=AuctionType[name.upper()])
            for name, address in setup.deployment.markets.items()
        }
        staking = Staking(setup.w3, setup.deployment.staking)
        errors: list[str] = []
        for address, (_, name, key) in roles.items():
            sender = TxSender(setup.w3, key)
            agent = TenderAgentContract(setup.w3, address, sender=sender) if address == setup.agent else None
            for market in markets.values():
                try:
                    if market.owed(address) == 0:
                        continue
                    if agent is not None:
                        agent.withdraw_from(market.address)
                    else:
                        market.using(sender).withdraw()
                except TenderError as exc:  # NothingOwed: the role's own process was first
                    revert = exc.revert if isinstance(exc, TransactionFailed) else exc
                    if getattr(revert, "name", "") != "NothingOwed":
                        errors.append(f"{name} at {market.address}: {exc}")
                        log(
                            logger,
                            "devnet.withdraw_failed",
                            level=logging.ERROR,
                            account=address,
                            error=repr(exc),
                        )
            if staking.claimable(address) > 0:
                try:
                    if agent is not None:
                        agent.claim_from(next(iter(markets.values())).address)
                    else:
                        staking.using(sender).claim()
                except TenderError as exc:
                    errors.append(f"{name} at {staking.address}: {exc}")
                    log(logger, "devnet.claim_failed", level=logging.ERROR, account=address, error=repr(exc))
        totals: dict[str, dict[str, Any]] = {}
        for role, name, _ in roles.values():
            entry = totals.setdefault(role, {"withdrawn": 0, "owed": 0, "withdrawals": 0, "accounts": {}})
            entry["accounts"][name] = {"withdrawn": 0, "owed": 0}

        def count_paid(events: Any) -> None:
            """Add each ``Withdrawn``/``Claimed`` event paid to a role's account to its totals."""
            for event in events:
                account = str(getattr(event, "account", ""))
                if account in roles:
                    role, name, _ = roles[account]
                    amount = int(getattr(event, "amount", 0))
                    totals[role]["withdrawn"] += amount
                    totals[role]["withdrawals"] += 1
                    totals[role]["accounts"][name]["withdrawn"] += amount

        def count_owed(owed_to: Any) -> None:
            """Add what ``owed_to(address)`` still owes each role's account to its totals."""
            for address, (role, name, _) in roles.items():
                owed = int(owed_to(address))
                totals[role]["owed"] += owed
                totals[role]["accounts"][name]["owed"] += owed

        for market in markets.values():
            count_paid(market.events(setup.deployment.block, names=["Withdrawn"]))
            count_owed(market.owed)
        count_paid(staking.events(setup.deployment.block, names=["Claimed"]))  # slashed stake claimed
        count_owed(staking.claimable)
        for role, entry in totals.items():
            log(
                logger,
                "devnet.paid_out",
                role=role,
                withdrawn=entry["withdrawn"],
                owed=entry["owed"],
                withdrawals=entry["withdrawals"],
            )
        return {**_stringify(totals), "errors": errors}

    def _audit(self, setup: ChainSetup) -> dict[str, Any]:
        self._step("auditing the whole history (tender audit)")
        from tender.devnet._supervisor import tender_command

        out = self.run_dir / "audit.json"
        argv = [
            *tender_command(),
            "audit",
            "--rpc",
            self.anvil.rpc_url,
            "--deployment",
            str(self.run_dir / "deployment.json"),
            "--json",
        ]
        for info in setup.models.values():
            argv += ["--bundles", str(info.bundle.parent)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
        out.write_text(done.stdout)
        (self.run_dir / "logs" / "audit.log").write_text(done.stderr)
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-6:])
        return {
            "clean": done.returncode == 0,
            "exit_code": done.returncode,
            "report": str(out),
            "detail": tail,
        }

    def _honest_slashed(self) -> int:
        """Slashed jobs of providers without an injected fault (every provider without
        ``--faults``; all but the misbehaving one with it)."""
        faulty = {
            a for a, name in self.provider_names.items() if name == BAD_PROVIDER and self.options.with_faults
        }
        return sum(1 for r in self.records if r.slashed and r.provider not in faulty)

    def _finish(self, setup: ChainSetup, audit: dict[str, Any] | None) -> int:
        for record in self.records:
            tracker = self.trackers.get(record.index)
            if tracker is not None:
                record.gas = _gas(setup, tracker, record.source)
        extra: dict[str, Any] = {
            "run_dir": str(self.run_dir),
            "seed": self.options.seed,
            "block_time_s": self.options.block_time,
            "honest_slashed": self._honest_slashed(),
        }
        if self.payouts is not None:
            extra["payouts"] = self.payouts
        if self.token_summary is not None:
            extra["tokens"] = self.token_summary
        summary = summarize(
            self.records,
            setup_gas=dict(setup.gas),
            wall_s=time.monotonic() - self.started,
            audit=audit,
            extra=extra,
        )
        self.summary = summary
        self.console.print(summary_table(summary))
        from tender.devnet._summary import write_json, write_png

        if self.options.json_path:
            write_json(summary, self.options.json_path)
            self.console.print(f"summary JSON: {self.options.json_path}")
        png_path = self.options.png_path or (self.run_dir / "chart.png" if self.options.png else None)
        if png_path is not None:
            write_png(self.records, png_path)
            self.console.print(f"chart: {_shown(png_path.resolve())}")
        problems = check_invariants(summary, expect_faults=self.options.with_faults)
        if self.token_summary is not None:
            problems += token_problems(self.token_summary, expect_cheats=self.options.token_requests >= 4)
        for problem in problems:
            self.console.print(f"[bold red]✗[/] {problem}")
        if not problems:
            self.console.print("[bold green]✓ every request ended, the books balance, the audit is clean[/]")
        self.console.print(f"[dim]logs and configs: {self.run_dir}[/]")
        return 0 if not problems else 1


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _stringify(value: Any) -> Any:
    """Token amounts as decimal strings (JSON numbers lose precision past 2**53)."""
    if isinstance(value, dict):
        return {k: v if k == "withdrawals" else _stringify(v) for k, v in value.items()}
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


#: How an intent reached the market, by ``RequestRecord.source``: the summary's gas row
#: ``posted: <route>`` (an on-chain ``post``, a solver's ``submitSigned``, a TenderAgent ``ask``).
_POST_ROUTE = {"onchain": "on-chain post", "signed": "signed, relayed", "agent": "agent ask"}


def _gas(setup: ChainSetup, tracker: JobTracker, source: str) -> dict[str, int]:
    """Gas by step, each transaction counted once under the first step it made (a zk delivery
    also settles: ``delivered``); the posting step is ``posted: <route>``."""
    out: dict[str, int] = {}
    seen: set[str] = set()
    for step, tx_hash in tracker.tx_hashes.items():
        if tx_hash in seen:
            continue
        seen.add(tx_hash)
        name = f"posted: {_POST_ROUTE.get(source, source)}" if step in ("post", "posted") else step
        with contextlib.suppress(ValueError, OSError, TenderError):
            out[name] = int(setup.w3.eth.get_transaction_receipt(tx_hash)["gasUsed"])  # type: ignore[arg-type]
    return out


def _shown(path: Path) -> str:
    """``path`` relative to the working folder when it lies under it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
