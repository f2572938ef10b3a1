"""The devnet's token requests: ``TokenMarket``, four token desks, a watcher, three re-executors.

Four provider processes (``tender provider tokens``) serve ``models/lm``: ``tok-a`` and
``tok-b`` honestly, ``tok-cheap`` with the cheaper ``models/lm-cheap`` swapped in, ``tok-trunc``
cutting every sequence in half. A requester buys continuations of short prompts through the
SDK (:func:`tender.client._tokens.request_tokens`: a per-1k RFQ, ``open`` on chain, tokens
streamed as they are made) and discloses each request to the model's verifiers. Four verifier
processes (``tender verifier tokens``) keep the market: ``tok-watch`` re-executes every delivery
read back from the chain, challenges one that fails the δ rule, and finalizes and expires jobs
when their windows end (a share of deliveries is audited by the market's draw then);
``tok-rx0``..``tok-rx2``, staked re-executors on other onnxruntime backends, vote every disputed
job. A truncated sequence never gets on chain and the job expires slashed. The summary gets price
per 1k, tokens/s, time to first token and what happened to each desk, read back from the chain.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eth_account import Account
from hexbytes import HexBytes
from web3 import Web3

from solver import ProviderEntry
from tender.anvil import dev_key
from tender.chain import (
    Deployment,
    ModelInfo,
    ReexecutionVoted,
    Registry,
    TokenAuditDrawn,
    TokenChallenged,
    TokenJobExpired,
    TokenMarket,
    TokenModelConfig,
    TxSender,
    deploy_token_market,
    token_model_info,
)
from tender.devnet._chain import TOKEN, ChainSetup
from tender.devnet._supervisor import Supervisor, tender_command
from tender.errors import TenderError
from tender.paths import SAMPLE_MODELS

__all__ = ["TOKEN_ACCOUNTS", "TokenPhase", "token_problems", "token_rows"]

logger = logging.getLogger("tender.devnet")

#: Development accounts 14.. (the devnet's Anvil creates them): desks, re-executors, watcher, requester.
FIRST_ACCOUNT = 14
#: How many accounts the token phase uses.
TOKEN_ACCOUNTS = 9
#: The verifiers: name, duties and onnxruntime backend (the re-executors' differ from the desks').
VERIFIERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("tok-watch", ("--no-vote",)),
    ("tok-rx0", ("--no-watch", "--no-keep", "--backend", "disable-all", "--threads", "2")),
    ("tok-rx1", ("--no-watch", "--no-keep", "--backend", "extended")),
    ("tok-rx2", ("--no-watch", "--no-keep", "--backend", "disable-all")),
)
#: the verifier processes' niceness on the devnet
VERIFIER_NICE = 10
#: How long the phase waits for its last job to end once the requests are done (chain windows
#: included: the challenge window, then an audit's vote window)
SETTLE_TIMEOUT_S = 240
#: The desks: name, misbehaviour (None: honest).
DESKS: tuple[tuple[str, str | None], ...] = (
    ("tok-a", None),
    ("tok-b", None),
    ("tok-cheap", "cheap"),
    ("tok-trunc", "truncate"),
)
PROMPTS = ("Return the", "The default is", "If the file", "Raise ValueError if", "This module provides")
MAX_PRICE_PER1K = TOKEN // 100  # 0.01 token per 1k tokens: the requester's cap
#: the market's windows on the devnet (seconds of chain time with a block a second; each grows by
#: WINDOW_BLOCKS block times under interval mining, so a transaction sent at once still lands in it)
CHALLENGE_WINDOW = 6
VOTE_WINDOW = 20
WINDOW_BLOCKS = 4
AUDIT_RATE_BPS = 2_500


@dataclass
class TokenRecord:
    """One token request."""

    index: int
    desk: str
    job_id: bytes | None = None
    price_per1k: int = 0
    tokens: int = 0
    ttft_ms: float | None = None
    tokens_per_s: float | None = None
    state: str = "none"
    challenged: bool = False
    audited: bool = False
    error: str | None = None
    #: quoted through the devnet's solver (``POST /tokens/quote``), which chose the desk
    via_solver: bool = False


@dataclass
class TokenPhase:
    """Set up, run and summarise the devnet's token requests."""

    w3: Web3
    deployer_key: str
    step: Callable[[str], None]
    keys: list[str] = field(
        default_factory=lambda: [dev_key(FIRST_ACCOUNT + i) for i in range(TOKEN_ACCOUNTS)]
    )
    address: str = ""
    urls: dict[str, str] = field(default_factory=dict)
    #: the verifiers' disclosure endpoints, by name
    verifier_urls: dict[str, str] = field(default_factory=dict)
    records: list[TokenRecord] = field(default_factory=list)
    gas: dict[str, list[int]] = field(default_factory=dict)
    #: Anvil's block time (None: a block per transaction)
    block_time: float | None = None
    #: the block the market was deployed in (the verifiers scan from it)
    deployed_block: int = 0
    #: a solver whose ``POST /tokens/quote`` asks the honest desks (None: every request goes to
    #: its desk directly)
    solver_url: str | None = None

    @property
    def desk_keys(self) -> dict[str, str]:
        return {name: self.keys[i] for i, (name, _) in enumerate(DESKS)}

    @property
    def reexecutor_keys(self) -> list[str]:
        return self.keys[4:7]

    @property
    def watcher_key(self) -> str:
        return self.keys[7]

    @property
    def requester_key(self) -> str:
        return self.keys[8]

    @property
    def _slack(self) -> int:
        """Seconds added to each window: WINDOW_BLOCKS block times under interval mining."""
        return 0 if self.block_time is None else math.ceil(WINDOW_BLOCKS * self.block_time)

    @functools.cached_property
    def model_info(self) -> ModelInfo:
        """``models/lm``'s record in the registry's re-execution tier."""
        return token_model_info(SAMPLE_MODELS / "lm", audit_rate_bps=AUDIT_RATE_BPS)

    @functools.cached_property
    def model_id(self) -> bytes:
        """Its id (the deployer registers it)."""
        return self.model_info.model_id(Account.from_key(self.deployer_key).address)

    def market(self, key: str) -> TokenMarket:
        return TokenMarket(self.w3, self.address, sender=TxSender(self.w3, key))

    # -- set-up (deploy before anyone stakes: Staking authorises a market at once only then) ----

    def deploy(self, deployment: Deployment) -> str:
        self.address = deploy_token_market(
            self.w3,
            self.deployer_key,
            deployment,
            challenge_window=CHALLENGE_WINDOW + self._slack,
            vote_window=VOTE_WINDOW + self._slack,
            challenge_bond=TOKEN // 10,
        )
        self.deployed_block = int(self.w3.eth.block_number)
        return self.address

    def fund(self, setup: ChainSetup) -> None:
        from tender.tokens import TokenModel

        assert setup.deployment is not None
        lm = TokenModel.load(SAMPLE_MODELS / "lm")
        assert lm.eos_token_id is not None
        owner = self.market(self.deployer_key)
        config = TokenModelConfig(
            eos_id=lm.eos_token_id,
            vocab_size=lm.vocab_size,
            max_tokens=lm.n_positions or 1024,
            audit_rate_bps=AUDIT_RATE_BPS,
            stake_multiple=19,
            quorum=2,
            min_reexecutor_stake=10 * TOKEN,
        )
        registry = Registry(self.w3, setup.deployment.registry, sender=TxSender(self.w3, self.deployer_key))
        registry.register_model(self.model_info)  # the registry's re-execution tier pins models/lm
        owner.set_token_model(self.model_id, config)
        for key in self.reexecutor_keys:
            owner.set_reexecutor(self.model_id, setup.address(key))
        stakers = [*self.desk_keys.values(), *self.reexecutor_keys]
        setup.mint([setup.address(k) for k in stakers], 200 * TOKEN)
        for key in stakers:
            setup.stake(key, 100 * TOKEN)
        payers = [self.watcher_key, self.requester_key]
        setup.mint([setup.address(k) for k in payers], 100 * TOKEN)
        from tender.chain import Token

        for key in payers:
            Token(self.w3, setup.deployment.token, sender=TxSender(self.w3, key)).approve(
                self.address, 2**255
            )

    def honest_desks(self, ports: list[int]) -> list[ProviderEntry]:
        """The honest desks as a solver lists them (``ports`` as :meth:`start` takes them)."""
        return [
            ProviderEntry(
                name=name,
                url=f"http://127.0.0.1:{port}",
                address=Account.from_key(self.desk_keys[name]).address,
            )
            for (name, misbehave), port in zip(DESKS, ports, strict=False)
            if misbehave is None
        ]

    def _desk_named(self, address: str) -> str:
        for name, key in self.desk_keys.items():
            if Account.from_key(key).address == address:
                return name
        raise TenderError(f"no devnet desk has the address {address}")

    def _served(self, rpc_url: str) -> list[str]:
        """What every desk and verifier is told: the model, its id, the chain and the market."""
        model = ["--model", str(SAMPLE_MODELS / "lm"), "--model-id", "0x" + self.model_id.hex()]
        return [*model, "--rpc", rpc_url, "--market", self.address]

    def start(self, supervisor: Supervisor, rpc_url: str, ports: list[int]) -> None:
        """Start the desks and the verifiers (``ports``: one per desk, then one per verifier)."""
        desk_ports, verifier_ports = ports[: len(DESKS)], ports[len(DESKS) :]
        keys = [self.watcher_key, *self.reexecutor_keys]
        for (name, duties), port, key in zip(VERIFIERS, verifier_ports, keys, strict=True):
            args = [
                "verifier",
                "tokens",
                *self._served(rpc_url),
                "--listen",
                f"127.0.0.1:{port}",
                "--store",
                str(supervisor.logs / f"{name}.db"),
                "--from-block",
                str(self.deployed_block),
                "--poll-interval",
                "0.25",
                "--log-level",
                "INFO",
                *duties,
            ]
            # niced: on the devnet's shared cores the verifiers' re-executions yield to the desks'
            # streams (in production they run on machines of their own); milliseconds each, well
            # inside the challenge window
            niced = ["nice", "-n", str(VERIFIER_NICE), *tender_command(), *args]
            supervisor.start(name, niced, env={"TENDER_PRIVATE_KEY": key}, tender=False)
            self.verifier_urls[name] = f"http://127.0.0.1:{port}"
        for (name, misbehave), port in zip(DESKS, desk_ports, strict=True):
            args = [
                "provider",
                "tokens",
                *self._served(rpc_url),
                "--port",
                str(port),
            ]
            if misbehave is not None:
                args += ["--misbehave", misbehave]
            if misbehave == "cheap":
                args += ["--cheap-model", str(SAMPLE_MODELS / "lm-cheap")]
            supervisor.start(name, args, env={"TENDER_PRIVATE_KEY": self.desk_keys[name]})
            self.urls[name] = f"http://127.0.0.1:{port}"
        for name, url in self.urls.items():
            supervisor.wait_http(name, f"{url}/health", timeout=120)
        for name, url in self.verifier_urls.items():
            supervisor.wait_http(name, f"{url}/v1/health", timeout=120)

    # -- the run -------------------------------------------------------------------------

    async def run(self, count: int, *, seed: int = 0) -> None:
        from tender.client import request_tokens
        from tender.tokens import TokenModel

        requester = self.market(self.requester_key)
        names = [name for name, _ in DESKS]
        self.records = [TokenRecord(i, names[i % len(names)]) for i in range(count)]
        tokenizer_model = TokenModel.load(SAMPLE_MODELS / "lm")
        for record in self.records:  # one at a time: each desk's stream is its own measurement
            prompt = tokenizer_model.encode(PROMPTS[record.index % len(PROMPTS)])
            sampled = record.index % 2 == 1
            honest = dict(DESKS)[record.desk] is None
            via = self.solver_url if honest and self.solver_url else self.urls[record.desk]
            try:
                result = await request_tokens(
                    requester,
                    [via],
                    prompt,
                    max_tokens=48,
                    max_price_per1k=MAX_PRICE_PER1K,
                    model_id=self.model_id,
                    temperature=0.8 if sampled else 0.0,
                    top_k=40 if sampled else 0,
                    seed=seed + record.index if sampled else 0,
                    on_token=None,
                    verifiers=list(self.verifier_urls.values()),
                )
            except TenderError as exc:
                record.error = f"{type(exc).__name__}: {exc}"
                continue
            record.job_id = result.job_id
            if via == self.solver_url:  # the solver chose the desk: the record is that desk's
                record.desk = self._desk_named(result.provider)
                record.via_solver = True
            record.price_per1k = result.price_per1k
            record.tokens = len(result.tokens)
            record.ttft_ms = None if result.ttft_s is None else result.ttft_s * 1000
            record.tokens_per_s = result.tokens_per_s
            record.error = result.error
            if result.disclosed < len(self.verifier_urls):
                record.error = (
                    record.error or f"disclosed to {result.disclosed} of {len(self.verifier_urls)} verifiers"
                )
            if record.index == 0:
                text = tokenizer_model.decode(result.tokens).replace("\n", " ")
                self.step(f"tokens streamed to the requester ({record.desk}): {text[:60]!r}…")
        await asyncio.to_thread(self._settle)

    # -- the end: the verifiers finalize, expire and vote; the chain says what happened ---

    def _settle(self) -> None:
        """Waits until every job is final (the verifiers end them), then reads from the chain
        what happened to each: challenged by the watcher, audited by the market's draw, and the
        gas of each step."""
        market = self.market(self.deployer_key)
        opened = [r for r in self.records if r.job_id is not None]
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while time.monotonic() < deadline:
            if all(market.job(r.job_id).state.final for r in opened if r.job_id is not None):
                break
            time.sleep(1.0)
        watcher = Account.from_key(self.watcher_key).address
        steps: dict[bytes, str] = {}  # transaction -> the step it was
        for record in opened:
            assert record.job_id is not None
            record.state = market.job(record.job_id).state.name.lower()
            for event in market.events(self.deployed_block, job_id=record.job_id):
                if isinstance(event, TokenChallenged) and event.challenger == watcher:
                    record.challenged = True
                    steps[event.tx_hash] = "challenge"
                elif isinstance(event, TokenAuditDrawn):
                    record.audited = record.audited or event.audited
                    steps[event.tx_hash] = "finalize"
                elif isinstance(event, ReexecutionVoted):
                    steps[event.tx_hash] = "vote"
                elif isinstance(event, TokenJobExpired):
                    steps[event.tx_hash] = "expire"
        for tx, step in steps.items():
            self.gas.setdefault(step, []).append(
                int(self.w3.eth.get_transaction_receipt(HexBytes(tx))["gasUsed"])
            )

    # -- the summary ---------------------------------------------------------------------

    def summary(self, provider_names: dict[str, str] | None = None) -> dict[str, Any]:
        done = [r for r in self.records if r.job_id is not None]
        honest = {name for name, misbehave in DESKS if misbehave is None}
        cheats = {name for name, misbehave in DESKS if misbehave is not None}
        served = {r.desk for r in done if r.desk in honest}
        states = Counter(r.state for r in done)
        ttft = sorted(r.ttft_ms for r in done if r.ttft_ms is not None)
        tps = [r.tokens_per_s for r in done if r.tokens_per_s]
        market = self.market(self.deployer_key)
        owed = {name: market.owed(Account.from_key(key).address) for name, key in self.desk_keys.items()}
        for name, key in self.desk_keys.items():  # pull payments: every desk withdraws its credit
            if owed[name] > 0:
                self.market(key).withdraw()

        def pct(values: list[float], q: float) -> float | None:
            return round(values[min(len(values) - 1, round(q * (len(values) - 1)))], 2) if values else None

        return {
            "requests": len(self.records),
            "opened": len(done),
            "tokens_streamed": sum(r.tokens for r in done),
            "settled": states.get("settled", 0),
            "slashed": states.get("slashed", 0),
            "expired": states.get("expired", 0),
            "challenged": sum(1 for r in done if r.challenged),
            "audited": sum(1 for r in done if r.audited),
            "via_solver": sum(1 for r in done if r.via_solver),
            "price_per1k_mean": round(statistics.mean(r.price_per1k for r in done)) if done else None,
            "tokens_per_s_mean": round(statistics.mean(tps), 1) if tps else None,
            "ttft_ms": {"p50": pct(ttft, 0.5), "p95": pct(ttft, 0.95)},
            "cheats_caught": sorted(
                {r.desk for r in done if r.desk in cheats and r.state in ("slashed", "expired")}
            ),
            "cheats_uncaught": sorted(
                {r.desk for r in done if r.desk in cheats and r.state not in ("slashed", "expired")}
            ),
            "honest_slashed": sum(1 for r in done if r.desk in honest and r.state in ("slashed", "expired")),
            "honest_paid": {name: str(owed[name]) for name in sorted(honest)},  # withdrawn
            # every honest desk that delivered a job was paid (the solver may have given all its
            # requests to the cheaper honest desk)
            "every_honest_paid": bool(served) and all(owed[name] > 0 for name in served),
            "gas": {step: round(statistics.mean(used)) for step, used in sorted(self.gas.items())},
            "records": [
                {
                    "desk": r.desk,
                    "state": r.state,
                    "tokens": r.tokens,
                    "price_per1k": str(r.price_per1k),
                    "ttft_ms": None if r.ttft_ms is None else round(r.ttft_ms, 2),
                    "challenged": r.challenged,
                    "audited": r.audited,
                    "via_solver": r.via_solver,
                    "error": r.error,
                }
                for r in self.records
            ],
        }


def token_problems(summary: dict[str, Any], *, expect_cheats: bool) -> list[str]:
    """What must hold after the token requests (the devnet's exit code)."""
    problems = []
    if summary["opened"] != summary["requests"]:
        problems.append(f"token requests: {summary['requests'] - summary['opened']} never opened")
    if summary["honest_slashed"]:
        problems.append(f"token requests: {summary['honest_slashed']} honest deliveries slashed")
    if not summary["every_honest_paid"]:
        problems.append("token requests: an honest desk was not paid")
    if expect_cheats and summary["cheats_uncaught"]:
        problems.append(f"token requests: cheats not caught: {summary['cheats_uncaught']}")
    if expect_cheats and len(summary["cheats_caught"]) < 2:
        problems.append(f"token requests: expected both cheats caught, got {summary['cheats_caught']}")
    return problems


def token_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """The summary table's rows for the token requests."""
    ttft = summary["ttft_ms"]
    price = summary["price_per1k_mean"]
    rows = [
        ("token requests (opened / tokens streamed)", f"{summary['opened']} / {summary['tokens_streamed']}"),
        ("  price per 1k tokens (mean)", "-" if price is None else f"{price / TOKEN:.8f}"),
        ("  tokens/s per stream (mean)", str(summary["tokens_per_s_mean"])),
        ("  time to first token p50 / p95", f"{ttft['p50']} ms / {ttft['p95']} ms"),
        (
            "  settled / slashed / expired",
            f"{summary['settled']} / [red]{summary['slashed']}[/] / [yellow]{summary['expired']}[/]",
        ),
        ("  challenged / audited", f"{summary['challenged']} / {summary['audited']}"),
        ("  quoted through a solver", str(summary.get("via_solver", 0))),
        ("  cheats caught", ", ".join(summary["cheats_caught"]) or "-"),
        ("  honest deliveries slashed", str(summary["honest_slashed"])),
        ("  every honest desk that served paid", "yes" if summary["every_honest_paid"] else "[red]no[/]"),
    ]
    rows += [(f"  gas {step} (mean)", f"{used:,}") for step, used in summary["gas"].items()]
    return rows
