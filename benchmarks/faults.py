"""Fault-injection benchmark: what a real market on loopback does when things go wrong.

It starts a real market (Anvil with Tender deployed and the MLP registered, and ``tender
provider run``, ``tender solver run``, ``tender verifier run`` as separate processes on
127.0.0.1) and runs the sections asked for, each writing its key of
``benchmarks/results/faults.json`` (the keys of sections not run are kept from the last run):

* ``fuzz``: generated bad requests across every HTTP route of every role (the provider's
  ``/quote``, ``/jobs``, ``/jobs/{id}``, ``/health``, ``/metrics``; the solver's ``/intents``,
  ``/status``, ``/metrics``, ``/openapi.json``; the verifier's proof relay): JSON nested up to
  100,000 deep, numbers like ``10**400`` and ``1e400``, invalid UTF-8 and JSON, schema-valid
  bodies with one field mutated, wrong content types and methods, unknown paths, bodies over the
  size limit declared or chunked (up to 50 MB). Target: no 5xx and bounded memory.
  ``{"cases", "http_5xx", "http_5xx_counted", "transport_errors", "by_status", "by_role",
  "rss_mib": {role: {"before", "peak", "growth"}}, "seconds"}``; ``http_5xx`` is what the
  clients saw, ``http_5xx_counted`` the sum of the roles' ``tender_http_5xx_total``;
  ``rss_mib`` is each server process's resident memory before the fuzz and its peak
  (``VmHWM``) after it.

The roles reach Anvil through an RPC outage proxy (:class:`tests._proxy.OutageProxy`, transparent
while up); the benchmark itself, its requester (the SDK) and the counting read Anvil directly.
Each trial of the next three sections sends one optimistic request through the solver, waits for
its job to reach a step (``sent``: the solver has the intent; ``awarded``; ``delivered``;
``settled``), injects one fault and waits until the job is terminal or its deadline is well past:

``--parallel N`` keeps N trials in flight at once (their starts 3 s apart), so each job may also
live through the other trials' faults; faults are injected one at a time, and no request is
sent while one is being injected.

* ``kill9``: ``kill -9`` of the provider, the solver or the verifier agent at each step, then a
  restart with the same config (100 trials; 6 with ``--quick``; ``--kill-points
  provider@awarded,solver@sent`` runs only those points, in turn).
* ``reorgs``: ``anvil_reorg`` of depth 1 to 6 after ``awarded``, ``delivered`` or ``settled``
  (50 trials; 3 with ``--quick``).
* ``rpc_outages``: the proxy refuses connections and resets open ones for 20 s while the job
  is in flight; the provider's ``/health`` is read every second during the outage and after
  it (10 trials; 2 with ``--quick``).

Each writes ``{"trials", "lost", "honest_slashed", "double_deliveries", "by_outcome", "trials_detail",
"seconds"}``, counted from the chain's canonical logs of the market at the end of the section:
*lost* is a request the solver accepted (``202``) whose job is not terminal on chain (settled,
refunded, expired or slashed) ``GRACE_S`` after its deadline; a request no solver accepted (the
SDK raised ``RequestRejected``: ``not_sent``) was refused explicitly and is not lost; *honest_slashed* a job with an
``Expired`` or ``Slashed`` event (every provider here is honest); *double_deliveries* a second
``Delivered`` for the same award (between two ``Awarded``/``FailedOver`` events). Each trial's
``notes`` keep its ``fault_window`` (unix seconds); an honestly slashed job's notes also list
``faults_in_window``: every fault of the section between its award and its slash, with how long
each overlapped (with ``--parallel`` a job may live through several, more than its provider's
restart headroom covers).

* ``load``: a ``tender devnet`` (its own market, three honest providers: ``--no-faults``) of 40
  requests at concurrency 16 (16 at 8 with ``--quick``): ``{"requests", "concurrency",
  "honest_slashed", "expired", "settled", "seconds"}``.

Run: ``python benchmarks/faults.py [--quick] [--only fuzz,kill9,reorgs,rpc_outages,load]``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

from provider import ModelEntry  # noqa: E402
from solver import ProviderEntry  # noqa: E402
from tender.anvil import DEV_KEYS, Anvil, free_port  # noqa: E402
from tender.chain import JobState, connect, tender_log_decoder  # noqa: E402
from tender.chain import Market as ChainMarket  # noqa: E402
from tender.client import Client  # noqa: E402
from tender.devnet._chain import TOKEN, ChainSetup  # noqa: E402
from tender.devnet._configs import (  # noqa: E402
    ProviderPlan,
    provider_config,
    solver_config,
    verifier_config,
    write_config,
)
from tender.devnet._supervisor import Supervisor, tender_command  # noqa: E402
from tender.errors import ChainError, DevChainError, TenderError  # noqa: E402
from tender.intents import AuctionType, Intent, ProofMode, job_id, sign_intent  # noqa: E402
from tender.paths import SAMPLE_MODELS  # noqa: E402
from tests._proxy import OutageProxy  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "faults.json"
PROVIDER_KEY, REQUESTER_KEY, SOLVER_KEY, VERIFIER_KEY = (DEV_KEYS[i] for i in (1, 2, 4, 6))
SEED = 16
MIB = 2**20
#: Short windows, as the devnet's, so that an optimistic job settles in seconds.
MARKET_PARAMS: dict[str, Any] = {"challenge_window": 10, "proof_window": 8}
DEADLINE_S = 90  # each trial's request: seconds after the auction window (a restart under load + headroom)
GRACE_S = 45  # "well after its deadline": a job not terminal by then is lost


# ---------------------------------------------------------------- the market under test


@dataclass
class Market:
    """A real market on loopback: Anvil, one provider, one solver, a verifier with its relay."""

    run_dir: Path
    anvil: Anvil = field(default_factory=Anvil)
    supervisor: Supervisor | None = None
    setup: ChainSetup | None = None
    urls: dict[str, str] = field(default_factory=dict)  # role -> base URL
    proxy: OutageProxy | None = None  # the roles' way to Anvil
    headroom_s: float = 15.0  # seconds of a fault the provider's promised latency leaves room for
    restart_delay_s: float = 0.0  # kill9: seconds between the kill and the restart
    #: role -> (``tender`` arguments, environment, URL that answers once it is up)
    commands: dict[str, tuple[list[str], dict[str, str], str]] = field(default_factory=dict)
    _stopping: threading.Event = field(default_factory=threading.Event)

    def start(self, console: Console) -> None:
        console.print("==> Anvil, Tender, the MLP model (cached bundle)")
        self.anvil.start()
        self.proxy = OutageProxy(self.anvil.rpc_url).start()
        setup = ChainSetup(w3=connect(self.anvil.rpc_url), deployer_key=DEV_KEYS[0])
        deployment = self.run_dir / "deployment.json"
        setup.deploy(save=deployment, params=MARKET_PARAMS)
        setup.register_models(["mlp"])
        provider = setup.address(PROVIDER_KEY)
        setup.mint([provider], 1_100 * TOKEN)
        setup.mint([setup.address(REQUESTER_KEY)], 1_000 * TOKEN)
        setup.stake(PROVIDER_KEY, 1_000 * TOKEN)
        ports = {role: free_port() for role in ("provider", "solver", "verifier")}
        self.urls = {role: f"http://127.0.0.1:{port}" for role, port in ports.items()}
        setup.operator(
            PROVIDER_KEY, endpoint=self.urls["provider"], region="0x0001", solvers=[setup.address(SOLVER_KEY)]
        )
        self.setup = setup

        console.print(
            "==> tender provider run, tender solver run, tender verifier run (loopback, RPC via the proxy)"
        )
        self.supervisor = Supervisor(logs=self.run_dir / "logs")
        rpc = self.proxy.url
        # The only use of tender.devnet's role configs: one place to follow when they change.
        models = [
            ModelEntry(
                name="mlp",
                onnx=SAMPLE_MODELS / "mlp" / "model.onnx",
                bundle=setup.models["mlp"].bundle,
                model_id=setup.models["mlp"].model_id,
            )
        ]
        provider_cfg = provider_config(
            ProviderPlan("gpu-a", 1, "0x0001", 1.0),
            rpc_url=rpc,
            deployment=deployment,
            port=ports["provider"],
            models=models,
            run_dir=self.run_dir,
            proving_warmup=False,
        )
        # The provider's promise covers the longest fault it is meant to survive mid-job: a
        # restart or an RPC outage of ``headroom_s`` (the operator's ``pricing.restart_s``).
        pricing = provider_cfg.provider.pricing.model_copy(
            update={"restart_s": max(provider_cfg.provider.pricing.restart_s, self.headroom_s)}
        )
        provider_cfg = provider_cfg.model_copy(
            update={"provider": provider_cfg.provider.model_copy(update={"pricing": pricing})}
        )
        self._command("provider", provider_cfg, PROVIDER_KEY, f"{self.urls['provider']}/health")
        entry = ProviderEntry(name="gpu-a", url=self.urls["provider"], address=provider)
        solver_cfg = solver_config(
            rpc_url=rpc,
            deployment=deployment,
            port=ports["solver"],
            providers=[entry],
            run_dir=self.run_dir,
            name="solver",
            margin_bps=100,
        )
        self._command("solver", solver_cfg, SOLVER_KEY, f"{self.urls['solver']}/status")
        verifier_cfg = verifier_config(
            rpc_url=rpc,
            deployment=deployment,
            run_dir=self.run_dir,
            relay_listen=f"127.0.0.1:{ports['verifier']}",
        )
        self._command("verifier", verifier_cfg, VERIFIER_KEY, f"{self.urls['verifier']}/v1/health")
        for role in self.commands:
            self.launch(role)
        threading.Thread(target=self._heartbeat, name="anvil-heartbeat", daemon=True).start()

    def _heartbeat(self) -> None:
        """An empty block every second, as the devnet mines (a live chain's clock moves on)."""
        while not self._stopping.wait(1.0):
            with contextlib.suppress(OSError, DevChainError):
                self.anvil.rpc("evm_mine")

    def _command(self, role: str, config: Any, key: str, ready_url: str) -> None:
        path = write_config(self.run_dir / f"{role}.toml", config)
        self.commands[role] = ([role, "run", "--config", str(path)], {"TENDER_PRIVATE_KEY": key}, ready_url)

    def launch(self, role: str) -> float:
        """Start ``role`` (again) and wait until it answers; the seconds that took."""
        assert self.supervisor is not None
        args, env, ready_url = self.commands[role]
        started = time.monotonic()
        self.supervisor.start(role, args, env=env)
        self.supervisor.wait_http(role, ready_url, timeout=180)
        return time.monotonic() - started

    def kill9(self, role: str) -> None:
        """``kill -9`` the role's process group and reap it."""
        assert self.supervisor is not None
        child = self.supervisor.children[role]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.process.wait(timeout=30)

    @property
    def market_address(self) -> str:
        assert self.setup is not None
        assert self.setup.deployment is not None
        return self.setup.deployment.markets["reverse"]

    def client(self) -> Client:
        """The requester (the SDK), reading Anvil directly."""
        assert self.setup is not None
        mlp = self.setup.models["mlp"]
        return Client(
            self.anvil.rpc_url,
            REQUESTER_KEY,
            solvers=[self.urls["solver"]],
            deployment=self.setup.deployment,
            bundles={"mlp": mlp.bundle},
            model_ids={"mlp": mlp.model_id},
            poll_interval=0.2,
        )

    def stop(self) -> None:
        self._stopping.set()
        if self.supervisor is not None:
            self.supervisor.stop_all()
        if self.proxy is not None:
            self.proxy.stop()
        self.anvil.stop()

    def pid(self, role: str) -> int:
        assert self.supervisor is not None
        return self.supervisor.children[role].pid

    def rss_mib(self, role: str) -> tuple[float, float]:
        """The role's server process: resident memory now and its peak (``VmRSS``, ``VmHWM``)."""
        fields = {}
        for line in Path(f"/proc/{self.pid(role)}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) / 1024
        return fields["VmRSS"], fields["VmHWM"]

    def signed_intent(self) -> dict[str, Any]:
        """A valid signed intent for the reverse market (``POST /intents``' happy body)."""
        assert self.setup is not None
        assert self.setup.deployment is not None
        market = self.setup.deployment.markets["reverse"]
        intent = Intent(
            requester=self.setup.address(REQUESTER_KEY),
            model_id=bytes.fromhex(self.setup.models["mlp"].model_id[2:]),
            input_commitment=5,
            max_price=10**17,
            deadline=int(time.time()) + 3_600,
            auction_type=AuctionType.REVERSE,
            auction_window=10,
            proof_mode=ProofMode.OPTIMISTIC,
            price_weight_bps=5_000,
            nonce=random.Random(SEED).getrandbits(64),
            expiry=int(time.time()) + 3_600,
        )
        return {
            "intent": intent.to_json(),
            "signature": "0x" + sign_intent(intent, REQUESTER_KEY, chain_id=31337, market=market).hex(),
            "market": market,
            "chainId": 31337,
            "jobId": "0x" + job_id(intent, chain_id=31337, market=market).hex(),
        }


@contextlib.contextmanager
def market(console: Console, run_dir: Path | None = None, *, headroom_s: float = 15.0) -> Iterator[Market]:
    """A started :class:`Market`, stopped on exit; its files (role logs) in ``run_dir`` if given."""
    with tempfile.TemporaryDirectory(prefix="tender-faults-") as tmp:
        running = Market(run_dir=run_dir or Path(tmp), headroom_s=headroom_s)
        running.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            running.start(console)
            yield running
        finally:
            running.stop()


# ---------------------------------------------------------------- fuzz: the cases


@dataclass
class Case:
    """One request: the role it goes to, method, path, body (bytes, or a stream's size) and headers."""

    role: str
    kind: str
    method: str
    path: str
    body: bytes | int | None = None
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})


NASTY: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1.5,
    -0.0,
    2**31,
    2**53,
    2**64,
    10**30,
    1e308,
    -1e308,
    5e-324,
    "",
    "0",
    "-1",
    "0x",
    "0x0",
    "0xzz",
    "0x" + "g" * 64,
    "x" * 5_000,
    "\u0000",
    "\u202e",
    "é" * 100,
    "[" * 50,
    "{}",
    [],
    {},
    [[[]]],
    [None],
    {"a": {"b": {"c": None}}},
    [0.1] * 2_000,
    list(range(200)),
]


def _nested(depth: int, *, objects: bool = False) -> bytes:
    if objects:
        return b'{"a":' * depth + b"1" + b"}" * depth
    return b"[" * depth + b"]" * depth


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON value (dict keys and list indexes), the root included."""
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value[:3]):
            out += _paths(item, (*prefix, i))
    return out


def _mutate(value: Any, rng: random.Random) -> Any:
    """``value`` with one thing wrong: a field dropped, retyped, added, or the whole replaced."""
    doc = json.loads(json.dumps(value))
    path = rng.choice(_paths(doc))
    if not path:
        return rng.choice(NASTY)
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    action = rng.random()
    if action < 0.2 and isinstance(parent, dict):
        del parent[last]
    elif action < 0.3 and isinstance(parent, dict):
        parent[rng.choice(["extra", "__proto__", "jobId ", "", "x" * 300])] = rng.choice(NASTY)
    else:
        parent[last] = rng.choice(NASTY)
    return doc


def _dumps(value: Any, rng: random.Random) -> bytes:
    text = json.dumps(value, allow_nan=True, ensure_ascii=rng.random() < 0.5)
    return text.encode("utf-8", "surrogatepass")


def _raw(rng: random.Random, valid: bytes) -> tuple[str, bytes]:
    """A body that is bad as bytes or as JSON, before any schema."""
    choice = rng.randrange(14)
    if choice == 0:
        return "deep_array", _nested(rng.choice([33, 64, 1_000, 10_000, 100_000, 400_000]))
    if choice == 1:
        return "deep_object", _nested(rng.choice([33, 100, 5_000, 50_000]), objects=True)
    if choice == 2:
        digits = rng.choice([65, 400, 4_301, 100_000])
        return "huge_number", valid.replace(b"31337", b"1" + b"0" * digits, 1) if b"31337" in valid else (
            b'{"chainId": 1' + b"0" * digits + b"}"
        )
    if choice == 3:
        return "float_overflow", rng.choice([b"1e400", b"-1e999", b'{"chainId": 1e400}', b"[1e400, -1e400]"])
    if choice == 4:
        return "nan_infinity", rng.choice([b"NaN", b"[Infinity]", b'{"chainId": -Infinity}', b"[NaN, 1]"])
    if choice == 5:
        return "truncated", valid[: rng.randrange(1, max(2, len(valid)))]
    if choice == 6:
        return "random_bytes", rng.randbytes(rng.randrange(1, 4_096))
    if choice == 7:
        return "invalid_utf8", b'{"jobId": "\xff\xfe\xc3\x28"}'
    if choice == 8:
        return "bom", b"\xef\xbb\xbf" + valid
    if choice == 9:
        return "lone_surrogate", b'{"jobId": "\\ud800", "market": "\\udfff"}'
    if choice == 10:
        return "empty", rng.choice([b"", b" ", b"\n\t", b"null", b"0", b'""', b"[]", b"{}"])
    if choice == 11:
        return "long_string", b'{"jobId": "' + b"a" * rng.choice([10_000, 500_000]) + b'"}'
    if choice == 12:
        return "duplicate_keys", valid[:-1] + b', "chainId": 1, "chainId": "x"}' if valid.endswith(
            b"}"
        ) else valid
    return "wide_array", b"[" + b"0," * rng.choice([1_000, 200_000]) + b"0]"


@dataclass(frozen=True)
class Route:
    role: str
    path: str
    method: str
    valid: Any = None  # a schema-valid body for POST routes


def routes(market: Market) -> list[Route]:
    intent = market.signed_intent()
    job = {"jobId": "0x" + "77" * 32, "market": intent["market"], "input": [[0.5] * 64]}
    quote = {
        "jobId": "0x" + "01" * 32,
        "market": intent["market"],
        "chainId": 31337,
        "intent": intent["intent"],
    }
    prove = {"jobId": "0x" + "11" * 32, "market": intent["market"], "proof": "0x" + "ab" * 64}
    return [
        Route("provider", "/quote", "POST", quote),
        Route("provider", "/jobs", "POST", job),
        Route("provider", "/jobs/" + job["jobId"], "GET"),
        Route("provider", "/health", "GET"),
        Route("provider", "/metrics", "GET"),
        Route("provider", "/openapi.json", "GET"),
        Route("solver", "/intents", "POST", intent),
        Route("solver", "/status", "GET"),
        Route("solver", "/metrics", "GET"),
        Route("solver", "/openapi.json", "GET"),
        Route("verifier", "/v1/prove", "POST", prove),
        Route("verifier", "/v1/health", "GET"),
        Route("verifier", "/v1/rewards", "GET"),
        Route("verifier", "/metrics", "GET"),
    ]


def cases(market: Market, count: int, *, streams: int, seed: int = SEED) -> list[Case]:
    """``count`` bad requests (``streams`` of them chunked bodies of 2 to 50 MB), seeded."""
    rng = random.Random(seed)
    table = routes(market)
    posts = [r for r in table if r.method == "POST"]
    out: list[Case] = []
    for _ in range(streams):
        route = rng.choice(posts)
        out.append(Case(route.role, "chunked_oversize", "POST", route.path, rng.choice([2, 8, 50]) * MIB))
    while len(out) < count:
        route = rng.choice(posts) if rng.random() < 0.8 else rng.choice(table)
        valid = _dumps(route.valid, rng) if route.valid is not None else b"{}"
        kind = rng.random()
        if route.method == "GET" or kind < 0.08:
            method = rng.choice(["PUT", "DELETE", "PATCH", "TRACE", "OPTIONS", "POST", "GET", "HEAD"])
            out.append(
                Case(route.role, "method", method, route.path, valid if method in ("PUT", "PATCH") else None)
            )
        elif kind < 0.45:
            out.append(
                Case(route.role, "mutated", "POST", route.path, _dumps(_mutate(route.valid, rng), rng))
            )
        elif kind < 0.80:
            name, body = _raw(rng, valid)
            out.append(Case(route.role, name, "POST", route.path, body))
        elif kind < 0.87:
            content_type = rng.choice(
                [
                    "text/plain",
                    "application/x-www-form-urlencoded",
                    "multipart/form-data",
                    "application/xml",
                    "application/json-patch",
                    "",
                ]
            )
            headers = {"content-type": content_type} if content_type else {}
            out.append(Case(route.role, "content_type", "POST", route.path, valid, headers))
        elif kind < 0.92:
            size = rng.choice([2 * MIB, 5 * MIB])  # declared: the server refuses before reading
            out.append(Case(route.role, "declared_oversize", "POST", route.path, b" " * size))
        elif kind < 0.96:
            noise = "".join(rng.choice("abcXYZ019-_.~%/") for _ in range(rng.choice([5, 50, 2_000])))
            path = rng.choice(
                [
                    f"/{noise}",
                    f"{route.path}/{noise}",
                    f"{route.path}%00",
                    "/jobs/" + "f" * 5_000,
                    "/../../etc/passwd",
                    "/intents?x=" + noise,
                ]
            )
            out.append(Case(route.role, "path", rng.choice(["GET", "POST"]), path, valid))
        else:
            headers = {
                "content-type": "application/json; charset=" + rng.choice(["utf-8", "latin-1", "x" * 200])
            }
            if rng.random() < 0.5:
                headers["content-encoding"] = rng.choice(["gzip", "deflate", "br", "zstd"])
            out.append(Case(route.role, "headers", "POST", route.path, valid, headers))
    return out


# ---------------------------------------------------------------- fuzz: sending them


async def _stream(size: int) -> AsyncIterator[bytes]:
    chunk = b"[" + b"0.5," * 16_383 + b"0],"
    sent = 0
    yield b"{" + b'"input": ['
    while sent < size:
        sent += len(chunk)
        yield chunk


async def send(urls: dict[str, str], batch: list[Case], *, concurrency: int) -> list[tuple[Case, int | str]]:
    """Send every case; each answer's status, or the name of the transport error."""
    limit = asyncio.Semaphore(concurrency)
    answers: list[tuple[Case, int | str]] = []
    timeout = httpx.Timeout(60.0, connect=10.0)
    async with httpx.AsyncClient(timeout=timeout, limits=httpx.Limits(max_connections=concurrency)) as http:

        async def one(case: Case) -> None:
            content = _stream(case.body) if isinstance(case.body, int) else case.body
            async with limit:
                try:
                    reply = await http.request(
                        case.method, urls[case.role] + case.path, content=content, headers=case.headers
                    )
                    answers.append((case, reply.status_code))
                except httpx.HTTPError as exc:
                    answers.append((case, type(exc).__name__))

        await asyncio.gather(*(one(case) for case in batch))
    return answers


async def resend(urls: dict[str, str], case: Case) -> int | str:
    """``case`` once more, alone, on a fresh connection: tells a server that drops the request
    (the same error again) from a transport artefact of the run (e.g. a kept-alive connection
    the server closed as the client reused it: a status this time)."""
    content = _stream(case.body) if isinstance(case.body, int) else case.body
    async with httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=10.0)) as http:
        try:
            reply = await http.request(
                case.method, urls[case.role] + case.path, content=content, headers=case.headers
            )
        except httpx.HTTPError as exc:
            return type(exc).__name__
    return reply.status_code


def _counted_5xx(urls: dict[str, str]) -> dict[str, float]:
    counted = {}
    for role, path in (("provider", "/metrics"), ("solver", "/metrics"), ("verifier", "/metrics")):
        text = httpx.get(urls[role] + path, timeout=30).text
        lines = [line for line in text.splitlines() if line.startswith("tender_http_5xx_total ")]
        counted[role] = float(lines[0].split()[1]) if lines else float("nan")
    return counted


def fuzz(market: Market, args: argparse.Namespace, console: Console) -> dict[str, Any]:
    count = args.cases or (1_000 if args.quick else 10_000)
    batch = cases(market, count, streams=4 if args.quick else 20)
    roles = ("provider", "solver", "verifier")
    before = {role: market.rss_mib(role)[0] for role in roles}
    console.print(f"==> fuzz: {len(batch)} bad requests across {len(routes(market))} routes of 3 roles")
    started = time.monotonic()
    answers = asyncio.run(send(market.urls, batch, concurrency=8))
    seconds = time.monotonic() - started
    dropped = [(i, c) for i, (c, status) in enumerate(answers) if not str(status).isdigit()]
    again = {i: asyncio.run(resend(market.urls, c)) for i, c in dropped}
    assert market.supervisor is not None
    market.supervisor.check()  # every role still running
    by_status = collections.Counter(str(status) for _, status in answers)
    by_role: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    by_kind: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for case, status in answers:
        by_role[case.role][str(status)] += 1
        by_kind[case.kind][str(status)] += 1
    http_5xx = sum(n for status, n in by_status.items() if status.isdigit() and int(status) >= 500)
    rss = {}
    for role in roles:
        _now, peak = market.rss_mib(role)
        rss[role] = {
            "before": round(before[role], 1),
            "peak": round(peak, 1),
            "growth": round(max(0.0, peak - before[role]), 1),
        }
    counted = _counted_5xx(market.urls)
    return {
        "cases": len(answers),
        "http_5xx": http_5xx,
        "http_5xx_counted": sum(counted.values()),
        "transport_errors": sum(n for status, n in by_status.items() if not status.isdigit()),
        # each transport error's case sent again alone on a fresh connection: a status here means
        # the drop was the run's transport (not the server refusing or crashing on that input)
        "transport_errors_reproduced": sum(1 for a in again.values() if not str(a).isdigit()),
        "failures": [  # the first few 5xx answers and transport errors, to reproduce them
            {
                "role": c.role,
                "kind": c.kind,
                "method": c.method,
                "path": c.path[:80],
                "answer": str(status),
                "answer_resent_alone": str(again[i]) if i in again else None,
                "body_bytes": len(c.body) if isinstance(c.body, bytes) else c.body,
                "body": (c.body[:120].decode("utf-8", "replace") if isinstance(c.body, bytes) else c.body),
                "headers": c.headers,
            }
            for i, (c, status) in enumerate(answers)
            if not str(status).isdigit() or int(status) >= 500
        ][:20],
        "by_status": dict(sorted(by_status.items())),
        "by_role": {role: dict(sorted(c.items())) for role, c in sorted(by_role.items())},
        "by_kind": {kind: dict(sorted(c.items())) for kind, c in sorted(by_kind.items())},
        "rss_mib": rss,
        "seconds": round(seconds, 1),
        "quick": bool(args.quick),
    }


def show_fuzz(result: dict[str, Any], console: Console) -> None:
    table = Table(title=f"fuzz: {result['cases']} bad requests in {result['seconds']} s")
    for column in ("role", "answers", "5xx", "RSS before (MiB)", "peak (MiB)", "growth (MiB)"):
        table.add_column(column, justify="right" if column != "role" else "left")
    for role, rss in result["rss_mib"].items():
        statuses = result["by_role"].get(role, {})
        five = sum(n for s, n in statuses.items() if s.isdigit() and int(s) >= 500)
        shown = ", ".join(f"{s}: {n}" for s, n in statuses.items())
        table.add_row(role, shown, str(five), str(rss["before"]), str(rss["peak"]), str(rss["growth"]))
    console.print(table)
    console.print(
        f"5xx seen by clients: {result['http_5xx']}; counted by the roles: {result['http_5xx_counted']}; "
        f"transport errors: {result['transport_errors']}"
    )


# ---------------------------------------------------------------- kill9, reorgs, rpc_outages: trials

STEPS = ("sent", "awarded", "delivered", "settled")
_REACHED = {  # the chain states at or past each step
    "sent": None,
    "awarded": {JobState.AWARDED, JobState.DELIVERED, JobState.CHALLENGED, JobState.PROOF_REQUIRED},
    "delivered": {JobState.DELIVERED, JobState.CHALLENGED, JobState.PROOF_REQUIRED},
    "settled": {JobState.SETTLED},
}


@dataclass
class Fault:
    """One trial's fault: what (``kill9:provider``, ``reorg:3``, ``outage:20``) and after which step."""

    kind: str
    step: str

    @property
    def name(self) -> str:
        return f"{self.kind}@{self.step}"


@dataclass
class Trial:
    index: int
    fault: str
    job_id: str = ""
    reached: bool = False  # the job reached the step before the fault
    state: str = ""  # the chain's state of the job at the end
    sdk: str = ""  # what the requester's SDK reported
    notes: dict[str, Any] = field(default_factory=dict)


def _state(chain: ChainMarket, job_id: str) -> JobState:
    """The job's state on chain (Anvil read directly); a read that races a reorg (a block number
    gone by the time it is asked for) is asked again."""
    for attempt in range(20):
        try:
            return chain.job(bytes.fromhex(job_id[2:])).state
        except ChainError:
            if attempt == 19:
                raise
            time.sleep(0.5)
    raise AssertionError("unreachable")


def _wait_step(chain: ChainMarket, job_id: str, step: str, until: float) -> bool:
    wanted = _REACHED[step]
    if wanted is None:
        return True
    while time.time() < until:
        state = _state(chain, job_id)
        if state in wanted or (state.final and step != "settled"):
            return state in wanted
        time.sleep(0.2)
    return False


def _wait_final(chain: ChainMarket, job_id: str, until: float) -> JobState:
    while True:
        state = _state(chain, job_id)
        if state.final or time.time() > until:
            return state
        time.sleep(0.5)


def _health(url: str) -> str:
    """The provider's ``/health`` as one word: its HTTP status and the body's ``status``."""
    try:
        reply = httpx.get(url, timeout=2.0)
    except httpx.HTTPError as exc:
        return type(exc).__name__
    try:
        status = reply.json().get("status", "")
    except ValueError:
        status = ""
    return f"{reply.status_code}:{status}"


def _inject(market: Market, fault: Fault, trial: Trial) -> None:
    started = time.time()
    try:
        _inject_now(market, fault, trial)
    finally:
        # when the fault lasted (unix seconds): what another trial's job lived through
        trial.notes["fault_window"] = [round(started, 1), round(time.time(), 1)]


def _inject_now(market: Market, fault: Fault, trial: Trial) -> None:
    kind, _, arg = fault.kind.partition(":")
    if kind == "kill9":
        market.kill9(arg)
        time.sleep(market.restart_delay_s)  # a slow restart (a loaded machine, a slow supervisor)
        trial.notes["restart_s"] = round(market.restart_delay_s + market.launch(arg), 1)
    elif kind == "reorg":
        block = market.anvil.rpc("eth_blockNumber")
        market.anvil.rpc("anvil_reorg", [int(arg), []])
        trial.notes["reorged_at_block"] = int(block, 16)
    elif kind == "outage":
        assert market.proxy is not None
        health = f"{market.urls['provider']}/health"
        market.proxy.outage(float(arg))
        during: list[str] = []
        while market.proxy.down:
            during.append(_health(health))
            time.sleep(1.0)
        time.sleep(5.0)
        trial.notes["health_during"] = dict(collections.Counter(during))
        trial.notes["health_after"] = _health(health)
    else:
        raise ValueError(fault.kind)


async def _trial(
    market: Market, client: Client, chain: ChainMarket, index: int, fault: Fault, inject: asyncio.Lock
) -> Trial:
    trial = Trial(index, fault.name)
    samples = json.loads((SAMPLE_MODELS / "mlp" / "samples.json").read_text())["samples"]
    try:
        async with inject:  # never sent while another trial's fault has the solver down
            # built once the fault before it is over: its deadline and expiry count from the send
            intent, handle = await client.build_intent(
                "mlp",
                samples[index % len(samples)]["input"],
                max_price=2 * TOKEN // 10,
                deadline=DEADLINE_S,
                proof="optimistic",
                auction="reverse",
            )
            trial.job_id = client.job_id(intent)
            tracker = await client.send(intent, solvers=[market.urls["solver"]])
    except TenderError as exc:
        trial.sdk, trial.state = f"send: {type(exc).__name__}", "not_sent"
        return trial
    follow = asyncio.create_task(client.follow(tracker, intent, handle, timeout=DEADLINE_S + GRACE_S + 30))
    until = intent.deadline + GRACE_S
    trial.reached = await asyncio.to_thread(_wait_step, chain, trial.job_id, fault.step, until)
    if trial.reached:
        async with inject:
            await asyncio.to_thread(_inject, market, fault, trial)
    state = await asyncio.to_thread(_wait_final, chain, trial.job_id, until)
    if state == JobState.SETTLED and fault.kind.startswith("reorg") and fault.step == "settled":
        # after a reorg that took a settlement back, give the chain's new branch its time too
        state = await asyncio.to_thread(_wait_final, chain, trial.job_id, until)
    trial.state = state.name.lower()
    try:
        result = await asyncio.wait_for(follow, timeout=10)
        trial.sdk = str(getattr(result, "state", "ok"))
    except TimeoutError:
        trial.sdk = "still_following"
    except TenderError as exc:
        trial.sdk = type(exc).__name__
    return trial


def _count(market: Market, trials: list[Trial], from_block: int) -> dict[str, Any]:
    """The section's figures, from the canonical logs of the market and the jobs' final states."""
    w3 = connect(market.anvil.rpc_url)
    decoder = tender_log_decoder()
    logs = w3.eth.get_logs({"address": market.market_address, "fromBlock": from_block, "toBlock": "latest"})  # type: ignore[typeddict-item]
    events: dict[str, list[str]] = collections.defaultdict(list)
    blocks: dict[str, dict[str, int]] = collections.defaultdict(dict)  # job -> event -> last block
    for raw in sorted(logs, key=lambda log: (log["blockNumber"], log["logIndex"])):
        decoded = decoder.decode(raw)
        if decoded is not None and "job_id" in decoded.args:
            key = "0x" + bytes(decoded.args["job_id"]).hex()
            events[key].append(decoded.name)
            blocks[key][decoded.name] = int(raw["blockNumber"])
    spans: dict[str, tuple[float, float]] = {}  # job -> (awarded, expired or slashed), block times
    for key, seen in blocks.items():
        end = seen.get("Expired", seen.get("Slashed"))
        if "Awarded" in seen and end is not None:
            stamps = [
                float(w3.eth.get_block(seen["Awarded"])["timestamp"]),
                float(w3.eth.get_block(end)["timestamp"]),
            ]
            spans[key] = (stamps[0], stamps[1])
    lost = slashed = double = 0
    windows = {t.index: (t.fault, t.notes["fault_window"]) for t in trials if "fault_window" in t.notes}
    for trial in trials:
        names = events.get(trial.job_id, [])
        trial.notes["events"] = names
        if trial.job_id in spans and any(name in ("Expired", "Slashed") for name in names):
            # an honest slash: every fault (this trial's and the others') between award and slash
            first, last = spans[trial.job_id]
            trial.notes["job_window"] = [first, last]
            trial.notes["faults_in_window"] = [
                f"#{index} {fault} {max(0.0, min(end, last) - max(start, first)):.1f}s"
                for index, (fault, (start, end)) in sorted(windows.items())
                if start < last and end > first
            ]
        deliveries = 0
        for name in names:
            if name in ("Awarded", "FailedOver"):
                deliveries = 0
            elif name == "Delivered":
                deliveries += 1
                double += deliveries > 1
        honest_slash = any(name in ("Expired", "Slashed") for name in names)
        slashed += honest_slash
        lost += trial.state not in ("settled", "refunded", "expired", "slashed", "not_sent")
    stacked = sum(1 for t in trials if len(t.notes.get("faults_in_window", [])) > 1)
    return {
        "trials": len(trials),
        "lost": lost,
        "honest_slashed": slashed,
        "double_deliveries": double,
        # honest slashes of jobs that lived through more than one fault between award and slash
        # (--parallel: another trial's fault, then its own): more than one restart of headroom
        "honest_slashed_multi_fault": stacked,
        # trials whose fault was injected at its step (the rest: the job ended or the run moved
        # past the step first), and requests no solver accepted (the SDK's RequestRejected)
        "faults_injected": sum(1 for t in trials if t.reached),
        "not_sent": sum(1 for t in trials if t.state == "not_sent"),
        "by_outcome": dict(collections.Counter(f"{t.fault}: {t.state}" for t in trials)),
        "trials_detail": [dataclasses.asdict(t) for t in trials],
    }


def run_trials(
    market: Market,
    faults: list[Fault],
    section: str,
    console: Console,
    *,
    parallel: int = 1,
    stagger_s: float = 3.0,
) -> dict[str, Any]:
    """Run ``faults``, ``parallel`` trials in flight at once (their starts ``stagger_s`` apart).

    With ``parallel > 1`` each trial still gets its own fault at its own step; the other jobs in
    flight then live through that fault too (a stricter test, never a weaker one), and the
    faults themselves are injected one at a time."""
    chain = ChainMarket(connect(market.anvil.rpc_url), market.market_address)
    from_block = chain.w3.eth.block_number
    trials: list[Trial] = []
    started = time.monotonic()
    console.print(f"==> {section}: {len(faults)} trials, {parallel} in flight at once")

    async def main() -> None:
        client = market.client()
        slots = asyncio.Semaphore(parallel)
        inject = asyncio.Lock()  # one fault at a time: a kill and its restart never overlap

        async def one(index: int, fault: Fault) -> None:
            async with slots:
                trial = await _trial(market, client, chain, index, fault, inject)
            trials.append(trial)
            console.print(
                f"  {section} {len(trials)}/{len(faults)} #{index} {fault.name}: reached={trial.reached} "
                f"chain={trial.state} sdk={trial.sdk} {trial.notes}"
            )

        try:
            pending = []
            for index, fault in enumerate(faults):
                pending.append(asyncio.create_task(one(index, fault)))
                await asyncio.sleep(stagger_s if parallel > 1 else 0)  # jobs at different steps
            await asyncio.gather(*pending)
        finally:
            await client.aclose()

    asyncio.run(main())
    trials.sort(key=lambda t: t.index)
    result = _count(market, trials, from_block)
    result["parallel"] = parallel
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


def kill9(market: Market, args: argparse.Namespace, console: Console) -> dict[str, Any]:
    roles_steps = [(r, s) for s in STEPS[:3] for r in ("provider", "solver", "verifier")]
    count = args.trials or (6 if args.quick else 100)
    quick_order = [
        ("provider", "awarded"),
        ("solver", "sent"),
        ("verifier", "delivered"),
        ("provider", "delivered"),
        ("solver", "awarded"),
        ("provider", "sent"),
    ]
    order = quick_order + [rs for rs in roles_steps if rs not in quick_order]
    if args.kill_points:
        order = [(point.partition("@")[0], point.partition("@")[2]) for point in args.kill_points.split(",")]
        unknown = [f"{r}@{s}" for r, s in order if (r, s) not in roles_steps]
        if unknown:
            raise SystemExit(
                f"unknown kill point(s) {', '.join(unknown)}; known: role@step for "
                f"role in provider, solver, verifier and step in {', '.join(STEPS[:3])}"
            )
    faults = [Fault(f"kill9:{role}", step) for role, step in (order[i % len(order)] for i in range(count))]
    return {**run_trials(market, faults, "kill9", console, parallel=args.parallel), "quick": bool(args.quick)}


def reorgs(market: Market, args: argparse.Namespace, console: Console) -> dict[str, Any]:
    count = args.trials or (3 if args.quick else 50)
    depths = [1, 3, 6] if args.quick else [1, 2, 3, 4, 5, 6]
    steps = ("settled", "delivered", "awarded")
    faults = [Fault(f"reorg:{depths[i % len(depths)]}", steps[i % len(steps)]) for i in range(count)]
    return {
        **run_trials(market, faults, "reorgs", console, parallel=args.parallel),
        "quick": bool(args.quick),
    }


def rpc_outages(market: Market, args: argparse.Namespace, console: Console) -> dict[str, Any]:
    count = args.trials or (2 if args.quick else 10)
    steps = ("awarded", "sent", "delivered")
    faults = [Fault(f"outage:{args.outage_s}", steps[i % len(steps)]) for i in range(count)]
    result = {
        **run_trials(market, faults, "rpc_outages", console, parallel=args.parallel),
        "quick": bool(args.quick),
    }
    details = [t["notes"] for t in result["trials_detail"]]
    result["health_unhealthy_during"] = sum(
        1 for n in details if any(not k.startswith("200:ok") for k in n.get("health_during", {}))
    )
    result["health_ok_after"] = sum(1 for n in details if str(n.get("health_after", "")).startswith("200:ok"))
    return result


def show_trials(result: dict[str, Any], console: Console) -> None:
    table = Table(title=f"{result['trials']} trials in {result['seconds']} s")
    for column in ("lost", "honest_slashed", "double_deliveries"):
        table.add_column(column, justify="right")
    table.add_row(str(result["lost"]), str(result["honest_slashed"]), str(result["double_deliveries"]))
    console.print(table)
    for outcome, n in sorted(result["by_outcome"].items()):
        console.print(f"  {n} x {outcome}")


# ---------------------------------------------------------------- load: a devnet at concurrency 16


def load(market: Market | None, args: argparse.Namespace, console: Console) -> dict[str, Any]:
    requests, concurrency = (16, 8) if args.quick else (40, 16)
    console.print(f"==> load: tender devnet, {requests} requests at concurrency {concurrency}, faults off")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tender-load-") as tmp:
        out = Path(tmp) / "devnet.json"
        done = subprocess.run(
            [
                *tender_command(),
                "devnet",
                "--requests",
                str(requests),
                "--concurrency",
                str(concurrency),
                "--no-faults",
                "--no-live",
                "--no-png",
                "--no-audit",
                "--json",
                str(out),
                "--run-dir",
                str((args.run_dir / "load") if args.run_dir else Path(tmp) / "run"),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=3_600,
            check=False,
        )
        summary: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    d = summary.get("summary", summary)
    return {
        "requests": requests,
        "concurrency": concurrency,
        "honest_slashed": d.get("slashed"),
        "expired": d.get("expired"),
        "settled": d.get("settled"),
        "refunded": d.get("refunded"),
        "exit_code": done.returncode,
        "stderr_tail": done.stderr[-1_500:] if done.returncode else "",
        "seconds": round(time.monotonic() - started, 1),
        "quick": bool(args.quick),
    }


def show_load(result: dict[str, Any], console: Console) -> None:
    console.print(
        f"load: {result['requests']} requests at concurrency {result['concurrency']}: "
        f"honest_slashed={result['honest_slashed']} expired={result['expired']} "
        f"settled={result['settled']} (exit {result['exit_code']}, {result['seconds']} s)"
    )


# ---------------------------------------------------------------- sections and main

#: section name -> (run, show): every section but ``load`` runs on the one shared :class:`Market`.
Runner = Callable[[Market, argparse.Namespace, Console], dict[str, Any]]
SECTIONS: dict[str, tuple[Runner, Callable[[dict[str, Any], Console], None]]] = {
    "fuzz": (fuzz, show_fuzz),
    "kill9": (kill9, show_trials),
    "reorgs": (reorgs, show_trials),
    "rpc_outages": (rpc_outages, show_trials),
}
#: sections that start their own market
STANDALONE: dict[
    str,
    tuple[
        Callable[[Market | None, argparse.Namespace, Console], dict[str, Any]],
        Callable[[dict[str, Any], Console], None],
    ],
] = {"load": (load, show_load)}
ALL = [*SECTIONS, *STANDALONE]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer cases and trials (CI)")
    parser.add_argument("--only", default=",".join(ALL), help=f"comma-separated sections ({', '.join(ALL)})")
    parser.add_argument(
        "--cases", type=int, default=None, help="fuzz cases (default 10,000; 1,000 with --quick)"
    )
    parser.add_argument(
        "--trials", type=int, default=None, help="trials per fault section (default: see above)"
    )
    parser.add_argument("--outage-s", type=float, default=20.0, help="seconds each RPC outage lasts")
    parser.add_argument(
        "--restart-delay-s",
        type=float,
        default=0.0,
        help="kill9: wait this long before restarting the killed role (a slow restart under load)",
    )
    parser.add_argument(
        "--kill-points",
        default="",
        help="kill9: only these role@step points, in turn (e.g. provider@awarded,solver@sent)",
    )
    parser.add_argument(
        "--parallel",
        type=int,
        default=1,
        help="trials in flight at once in kill9, reorgs and rpc_outages (each still gets its own fault)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--run-dir", type=Path, default=None, help="keep the roles' configs and logs here")
    args = parser.parse_args(argv)
    wanted = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in ALL]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; known: {', '.join(ALL)}")
    console = Console()
    results: dict[str, Any] = {}
    if args.out.exists():
        with contextlib.suppress(ValueError):
            results = json.loads(args.out.read_text())
    started = time.monotonic()

    def save() -> None:  # after every section: a long run that dies keeps what it measured
        results["machine"] = {"cpus": os.cpu_count(), "load_avg": [round(x, 2) for x in os.getloadavg()]}
        results["seconds"] = round(time.monotonic() - started, 1)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")

    shared = [name for name in wanted if name in SECTIONS]
    if shared:
        # headroom: an outage of --outage-s plus 10 s to catch up after it
        with market(console, args.run_dir, headroom_s=max(15.0, args.outage_s + 10.0)) as running:
            running.restart_delay_s = args.restart_delay_s
            for name in shared:
                run, show = SECTIONS[name]
                results[name] = run(running, args, console)
                show(results[name], console)
                save()
    for name in [name for name in wanted if name in STANDALONE]:
        run_alone, show = STANDALONE[name]
        results[name] = run_alone(None, args, console)
        show(results[name], console)
        save()
    save()
    console.print(f"wrote {args.out}")
    fuzz_result = results.get("fuzz", {})
    return 1 if "fuzz" in wanted and fuzz_result.get("http_5xx", 0) else 0


if __name__ == "__main__":
    sys.exit(main())
