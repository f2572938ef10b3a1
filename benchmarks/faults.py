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

Later sections (``kill9``, ``reorgs``, ``rpc_outages``, ``load``) plug into :data:`SECTIONS`
with the same :class:`Market`.

Run: ``python benchmarks/faults.py [--quick] [--only fuzz]`` (``--quick``: 1,000 cases).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import random
import sys
import tempfile
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
from tender.chain import connect  # noqa: E402
from tender.devnet._chain import TOKEN, ChainSetup  # noqa: E402
from tender.devnet._configs import (  # noqa: E402
    ProviderPlan,
    provider_config,
    solver_config,
    verifier_config,
    write_config,
)
from tender.devnet._supervisor import Supervisor  # noqa: E402
from tender.intents import AuctionType, Intent, ProofMode, job_id, sign_intent  # noqa: E402
from tender.paths import SAMPLE_MODELS  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "faults.json"
PROVIDER_KEY, REQUESTER_KEY, SOLVER_KEY, VERIFIER_KEY = (DEV_KEYS[i] for i in (1, 2, 4, 6))
SEED = 16
MIB = 2**20


# ---------------------------------------------------------------- the market under test


@dataclass
class Market:
    """A real market on loopback: Anvil, one provider, one solver, a verifier with its relay."""

    run_dir: Path
    anvil: Anvil = field(default_factory=Anvil)
    supervisor: Supervisor | None = None
    setup: ChainSetup | None = None
    urls: dict[str, str] = field(default_factory=dict)  # role -> base URL

    def start(self, console: Console) -> None:
        console.print("==> Anvil, Tender, the MLP model (cached bundle)")
        self.anvil.start()
        setup = ChainSetup(w3=connect(self.anvil.rpc_url), deployer_key=DEV_KEYS[0])
        deployment = self.run_dir / "deployment.json"
        setup.deploy(save=deployment)
        setup.register_models(["mlp"])
        provider = setup.address(PROVIDER_KEY)
        setup.mint([provider], 1_100 * TOKEN)
        setup.mint([setup.address(REQUESTER_KEY)], 1_000 * TOKEN)
        setup.stake(PROVIDER_KEY, 1_000 * TOKEN)
        ports = {role: free_port() for role in ("provider", "solver", "verifier")}
        self.urls = {role: f"http://127.0.0.1:{port}" for role, port in ports.items()}
        setup.operator(PROVIDER_KEY, endpoint=self.urls["provider"], region="0x0001",
                       solvers=[setup.address(SOLVER_KEY)])  # fmt: skip
        self.setup = setup

        console.print("==> tender provider run, tender solver run, tender verifier run (loopback)")
        sup = self.supervisor = Supervisor(logs=self.run_dir / "logs")
        rpc = self.anvil.rpc_url
        models = [ModelEntry(name="mlp", onnx=SAMPLE_MODELS / "mlp" / "model.onnx",
                             bundle=setup.models["mlp"].bundle, model_id=setup.models["mlp"].model_id)]  # fmt: skip
        config = provider_config(ProviderPlan("gpu-a", 1, "0x0001", 1.0), rpc_url=rpc, deployment=deployment,
                                 port=ports["provider"], models=models, run_dir=self.run_dir,
                                 proving_warmup=False)  # fmt: skip
        sup.start("provider", ["provider", "run", "--config", str(write_config(self.run_dir / "p.toml", config))],
                  env={"TENDER_PRIVATE_KEY": PROVIDER_KEY})  # fmt: skip
        entry = ProviderEntry(name="gpu-a", url=self.urls["provider"], address=provider)
        solver = solver_config(rpc_url=rpc, deployment=deployment, port=ports["solver"], providers=[entry],
                               run_dir=self.run_dir, name="solver", margin_bps=100)  # fmt: skip
        sup.start("solver", ["solver", "run", "--config", str(write_config(self.run_dir / "s.toml", solver))],
                  env={"TENDER_PRIVATE_KEY": SOLVER_KEY})  # fmt: skip
        verifier = verifier_config(rpc_url=rpc, deployment=deployment, run_dir=self.run_dir,
                                   relay_listen=f"127.0.0.1:{ports['verifier']}")  # fmt: skip
        sup.start("verifier", ["verifier", "run", "--config", str(write_config(self.run_dir / "v.toml", verifier))],
                  env={"TENDER_PRIVATE_KEY": VERIFIER_KEY})  # fmt: skip
        sup.wait_http("provider", f"{self.urls['provider']}/health", timeout=180)
        sup.wait_http("solver", f"{self.urls['solver']}/status", timeout=120)
        sup.wait_http("verifier", f"{self.urls['verifier']}/v1/health", timeout=120)
        sup.check()

    def stop(self) -> None:
        if self.supervisor is not None:
            self.supervisor.stop_all()
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
            requester=self.setup.address(REQUESTER_KEY), model_id=bytes.fromhex(self.setup.models["mlp"].model_id[2:]),
            input_commitment=5, max_price=10**17, deadline=int(time.time()) + 3_600,
            auction_type=AuctionType.REVERSE, auction_window=10, proof_mode=ProofMode.OPTIMISTIC,
            price_weight_bps=5_000, nonce=random.Random(SEED).getrandbits(64), expiry=int(time.time()) + 3_600,
        )  # fmt: skip
        return {
            "intent": intent.to_json(),
            "signature": "0x" + sign_intent(intent, REQUESTER_KEY, chain_id=31337, market=market).hex(),
            "market": market,
            "chainId": 31337,
            "jobId": "0x" + job_id(intent, chain_id=31337, market=market).hex(),
        }


@contextlib.contextmanager
def market(console: Console) -> Iterator[Market]:
    with tempfile.TemporaryDirectory(prefix="tender-faults-") as tmp:
        running = Market(run_dir=Path(tmp))
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
    None, True, False, 0, -1, 1.5, -0.0, 2**31, 2**53, 2**64, 10**30, 1e308, -1e308, 5e-324, "", "0", "-1",
    "0x", "0x0", "0xzz", "0x" + "g" * 64, "x" * 5_000, "\u0000", "\u202e", "é" * 100, "[" * 50, "{}", [], {},
    [[[]]], [None], {"a": {"b": {"c": None}}}, [0.1] * 2_000, list(range(200)),
]  # fmt: skip


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
            content_type = rng.choice(["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                       "application/xml", "application/json-patch", ""])  # fmt: skip
            headers = {"content-type": content_type} if content_type else {}
            out.append(Case(route.role, "content_type", "POST", route.path, valid, headers))
        elif kind < 0.92:
            size = rng.choice([2 * MIB, 5 * MIB])  # declared: the server refuses before reading
            out.append(Case(route.role, "declared_oversize", "POST", route.path, b" " * size))
        elif kind < 0.96:
            noise = "".join(rng.choice("abcXYZ019-_.~%/") for _ in range(rng.choice([5, 50, 2_000])))
            path = rng.choice([f"/{noise}", f"{route.path}/{noise}", f"{route.path}%00", "/jobs/" + "f" * 5_000,
                               "/../../etc/passwd", "/intents?x=" + noise])  # fmt: skip
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
                    reply = await http.request(case.method, urls[case.role] + case.path, content=content,
                                               headers=case.headers)  # fmt: skip
                    answers.append((case, reply.status_code))
                except httpx.HTTPError as exc:
                    answers.append((case, type(exc).__name__))

        await asyncio.gather(*(one(case) for case in batch))
    return answers


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
        rss[role] = {"before": round(before[role], 1), "peak": round(peak, 1),
                     "growth": round(max(0.0, peak - before[role]), 1)}  # fmt: skip
    counted = _counted_5xx(market.urls)
    return {
        "cases": len(answers),
        "http_5xx": http_5xx,
        "http_5xx_counted": sum(counted.values()),
        "transport_errors": sum(n for status, n in by_status.items() if not status.isdigit()),
        "failures": [  # the first few 5xx answers and transport errors, to reproduce them
            {
                "role": c.role,
                "kind": c.kind,
                "method": c.method,
                "path": c.path[:80],
                "answer": str(status),
                "body": (c.body[:120].decode("utf-8", "replace") if isinstance(c.body, bytes) else c.body),
                "headers": c.headers,
            }
            for c, status in answers
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
    console.print(f"5xx seen by clients: {result['http_5xx']}; counted by the roles: {result['http_5xx_counted']}; "
                  f"transport errors: {result['transport_errors']}")  # fmt: skip


# ---------------------------------------------------------------- sections and main

#: section name -> (run, show); a later section adds itself here and reuses :class:`Market`.
SECTIONS: dict[str, tuple[Callable[[Market, argparse.Namespace, Console], dict[str, Any]],
                          Callable[[dict[str, Any], Console], None]]] = {
    "fuzz": (fuzz, show_fuzz),
}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer cases (CI)")
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma-separated sections ({', '.join(SECTIONS)})"
    )
    parser.add_argument(
        "--cases", type=int, default=None, help="fuzz cases (default 10,000; 1,000 with --quick)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    wanted = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    console = Console()
    results: dict[str, Any] = {}
    if args.out.exists():
        with contextlib.suppress(ValueError):
            results = json.loads(args.out.read_text())
    started = time.monotonic()
    with market(console) as running:
        for name in wanted:
            run, show = SECTIONS[name]
            results[name] = run(running, args, console)
            show(results[name], console)
    results["machine"] = {"cpus": os.cpu_count(), "load_avg": [round(x, 2) for x in os.getloadavg()]}
    results["seconds"] = round(time.monotonic() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    console.print(f"wrote {args.out}")
    fuzz_result = results.get("fuzz", {})
    return 1 if "fuzz" in wanted and fuzz_result.get("http_5xx", 0) else 0


if __name__ == "__main__":
    sys.exit(main())
