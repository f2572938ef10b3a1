"""The devnet's token requests: ``TokenMarket``, four token desks, three re-executors, a watcher.

Four provider processes (``tender provider tokens``) serve ``models/lm``: ``tok-a`` and
``tok-b`` honestly, ``tok-cheap`` with the cheaper ``models/lm-cheap`` swapped in, ``tok-trunc``
cutting every sequence in half. A requester buys continuations of short prompts through the
SDK (:func:`tender.client._tokens.request_tokens`: a per-1k RFQ, ``open`` on chain, tokens
streamed as they are made). A watcher re-executes every delivery read back from the chain and
challenges one that fails the δ rule; a share of deliveries is audited by the market's draw;
three staked re-executors on other onnxruntime backends vote every disputed job. A truncated
sequence never gets on chain and the job expires slashed. The summary gets price per 1k,
tokens/s, time to first token and what happened to each desk.
"""

from __future__ import annotations

import asyncio
import logging
import math
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eth_account import Account
from web3 import Web3

from tender.anvil import dev_key
from tender.chain import (
    Deployment,
    JobState,
    TokenMarket,
    TokenModelConfig,
    TxSender,
    deploy_token_market,
)
from tender.devnet._chain import TOKEN, ChainSetup
from tender.devnet._supervisor import Supervisor
from tender.errors import TenderError
from tender.logs import log
from tender.paths import SAMPLE_MODELS

__all__ = ["TOKEN_ACCOUNTS", "TokenPhase", "token_problems", "token_rows"]

logger = logging.getLogger("tender.devnet")

#: Development accounts 14.. (the devnet's Anvil creates them): desks, re-executors, watcher, requester.
FIRST_ACCOUNT = 14
#: How many accounts the token phase uses.
TOKEN_ACCOUNTS = 9
#: The desks: name, misbehaviour (None: honest).
DESKS: tuple[tuple[str, str | None], ...] = (
    ("tok-a", None),
    ("tok-b", None),
    ("tok-cheap", "cheap"),
    ("tok-trunc", "truncate"),
)
PROMPTS = ("Return the", "The default is", "If the file", "Raise ValueError if", "This module provides")
MODEL_ID = Web3.keccak(text="tender devnet lm")
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
    records: list[TokenRecord] = field(default_factory=list)
    gas: dict[str, list[int]] = field(default_factory=dict)
    #: Anvil's block time (None: a block per transaction)
    block_time: float | None = None
    _judging: tuple[list[Any], TokenMarket, list[TokenMarket]] | None = None
    _requests: dict[bytes, Any] = field(default_factory=dict)
    _voted: set[tuple[bytes, int]] = field(default_factory=set)

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
        owner.set_token_model(MODEL_ID, config)
        for key in self.reexecutor_keys:
            owner.set_reexecutor(MODEL_ID, setup.address(key))
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

    def start(self, supervisor: Supervisor, rpc_url: str, ports: list[int]) -> None:
        for (name, misbehave), port in zip(DESKS, ports, strict=True):
            args = [
                "provider",
                "tokens",
                "--model",
                str(SAMPLE_MODELS / "lm"),
                "--model-id",
                "0x" + MODEL_ID.hex(),
                "--rpc",
                rpc_url,
                "--market",
                self.address,
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
            try:
                result = await request_tokens(
                    requester,
                    [self.urls[record.desk]],
                    prompt,
                    max_tokens=48,
                    max_price_per1k=MAX_PRICE_PER1K,
                    model_id=MODEL_ID,
                    temperature=0.8 if sampled else 0.0,
                    top_k=40 if sampled else 0,
                    seed=seed + record.index if sampled else 0,
                    on_token=None,
                )
            except TenderError as exc:
                record.error = f"{type(exc).__name__}: {exc}"
                continue
            record.job_id = result.job_id
            record.price_per1k = result.price_per1k
            record.tokens = len(result.tokens)
            record.ttft_ms = None if result.ttft_s is None else result.ttft_s * 1000
            record.tokens_per_s = result.tokens_per_s
            record.error = result.error
            if record.index == 0:
                text = tokenizer_model.decode(result.tokens).replace("\n", " ")
                self.step(f"tokens streamed to the requester ({record.desk}): {text[:60]!r}…")
            await asyncio.to_thread(self._watch, record, seed)
        await asyncio.to_thread(self._settle)

    # -- the watcher and the re-executors (as soon as each job is delivered) --------------

    def _judges(self) -> tuple[list[Any], TokenMarket, list[TokenMarket]]:
        """The re-execution backends (three onnxruntime settings: one per re-executor, the first
        also the watcher's), the watcher's market and the re-executors' (made once)."""
        if self._judging is None:
            import onnxruntime as ort

            from tender.tokens import TokenModel

            folder = SAMPLE_MODELS / "lm"
            level = ort.GraphOptimizationLevel
            backends = [
                TokenModel.load(folder, optimization=level.ORT_DISABLE_ALL, threads=2),
                TokenModel.load(folder, optimization=level.ORT_ENABLE_EXTENDED, threads=1),
                TokenModel.load(folder, optimization=level.ORT_DISABLE_ALL, threads=1),
            ]
            voters = [self.market(k) for k in self.reexecutor_keys]
            self._judging = (backends, self.market(self.watcher_key), voters)
        return self._judging

    def _watch(self, record: TokenRecord, seed: int) -> None:
        """The watcher re-executes a delivery read back from the chain as soon as its request
        ends and challenges one that fails the δ rule; the re-executors vote on it at once. (Done
        after the whole workload instead, a challenge window of a few blocks closes before the
        watcher comes to the first jobs once blocks are seconds apart.)"""
        from tender.chain import request_hash
        from tender.tokens import Sampling, TokenRequest, audit

        if record.job_id is None:
            return
        backends, watcher, _ = self._judges()
        sampled = record.index % 2 == 1
        sampling = Sampling(temperature=0.8, top_k=40, seed=seed + record.index) if sampled else Sampling()
        prompt = tuple(backends[0].encode(PROMPTS[record.index % len(PROMPTS)]))
        request = TokenRequest(prompt, 48, sampling)
        bound = request_hash(
            prompt, temperature=sampling.temperature, top_k=sampling.top_k, seed=sampling.seed
        )
        if watcher.request_hash_of(record.job_id) != bound:  # not the request the job was opened for
            record.error = "request hash mismatch"
            return
        self._requests[record.job_id] = request
        if watcher.job(record.job_id).state is not JobState.DELIVERED:
            return
        tokens = watcher.delivered_tokens(record.job_id)
        if audit(backends[0], request, tokens).accepted:
            return
        try:
            self._gas("challenge", watcher.challenge(record.job_id))
        except TenderError as exc:  # the window closed (or someone else challenged): finalize decides
            log(logger, "devnet.tokens.challenge_late", job=record.job_id.hex(), error=str(exc))
            return
        record.challenged = True
        self._vote(record)

    def _vote(self, record: TokenRecord) -> None:
        """Every re-executor that has not yet voted on a challenged job re-executes it on its
        own backend and votes."""
        from tender.tokens import audit

        assert record.job_id is not None
        backends, watcher, voters = self._judges()
        tokens = watcher.delivered_tokens(record.job_id)
        for n, (voter, backend) in enumerate(zip(voters, backends, strict=True)):
            if (record.job_id, n) in self._voted or voter.job(record.job_id).state.final:
                continue
            verdict = audit(backend, self._requests[record.job_id], tokens).accepted
            try:
                self._gas("vote", voter.vote(record.job_id, verdict))
            except TenderError as exc:  # the vote window closed: finalize settles it
                log(logger, "devnet.tokens.vote_late", job=record.job_id.hex(), error=str(exc))
            self._voted.add((record.job_id, n))

    def _settle(self) -> None:
        """Votes anything still disputed, then finalizes or expires every job once its windows
        allow (polled: a window still open is tried again a second later)."""
        _, watcher, _ = self._judges()
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            pending = False
            for record in self.records:
                if record.job_id is None:
                    continue
                job = watcher.job(record.job_id)
                if job.state is JobState.CHALLENGED and record.job_id in self._requests:
                    pending = True
                    self._vote(record)
                    self._try_close(watcher, record, job.state)
                elif job.state in (JobState.DELIVERED, JobState.AWARDED, JobState.CHALLENGED):
                    pending = True
                    self._try_close(watcher, record, job.state)
            if not pending:
                break
            time.sleep(1.0)
        for record in self.records:
            if record.job_id is not None:
                record.state = watcher.job(record.job_id).state.name.lower()

    def _try_close(self, watcher: TokenMarket, record: TokenRecord, state: JobState) -> None:
        assert record.job_id is not None
        try:
            if state in (JobState.DELIVERED, JobState.CHALLENGED):
                receipt = watcher.finalize(record.job_id)
                self._gas("finalize", receipt)
                if watcher.audited_in(receipt):
                    record.audited = True
            else:
                self._gas("expire", watcher.expire(record.job_id))
        except TenderError as exc:  # a window still open: tried again next round
            log(logger, "devnet.tokens.not_yet", level=logging.DEBUG, job=record.job_id.hex(), error=str(exc))

    def _gas(self, step: str, receipt: Any) -> None:
        self.gas.setdefault(step, []).append(int(receipt["gasUsed"]))

    # -- the summary ---------------------------------------------------------------------

    def summary(self, provider_names: dict[str, str] | None = None) -> dict[str, Any]:
        done = [r for r in self.records if r.job_id is not None]
        honest = {name for name, misbehave in DESKS if misbehave is None}
        cheats = {name for name, misbehave in DESKS if misbehave is not None}
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
            "every_honest_paid": all(owed[name] > 0 for name in honest),
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
        ("  cheats caught", ", ".join(summary["cheats_caught"]) or "-"),
        ("  honest deliveries slashed", str(summary["honest_slashed"])),
        ("  every honest desk paid", "yes" if summary["every_honest_paid"] else "[red]no[/]"),
    ]
    rows += [(f"  gas {step} (mean)", f"{used:,}") for step, used in summary["gas"].items()]
    return rows
