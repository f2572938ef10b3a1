"""The token verifier: a daemon that keeps ``TokenMarket`` honest (``tender verifier tokens``).

One process serves one token model with one staked key and takes on up to three duties:

- **watch**: re-execute every delivery whose request it holds (``tender.tokens.audit``, the δ
  rule) and ``challenge`` one that fails while the challenge window is open (with a bond);
- **vote**: as one of the model's registered re-executors, re-execute every disputed job (a
  challenge, or an audit the market drew) whose request it holds and ``vote`` the verdict;
- **keep**: ``finalize`` a delivery past its challenge window (the market draws the audit
  then) and a dispute past its vote window, ``expire`` a job nothing was delivered for by ``due``.

**Who sees the request.** The chain holds only ``requestHash`` (the prompt is the requester's
business). A requester that wants the audits' protection discloses its request (prompt ids and
sampling rule) to the model's verifiers, ``POST /v1/tokens/requests``; the SDK does it when
``request_tokens`` is given their URLs. The verifier keeps a disclosure only if it hashes to the
``requestHash`` the job was opened with, and keeps it in SQLite so that a restarted verifier
still votes. A job whose request nobody disclosed cannot be re-executed: its audit or challenge
finds no quorum and settles (the provider is paid; no honest provider is ever slashed for what
the verifiers cannot see). docs/PROTOCOL.md, "Who sees a token request".

::

    POST /v1/tokens/requests {"jobId": "0x…", "prompt": [ids], "temperature": 0.8, "topK": 40, "seed": 7}
      200 {"jobId": …, "stored": true}
      400 bad body · 404 no such job (yet) · 409 another request, another model, or a job that ended
      503 the chain did not answer (nothing kept; send it again)
    GET  /v1/health {"ok": true, "address": …, "modelId": …, "jobs": n, "requests": n, …}

One loop, a pass every ``poll_interval_s``: read the market's new ``TokenJobOpened`` (a
reorg-safe :class:`~tender.chain.EventFeed`), then read each live job of our model and do the
duty its state and the chain clock call for. Every duty is decided from the chain's view of the
job, so a restarted verifier (it rescans from ``from_block``) finds every open duty again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry
from pydantic import Field
from web3.exceptions import Web3Exception

from tender.bounds import HttpLimits, aiohttp_guard, error_response, http_5xx_counter
from tender.chain import EventFeed, JobState, TokenJob, TokenJobOpened, TokenMarket, request_hash
from tender.daemon import Daemon
from tender.errors import ChainError, TenderError
from tender.logs import log
from tender.tokens import Sampling, TokenModel, TokenModelError, TokenRequest, audit
from tender.wire import Bytes32, Wire
from verifier._errors import StoreError
from verifier._relay import read_body, start_site

__all__ = [
    "DisclosureRefused",
    "RequestStore",
    "TokenDisclosure",
    "TokenDuties",
    "TokenVerifier",
    "token_app",
]

logger = logging.getLogger("verifier.tokens")

#: blocks after which a job whose opening the chain no longer has is dropped (a deep reorg)
REORG_DEPTH = 64

REGISTRY = CollectorRegistry()
HTTP_5XX = http_5xx_counter(REGISTRY)


class TokenDisclosure(Wire):
    """``POST /v1/tokens/requests``: a job's request, as the requester asked for it."""

    jobId: Bytes32
    prompt: list[int] = Field(min_length=1, max_length=4096)
    temperature: float = Field(default=0.0, ge=0.0, le=10.0)
    topK: int = Field(default=0, ge=0, lt=2**32)
    seed: int = Field(default=0, ge=0, lt=2**64)


@dataclass(frozen=True)
class TokenDuties:
    """What one verifier does (each can be turned off)."""

    watch: bool = True
    vote: bool = True
    keep: bool = True
    #: a challenge is not sent this close (chain seconds) to the window's end: it would revert
    challenge_margin_s: int = 1


class DisclosureRefused(TenderError):
    """A disclosure the verifier does not keep: ``status`` is the HTTP status it answers."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        super().__init__(message)


class RequestStore:
    """The disclosed requests, by job id (SQLite; ``None`` keeps them in memory)."""

    def __init__(self, path: Path | None = None) -> None:
        try:
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path) if path else ":memory:", check_same_thread=False)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS requests (job_id BLOB PRIMARY KEY, prompt TEXT NOT NULL,"
                " temperature REAL NOT NULL, top_k INTEGER NOT NULL, seed TEXT NOT NULL)"
            )
            self._db.commit()
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot open the token verifier's store: {exc}") from exc
        self._lock = threading.Lock()

    def put(self, job_id: bytes, prompt: tuple[int, ...], sampling: Sampling) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO requests VALUES (?, ?, ?, ?, ?)",
                (job_id, json.dumps(prompt), sampling.temperature, sampling.top_k, str(sampling.seed)),
            )

    def get(self, job_id: bytes) -> tuple[tuple[int, ...], Sampling] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT prompt, temperature, top_k, seed FROM requests WHERE job_id = ?", (job_id,)
            ).fetchone()
        if row is None:
            return None
        return tuple(json.loads(row[0])), Sampling(temperature=row[1], top_k=row[2], seed=int(row[3]))

    def forget(self, job_id: bytes) -> None:
        with self._lock, self._db:
            self._db.execute("DELETE FROM requests WHERE job_id = ?", (job_id,))

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM requests").fetchone()[0])

    def close(self) -> None:
        self._db.close()


@dataclass
class _Live:
    """A job of our model not yet final, as the verifier follows it."""

    opened: TokenJobOpened
    tokens: list[int] | None = None
    judged: bool | None = None  # our own verdict on the delivery (None: not judged yet)
    done: set[str] = field(default_factory=set)  # duties sent (challenge, vote)


@dataclass
class TokenVerifier(Daemon):
    """The daemon (module docstring). ``market`` sends as the verifier's key."""

    market: TokenMarket
    model: TokenModel
    model_id: bytes
    store: RequestStore = field(default_factory=RequestStore)
    duties: TokenDuties = field(default_factory=TokenDuties)
    listen: str | None = None
    from_block: int = 0
    poll_interval_s: float = 0.5
    name: str = "verifier.tokens"
    live: dict[bytes, _Live] = field(default_factory=dict)
    #: what this verifier did, by duty (challenge, vote, finalize, expire)
    actions: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        Daemon.__init__(self)
        self._feed = EventFeed(
            self.market.w3,
            [self.market.address],
            names=["TokenJobOpened"],
            start_block=self.from_block,
            decoder=self.market.log_decoder,
        )
        self._runner: web.AppRunner | None = None
        self._reexecutor = False
        self._window = 0  # the market's challenge window (read at setup)
        self._failure: str | None = None  # why the last pass failed (None: it did not)

    @property
    def address(self) -> str:
        sender = self.market.sender
        assert sender is not None
        return sender.address

    # -- the daemon's lifecycle ------------------------------------------------------------

    async def setup(self) -> None:
        # the model we re-execute is the one the registry pins for the id (else every verdict is noise)
        await asyncio.to_thread(self.market.check_model, self.model_id, self.model.path)
        self._reexecutor = await asyncio.to_thread(self.market.is_reexecutor, self.model_id, self.address)
        self._window = await asyncio.to_thread(self.market.challenge_window)
        if self.duties.vote and not self._reexecutor:
            log(
                logger,
                "tokens.not_reexecutor",
                level=logging.WARNING,
                address=self.address,
                model_id="0x" + self.model_id.hex(),
            )
        if self.listen:
            self._runner = await start_site(token_app(self), self.listen)
        log(
            logger,
            "tokens.started",
            address=self.address,
            model_id="0x" + self.model_id.hex(),
            reexecutor=self._reexecutor,
            listen=self.listen,
        )

    def tasks(self) -> list[Coroutine[Any, Any, None]]:
        return [self._follow()]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        self.store.close()

    async def _follow(self) -> None:
        while not self.stopping.is_set():
            try:
                await asyncio.to_thread(self.step)
                self._failure = None
            except (TenderError, OSError, Web3Exception) as exc:  # an RPC outage: the next pass tries again
                self._failure = f"chain unreachable: {exc}"
                log(logger, "tokens.pass_failed", level=logging.WARNING, error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), self.poll_interval_s)

    # -- disclosure ------------------------------------------------------------------------

    def opened(self, job_id: bytes) -> TokenJobOpened:
        """The job's ``TokenJobOpened`` (followed, or read from the chain)."""
        live = self.live.get(job_id)
        if live is not None:
            return live.opened
        for event in self.market.events(self.from_block, names=["TokenJobOpened"], job_id=job_id):
            if isinstance(event, TokenJobOpened):
                return event
        raise DisclosureRefused(404, "unknown_job", f"no job 0x{job_id.hex()} on this market (yet)")

    def disclose(self, job_id: bytes, prompt: tuple[int, ...], sampling: Sampling) -> None:
        """Keep a job's request if it is the one the job was opened with (else refused)."""
        opened = self.opened(job_id)
        if job_id not in self.live and self.market.job(job_id).state.final:
            raise DisclosureRefused(409, "final", f"job 0x{job_id.hex()} has ended: nothing to re-execute")
        if opened.model_id != self.model_id:
            raise DisclosureRefused(
                409, "other_model", f"job 0x{job_id.hex()} is not for this verifier's model"
            )
        bound = request_hash(
            prompt, temperature=sampling.temperature, top_k=sampling.top_k, seed=sampling.seed
        )
        if bound != opened.request_hash:
            raise DisclosureRefused(
                409, "request_mismatch", "the request does not hash to the job's requestHash"
            )
        self.store.put(job_id, prompt, sampling)
        log(logger, "tokens.disclosed", job=job_id.hex())

    # -- one pass --------------------------------------------------------------------------

    def step(self) -> None:
        """Read new jobs, then do each live job's duty."""
        self._feed.step(self._opened)
        if not self.live:
            return
        block = self.market.w3.eth.get_block("latest")
        now, number = int(block["timestamp"]), int(block["number"])
        for job_id in list(self.live):
            job = self.market.job(job_id)
            opened_at = self.live[job_id].opened.block_number
            if job.state.final or (job.state is JobState.NONE and number > opened_at + REORG_DEPTH):
                del self.live[job_id]  # ended, or its opening was reorged out for good
                self.store.forget(job_id)
                continue
            try:
                self._duty(job_id, job, now, number)
            except TenderError as exc:  # a window that closed, someone faster: the next pass re-reads
                log(logger, "tokens.duty_failed", level=logging.INFO, job=job_id.hex(), error=str(exc))

    def _opened(self, events: list[Any]) -> None:
        for event in events:
            if isinstance(event, TokenJobOpened) and event.model_id == self.model_id:
                self.live.setdefault(event.job_id, _Live(event))

    def _duty(self, job_id: bytes, job: TokenJob, now: int, number: int) -> None:
        entry = self.live[job_id]
        if job.state is JobState.AWARDED:
            if self.duties.keep and now > job.due:
                self._send("expire", job_id, self.market.expire)
        elif job.state is JobState.DELIVERED:
            closes = job.delivered_at + self._window
            if (
                self.duties.watch
                and "challenge" not in entry.done
                and now <= closes - self.duties.challenge_margin_s
                and self._verdict(job_id, job) is False
            ):
                entry.done.add("challenge")
                self._send("challenge", job_id, self.market.challenge)
            if self.duties.keep and now > closes:
                self._send("finalize", job_id, self.market.finalize)
        elif job.state is JobState.CHALLENGED:
            mine = {job.provider, job.requester, job.challenger}
            if (
                self.duties.vote
                and self._reexecutor
                and "vote" not in entry.done
                and self.address not in mine
                and now <= job.vote_deadline
            ):
                verdict = self._verdict(job_id, job)
                if verdict is not None:
                    if not self.market.has_voted(job_id, self.address):
                        # marked done only once sent: a vote whose transaction failed (gas estimated
                        # before another vote in its block made it the deciding, slashing one) is
                        # sent again by the next pass while the vote window is open
                        self._send("vote", job_id, lambda j: self.market.vote(j, verdict))
                    entry.done.add("vote")
            if self.duties.keep and now > job.vote_deadline:
                self._send("finalize", job_id, self.market.finalize)

    def _verdict(self, job_id: bytes, job: TokenJob) -> bool | None:
        """Our re-execution's verdict on the delivery (None: we do not hold the request)."""
        entry = self.live[job_id]
        if entry.judged is not None:
            return entry.judged
        held = self.store.get(job_id)
        if held is None:
            return None
        prompt, sampling = held
        if entry.tokens is None:
            entry.tokens = self.market.delivered_tokens(job_id, entry.opened.block_number)
        verdict = audit(self.model, TokenRequest(prompt, job.max_tokens, sampling), entry.tokens)
        entry.judged = verdict.accepted
        log(logger, "tokens.judged", job=job_id.hex(), faithful=verdict.accepted, reason=verdict.reason)
        return entry.judged

    def _send(self, duty: str, job_id: bytes, call: Any) -> None:
        receipt = call(job_id)
        self.actions[duty] = self.actions.get(duty, 0) + 1
        log(logger, f"tokens.{duty}", job=job_id.hex(), gas=int(receipt["gasUsed"]))

    def health(self) -> dict[str, Any]:
        return {
            "ok": self._failure is None,
            "reasons": [] if self._failure is None else [self._failure],
            "address": self.address,
            "modelId": "0x" + self.model_id.hex(),
            "reexecutor": self._reexecutor,
            "jobs": len(self.live),
            "requests": len(self.store),
            "actions": dict(self.actions),
        }


def token_app(verifier: TokenVerifier, limits: HttpLimits | None = None) -> web.Application:
    """The verifier's HTTP endpoint (module docstring)."""
    limits = limits or HttpLimits(max_body_bytes=128 << 10)

    async def disclose(request: web.Request) -> web.Response:
        body = await read_body(request, TokenDisclosure)
        if isinstance(body, web.Response):
            return body
        if any(not 0 <= t < 2**32 for t in body.prompt):
            return error_response(400, "invalid", "token ids are uint32", "prompt")
        job_id = bytes.fromhex(body.jobId[2:])
        try:
            sampling = Sampling(temperature=body.temperature, top_k=body.topK, seed=body.seed)
        except TokenModelError as exc:
            return error_response(400, "invalid", str(exc), "temperature")
        try:
            await asyncio.to_thread(verifier.disclose, job_id, tuple(body.prompt), sampling)
        except DisclosureRefused as exc:
            return error_response(exc.status, exc.code, str(exc))
        except ChainError as exc:  # the chain cannot tell us the job now: the requester may retry
            return error_response(503, "chain_unavailable", str(exc))
        return web.json_response({"jobId": body.jobId, "stored": True})

    async def health(_: web.Request) -> web.Response:
        body = verifier.health()
        return web.json_response(body, status=200 if body["ok"] else 503)

    app = web.Application(
        client_max_size=limits.max_body_bytes, middlewares=[aiohttp_guard(limits, HTTP_5XX)]
    )
    app.router.add_post("/v1/tokens/requests", disclose)
    app.router.add_get("/v1/health", health)
    return app
