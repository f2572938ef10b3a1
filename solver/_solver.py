"""The solver daemon: feed -> quotes -> policy -> bid/fill -> award -> input -> settlement.

One :class:`Solver` per key. Its tasks (run by ``tender.daemon.supervise``):

* ``follow``: a :class:`tender.chain.AsyncEventFeed` over the followed markets, with the
  :class:`~solver._store.Store` as its cursor; each batch of typed events is stored in the same
  SQLite transaction as the cursor (intents, bids, awards, ends), and a reorg rolls the store
  back and wakes the affected jobs;
* ``schedule``: one asyncio task per open job (:meth:`Solver._run_job`), restarted from the
  store after a crash. A job task only acts on what the store and the chain say *now*, so it
  can be stopped and re-run at any point: a bid is sent once (its signed transaction is in the
  store before it is broadcast), an award/expire is sent only when the chain still needs it.

How far the solver pursues a job (:class:`~solver._store.Pursuit`; where the job stands on
chain is a :class:`tender.chain.JobState`, read from the market's record or its events)::

    seen --quotes+policy--> bid --window over, ours best--> (award) --> won --input--> sent --> settled
      |                      \\--outbid / not awarded to us--> lost                   \\--deadline passed--> expired
      |                                                                               \\--challenged, unproven--> slashed
      \\--dutch: fill when price covers floor--> filling --> won / lost
      \\--no quote covers it--> passed
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import time
from collections.abc import Coroutine, Sequence
from typing import Any

from eth_account import Account
from hexbytes import HexBytes
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.exceptions import BlockNotFound, Web3RPCError
from web3.types import BlockIdentifier

from solver._api import IntentApi, erc1271_accepts_on_chain
from solver._config import SolverSection
from solver._errors import JobError
from solver._metrics import DECISIONS, FEED_BLOCK, JOBS, REORGS
from solver._policy import AuctionState, BidAction, Economics, FillAction, Terms, decide
from solver._quotes import TRANSPORT_ERRORS, FanOut, make_transport
from solver._rfq import desk_for
from solver._store import JobRow, Pursuit, Store, TxRow, TxState
from solver._token_rfq import TokenRfq
from solver._txs import TxManager
from tender.chain import (
    TOKEN_MARKET_KEY,
    AsyncEventFeed,
    AsyncMarket,
    Awarded,
    BidPlaced,
    Deployment,
    Event,
    Expired,
    FailedOver,
    FeedCursor,
    IntentPosted,
    Job,
    JobState,
    JobView,
    Market,
    Refunded,
    Settled,
    Slashed,
    async_connect,
    connect,
    tender_decoder,
)
from tender.config import ChainSection
from tender.daemon import Daemon
from tender.errors import ChainError, ContractRevert, FeedError, TransactionFailed
from tender.intents import AuctionType, Bid, Intent
from tender.logs import log
from tender.wire import IntentWire, JobInput, QuoteRequest

__all__ = ["Solver"]

logger = logging.getLogger("solver")

_DATA_PREFIX = b"data:application/json,"

#: What an RPC outage raises (sync and async web3 alike): retried, never fatal.
_RPC_ERRORS: tuple[type[Exception], ...] = (ChainError, Web3RPCError, *TRANSPORT_ERRORS)

#: What a job task survives (logged, then retried): chain, provider and network trouble.
_JOB_ERRORS: tuple[type[Exception], ...] = (ChainError, JobError, Web3RPCError, *TRANSPORT_ERRORS)

#: Reverts that waiting cures: the chain's clock has not reached the time yet (the estimate ran
#: on a block a little behind, or a reorg set the clock back). Any other revert of an award,
#: expire or finalize is permanent: retrying it cannot succeed, so the attempt ends there.
_WAITING_REVERTS = frozenset({"AuctionNotEnded", "NotExpired", "ChallengeWindowOpen"})

#: Awards that may fail on the chain that stands (a clock a reorg set back) before the solver
#: leaves the job to the keeper (the verifier agent awards or refunds what is left open).
_AWARD_TRIES = 3

#: The market events the solver follows: intents, bids (to know when it is outbid), awards and
#: failovers (to know when a job is its own), and the events that end a job.
FOLLOWED: tuple[type[Event], ...] = (
    IntentPosted,
    BidPlaced,
    Awarded,
    FailedOver,
    Settled,
    Expired,
    Refunded,
    Slashed,
)

#: What came of a job the solver still pursued, by the chain state that ended it. A refund ends
#: a job nobody served (never awarded, or declined with no runner-up): for the solver, lost.
ENDED: dict[JobState, Pursuit] = {
    JobState.SETTLED: Pursuit.SETTLED,
    JobState.REFUNDED: Pursuit.LOST,
    JobState.EXPIRED: Pursuit.EXPIRED,
    JobState.SLASHED: Pursuit.SLASHED,
}


def permanent_revert(exc: ContractRevert | TransactionFailed) -> ContractRevert | None:
    """The revert behind ``exc`` if it is one that waiting cannot change, else ``None``.

    A failed send is permanent when the market refused it with a custom error other than a
    clock one (:data:`_WAITING_REVERTS`): ``DeadlinePassed``, ``InvalidState``, ``NoBids``...
    A transaction that failed without a decoded reason (e.g. dropped) is not."""
    revert = exc if isinstance(exc, ContractRevert) else exc.revert
    if revert is None or revert.name in _WAITING_REVERTS:
        return None
    return revert


def _hex(value: bytes | str) -> str:
    return HexBytes(value).to_0x_hex()


def decode_input(location: bytes) -> Any:
    """The job input from an intent's ``inputLocation``: a ``data:application/json,`` URI or
    inline JSON bytes; ``None`` for a remote URI (fetched by :meth:`Solver._fetch_input`)."""
    if location.startswith(_DATA_PREFIX):
        return json.loads(location[len(_DATA_PREFIX) :])
    if location[:1] in (b"[", b"{"):
        return json.loads(location)
    return None


def _answer_state(answer: bytes) -> str | None:
    """The ``state`` of a provider's ``POST /jobs`` answer (``None`` if it has none)."""
    try:
        data = json.loads(answer)
    except ValueError:
        return None
    return str(data.get("state")) if isinstance(data, dict) and "state" in data else None


class Solver(Daemon):
    """The solver bot.

    Args:
        section: the ``[solver]`` config.
        chain: the ``[chain]`` config (RPC, deployment, key source).
        key: the signing key (tests); by default ``chain.private_key()``.
        deployment: the addresses (tests); by default read from ``chain.deployment``.
    """

    name = "solver"

    def __init__(
        self,
        section: SolverSection,
        chain: ChainSection,
        *,
        key: str | None = None,
        deployment: Deployment | None = None,
    ) -> None:
        super().__init__()
        self.section = section
        self.chain = chain
        self._key = key
        self.deployment = deployment
        self.wake = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        #: (job id, purpose) -> the permanent revert that ended that send: never tried again
        #: (by this process; a restarted solver tries once more).
        self._refused: dict[tuple[str, str], ContractRevert] = {}
        self.api: IntentApi | None = None
        #: why the last read of the chain failed (``None``: the last read succeeded)
        self.chain_error: str | None = None
        self._chain_answered_at = time.monotonic()
        #: job id -> failures in a row of its task (the retry pause doubles with each, bounded)
        self._failures: dict[str, int] = {}

    # -- lifecycle ----------------------------------------------------------------------

    def _token_rfq(self) -> TokenRfq | None:
        """Token quotes over ``token_desks``, when there are some and the deployment has a TokenMarket."""
        market = self.deployment.extra.get(TOKEN_MARKET_KEY) if self.deployment else None
        if not self.section.token_desks or not market:
            return None
        return TokenRfq(
            self.section.token_desks, self.fanout.transport, chain_id=self.chain_id, market=str(market)
        )

    async def setup(self) -> None:
        s = self.section
        self.w3 = async_connect(self.chain.rpc_url, timeout=10)
        try:
            self.chain_id = int(await self.w3.eth.chain_id)
        except (*TRANSPORT_ERRORS, ValueError) as exc:  # type: ignore[misc]
            raise ChainError(f"no JSON-RPC node answers at {self.chain.rpc_url}: {exc!r}") from exc
        genesis = _hex((await self.w3.eth.get_block(0))["hash"])
        if self.deployment is None:
            self.deployment = Deployment.load(self.chain_id, path=self.chain.deployment)
        self.store = Store(s.store)
        self.store.check_chain(self.chain_id, genesis)
        self.account = Account.from_key(self._key or self.chain.private_key())
        self.address: str = self.account.address
        # Views and calldata through tender.chain's Market (sync web3 in worker threads); the
        # solver signs and sends its own transactions (TxManager: persisted before broadcast).
        views = connect(self.chain.rpc_url, timeout=10)
        self.markets: dict[str, AsyncMarket] = {}
        for name in s.markets:
            auction = AuctionType[name.upper()]
            market = AsyncMarket(Market(views, self.deployment.market(name), auction=auction))
            self.markets[market.address.lower()] = market
        self.txm = TxManager(
            self.w3, self.account, self.store, chain_id=self.chain_id, gas=s.gas, decoder=tender_decoder()
        )
        self.fanout = FanOut(
            s.providers,
            make_transport(s.http_backend, max_connections=s.max_connections),
            timeout=s.quote_timeout_s,
            breaker=s.breaker,
        )
        cursor: FeedCursor = self.store  # the feed keeps its place in the store (checked by mypy)
        self.feed = AsyncEventFeed(
            self.w3,
            [m.address for m in self.markets.values()],
            names=[e.__name__ for e in FOLLOWED],
            cursor=cursor,
            confirmations=s.confirmations,
            reorg_depth=s.reorg_depth,
            start_block=s.start_block if s.start_block is not None else self.deployment.block,
            chunk=s.log_chunk,
        )
        await self.txm.recover(self._tx_wanted)
        if s.listen:
            self.api = IntentApi(
                chain_id=self.chain_id,
                markets=[m.address for m in self.markets.values()],
                accept=self.accept_signed,
                status=self.status,
                health=self.health,
                limits=s.http_limits(),
                contract_accepts=functools.partial(erc1271_accepts_on_chain, self.w3),
                rfq=desk_for(self.fanout, chain_id=self.chain_id, markets=self.deployment.markets),
                token_rfq=self._token_rfq(),
            )
            await self.api.start(s.listen)
        if s.metrics_port is not None:
            from prometheus_client import start_http_server

            from solver._metrics import REGISTRY

            start_http_server(s.metrics_port, registry=REGISTRY)
        log(
            logger,
            "solver.ready",
            address=self.address,
            chain_id=self.chain_id,
            cursor=self.store.cursor,
            open_jobs=len(self.store.open_jobs()),
            providers=len(s.providers),
        )

    def tasks(self) -> list[Coroutine[Any, Any, None]]:
        return [self._follow(), self._schedule()]

    async def stop(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        if self.api is not None:
            await self.api.stop()
        if hasattr(self, "fanout"):
            await self.fanout.aclose()
        if hasattr(self, "w3"):
            await self.w3.provider.disconnect()
        if hasattr(self, "store"):
            self.store.close()

    def health(self) -> tuple[bool, dict[str, object]]:
        """Whether the solver can do its work, and why not: the chain unreachable (the feed's
        last read failed), a transaction pending for more than twice ``gas.stuck_after_s``
        (replacement did not help), or the feed more than ``max_feed_lag_blocks`` behind."""
        reasons: list[str] = []
        if self.chain_error is not None:
            reasons.append(f"chain unreachable: {self.chain_error}")
        lag = max(0, self.feed.head - self.section.confirmations - self.feed.position)
        if lag > self.section.max_feed_lag_blocks:
            reasons.append(f"feed {lag} blocks behind the head")
        now = time.time()
        stuck = self.txm.stuck(2 * self.section.gas.stuck_after_s)
        if stuck:
            reasons.append(
                f"{len(stuck)} transaction(s) not mined after {2 * self.section.gas.stuck_after_s:g} s"
            )
        body: dict[str, object] = {
            "ok": not reasons,
            "reasons": reasons,
            "chain": {
                "reachable": self.chain_error is None,
                "error": self.chain_error,
                "lastAnswerAgoS": round(time.monotonic() - self._chain_answered_at, 3),
            },
            "feed": {"position": self.feed.position, "head": self.feed.head, "lagBlocks": lag},
            "txs": {
                "stuck": [
                    {
                        "nonce": t.nonce,
                        "purpose": t.purpose,
                        "jobId": t.job_id,
                        "hash": t.hash,
                        "ageS": round(now - (t.sent or t.created), 1),
                    }
                    for t in stuck
                ]
            },
        }
        return not reasons, body

    def status(self) -> dict[str, object]:
        return {
            "health": self.health()[1],
            "address": self.address,
            "chainId": self.chain_id,
            "block": self.store.cursor,
            "jobs": self.store.counts(),
            "providers": {
                p.name: {
                    "failures": self.fanout.breakers[p.name].failures,
                    "available": self.fanout.breakers[p.name].available(time.monotonic()),
                }
                for p in self.fanout.providers
            },
        }

    # -- the feed -----------------------------------------------------------------------

    async def _follow(self) -> None:
        failures = 0
        while not self.stopping.is_set():
            try:
                processed = await self.feed.step(self._on_events, self._on_rollback)
                await self.txm.heal()  # what a reorg took back before the feed read its blocks
            except FeedError:
                raise  # a reorg deeper than the store remembers: the solver cannot go on safely
            except _RPC_ERRORS as exc:
                # An RPC outage: retried with a bounded backoff; /health says so meanwhile.
                failures += 1
                if self.chain_error is None:
                    log(logger, "chain.unreachable", level=logging.WARNING, error=repr(exc))
                self.chain_error = repr(exc)[:300]
                await self._sleep(min(self.section.poll_interval_s * 2**failures, 5.0))
                continue
            self._chain_answered_at = time.monotonic()
            if self.chain_error is not None:
                await self._chain_back(failures)
            failures = 0
            if processed:
                FEED_BLOCK.set(self.feed.position)
                self.wake.set()
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), self.section.poll_interval_s)

    async def _chain_back(self, failures: int) -> None:
        """The chain answers again after an outage: settle what was mined meanwhile, broadcast
        again what never got out (the same bytes), read the nonce anew, wake every job."""
        try:
            await self.txm.recover(self._tx_wanted)
        except _RPC_ERRORS as exc:
            log(logger, "chain.recover_failed", level=logging.WARNING, error=repr(exc))
            return  # not back for good yet: the next step tries again
        log(logger, "chain.back", failed_reads=failures, was=self.chain_error)
        self.chain_error = None
        self.wake.set()

    def _on_events(self, events: list[Event]) -> None:
        """Store what a batch of market events says (inside the feed's transaction)."""
        for event in events:
            market = self.markets.get(event.address.lower())
            if market is None:
                continue
            if isinstance(event, IntentPosted):
                if market.auction == AuctionType.REVERSE:
                    market.sync.remember(event)  # its terms, for our bid and award
                self.store.add_job(
                    _hex(event.job_id),
                    market=market.address,
                    auction=market.auction.name.lower(),
                    intent=event.intent.to_json(),
                    posted_block=event.block_number,
                )
            elif isinstance(event, BidPlaced):
                # Who placed the latest bid for the provider we chose (a provider's new bid
                # replaces its old one, so another solver's bid for it means we were outbid).
                row = self.store.job(_hex(event.job_id))
                if row is not None and (
                    row.provider is None or row.provider.lower() == event.provider.lower()
                ):
                    self.store.update_job(
                        row.job_id, last_bidder=event.solver, last_bid_block=event.block_number
                    )
            elif isinstance(event, Awarded | FailedOver):
                self._on_award(event)
            elif isinstance(event, Settled | Expired | Refunded | Slashed):
                row = self.store.job(_hex(event.job_id))
                ended = ENDED.get(JobView(event.job_id).apply(event).state)
                if row is not None and row.pursuit.open and ended is not None:
                    self.store.update_job(row.job_id, pursuit=ended, final_block=event.block_number)
                    JOBS.labels(ended.value).inc()

    def _on_award(self, event: Awarded | FailedOver) -> None:
        """An award, or a failover to the runner-up: who serves the job now, at what price."""
        row = self.store.job(_hex(event.job_id))
        if row is None:
            return
        winner = event.provider if isinstance(event, Awarded) else event.to
        fields: dict[str, Any] = {}
        if self._ours_again(row, winner):
            # A job we had lost came back to our provider: awarded later to our runner-up
            # bid, or failed over to it. It is ours to hand over again.
            fields = {
                "pursuit": Pursuit.WON,
                "input_sent": False,
                "note": f"{event.name}: awarded to our bid after all",
            }
            log(logger, "job.won", job_id=row.job_id, market=row.auction, note=fields["note"])
            JOBS.labels(Pursuit.WON.value).inc()
        # A failover restarts the clock: its provider deadline is read from the market later.
        deadline = event.provider_deadline if isinstance(event, Awarded) else None
        self.store.update_job(
            row.job_id,
            awarded_block=event.block_number,
            winner=winner,
            award_price=event.price,
            provider_deadline=deadline,
            **fields,
        )

    def _ours_again(self, row: JobRow, winner: str) -> bool:
        """Whether an award (or failover) to ``winner`` gives back a reverse job we had lost:
        our provider's standing bid is ours (we placed it and nobody bid for that provider
        since) and the bid was mined."""
        return (
            row.pursuit == Pursuit.LOST
            and row.auction == AuctionType.REVERSE.name.lower()
            and (row.provider or "").lower() == winner.lower()
            and (row.last_bidder is None or row.last_bidder.lower() == self.address.lower())
            and any(t.state == TxState.MINED for t in self.store.job_txs(row.job_id, "bid"))
        )

    def _on_rollback(self, fork: int, job_ids: Sequence[Any]) -> None:
        REORGS.inc()
        self.txm.on_rollback(fork)
        for job in job_ids:
            for purpose in ("award", "expire", "finalize"):  # the chain that refused them is gone
                self._refused.pop((job, purpose), None)
            task = self._tasks.pop(job, None)
            if task is not None:
                task.cancel()
        asyncio.get_running_loop().create_task(self.txm.recover(self._tx_wanted))
        self.wake.set()

    def _tx_wanted(self, row: TxRow) -> bool:
        """Whether a pending transaction still makes sense (else it is cancelled)."""
        if row.job_id is None:
            return True
        job = self.store.job(row.job_id)
        if job is None or job.pursuit == Pursuit.DROPPED:
            return False
        if row.purpose in ("bid", "fill"):
            return job.pursuit in (Pursuit.BID, Pursuit.FILLING, Pursuit.SEEN)
        return job.pursuit.open

    # -- scheduling ---------------------------------------------------------------------

    async def _schedule(self) -> None:
        while not self.stopping.is_set():
            self.wake.clear()
            for job in self.store.open_jobs():
                task = self._tasks.get(job.job_id)
                if task is None or task.done():
                    self._tasks[job.job_id] = asyncio.create_task(self._guard(job.job_id), name=job.job_id)
            for job_id in [j for j, t in self._tasks.items() if t.done()]:
                self._tasks.pop(job_id, None)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), 1.0)

    async def _guard(self, job_id: str) -> None:
        """Run a job; an error is logged and the job retried on the next wake (not fatal)."""
        try:
            await self._run_job(job_id)
            self._failures.pop(job_id, None)
        except asyncio.CancelledError:
            raise
        except _JOB_ERRORS as exc:
            # An RPC outage or a provider that does not answer: the job is run again, the pause
            # doubling with each failure in a row (bounded), until the chain says it is over.
            failures = self._failures[job_id] = self._failures.get(job_id, 0) + 1
            log(logger, "job.error", level=logging.WARNING, job_id=job_id, error=repr(exc), failures=failures)
            await self._sleep(min(0.5 * 2 ** (failures - 1), 8.0))
            self.wake.set()

    async def accept_signed(self, intent: Intent, signature: bytes, market: str, job_id: str) -> bool:
        """A checked signed intent from ``POST /intents``: remember it and schedule it."""
        chosen = self.markets[market.lower()]
        with self.store.transaction():
            new = self.store.add_job(
                job_id,
                market=chosen.address,
                auction=chosen.auction.name.lower(),
                intent=intent.to_json(),
                posted_block=None,
                signature=_hex(signature),
            )
        self.wake.set()
        return new

    # -- one job ------------------------------------------------------------------------

    @staticmethod
    def _until(deadline: int, now: int) -> float:
        """A chain-clock ``deadline`` (``now`` being the chain's time) as unix seconds on this
        machine's clock, at least a few seconds ahead: how long RPC errors are retried for it."""
        return time.time() + max(5, deadline - now)

    async def _now(self) -> int:
        """The chain's clock: the latest block's time. Deadlines are judged by it, never by the
        local clock, so the solver cannot expire or award early (a chain whose clock a reorg
        set back, or a quiet devnet that mines no blocks, simply makes it wait)."""
        return int((await self.w3.eth.get_block("latest"))["timestamp"])

    async def _next_block_time(self, latest: int) -> int:
        """The time the chain's next block will carry, as the node builds it (its pending
        block, against which the award's gas is estimated); ``latest`` from a node that has
        none (the award then waits for a block past the auction, as before)."""
        try:
            return int((await self.w3.eth.get_block("pending"))["timestamp"])
        except (Web3RPCError, BlockNotFound, KeyError, ValueError):
            return latest

    async def _gas_cost(self, gas_units: int) -> int:
        price = await self.txm.gas_price()
        return math.ceil(gas_units * price * self.section.gas.token_per_wei)

    async def _run_job(self, job_id: str) -> None:
        while not self.stopping.is_set():
            row = self.store.job(job_id)
            if row is None or not row.pursuit.open:
                return
            market = self.markets[row.market.lower()]
            if row.pursuit == Pursuit.SEEN:
                await self._decide(row, market)
            elif row.pursuit == Pursuit.BID:
                await self._await_award(row, market)
            elif row.pursuit == Pursuit.FILLING:
                await self._await_fill(row, market)
            elif row.pursuit == Pursuit.WON:
                await self._hand_over(row)
            elif row.pursuit == Pursuit.SENT:
                await self._follow_job(row, market)

    def _set(self, row: JobRow, pursuit: Pursuit, **fields: Any) -> None:
        with self.store.transaction():
            self.store.update_job(row.job_id, pursuit=pursuit, **fields)
        shown: dict[str, Any] = {k: str(v) for k, v in fields.items()}
        log(logger, f"job.{pursuit.value}", job_id=row.job_id, market=row.auction, **shown)
        if pursuit in (Pursuit.WON, Pursuit.LOST, Pursuit.PASSED):
            JOBS.labels(pursuit.value).inc()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), max(0.0, seconds))

    async def _decide(self, row: JobRow, market: AsyncMarket) -> None:
        intent = Intent.from_json(row.intent)
        job = HexBytes(row.job_id)
        mine = [t for t in self.store.job_txs(row.job_id) if t.purpose in ("bid", "fill")]
        if any(t.state != TxState.DROPPED for t in mine):
            # A bid or fill was signed before a restart: never a second one.
            self._set(row, Pursuit.BID if market.auction == AuctionType.REVERSE else Pursuit.FILLING)
            return
        on_chain = row.posted_block is not None
        chain_job = await market.job(bytes(job))
        if not on_chain and chain_job.exists:
            on_chain = True  # posted by someone else; the feed will record the block
        if on_chain and chain_job.state is not JobState.OPEN:
            self._set(row, Pursuit.LOST, note=f"chain state {chain_job.state.name} before we acted")
            return
        now = await self._now()
        if on_chain:
            auction_end, deadline = chain_job.auction_end, chain_job.deadline
        else:
            if intent.expiry and intent.expiry <= now:
                self._set(row, Pursuit.DROPPED, note="signed intent expired before it was posted")
                return
            auction_end = now + intent.auction_window
            deadline = intent.deadline
            if deadline <= auction_end:
                self._set(row, Pursuit.DROPPED, note="deadline too close to post the intent and award it")
                return
        if on_chain and now >= auction_end:
            self._set(row, Pursuit.LOST, note="auction window closed before we decided")
            return
        request = QuoteRequest(
            jobId=row.job_id,
            market=market.address,
            chainId=self.chain_id,
            intent=IntentWire.model_validate(intent.to_json()),
        )
        quotes, answered = await self.fanout.gather_round(request)
        if not answered and self.fanout.providers:
            # No provider could be reached (killed, restarting, its breaker open): that says
            # nothing about the job. An accepted intent is never given up for it: the job task
            # is run again (bounded backoff) until the intent expires or its auction closes.
            raise JobError(f"no provider answered for job {row.job_id}")
        gas = self.section.gas
        units = gas.bid_gas + gas.award_gas if market.auction == AuctionType.REVERSE else gas.fill_gas
        if not on_chain:
            units += gas.submit_gas
        econ = Economics(
            gas_cost=await self._gas_cost(units),
            margin_bps=self.section.margin_bps,
            min_margin=self.section.min_margin,
            latency_buffer_s=self.section.latency_buffer_s,
        )
        # Latency is promised from award to delivery and must fit before the deadline: the
        # reverse market counts it from the auction's end, a Dutch fill from now.
        start = auction_end if market.auction == AuctionType.REVERSE else now + 2
        terms = Terms(market.auction, intent.max_price, intent.price_weight_bps, max(1, deadline - start))
        offers = [q.offer for q in quotes]
        if market.auction == AuctionType.REVERSE:
            best = await market.best_bid(bytes(job)) if on_chain else None
            best_price, best_latency = (best.price, best.latency) if best and best.price else (None, None)
            action = decide(
                terms, offers, econ, AuctionState(now, best_price=best_price, best_latency=best_latency)
            )
        else:
            price = await market.current_price(bytes(job)) if on_chain else intent.start_price
            action = decide(terms, offers, econ, AuctionState(now, current_price=price))
        DECISIONS.labels(type(action).__name__).inc()
        if isinstance(action, BidAction):
            if not await self._ensure_posted(row, market, intent):
                return
            self._set(row, Pursuit.BID, **action.pursuit())
            try:
                bid = Bid(action.provider, action.price, action.latency)
                until = self._until(auction_end, now)  # RPC errors retried while the bid can count
                tx = await self.txm.send(
                    await market.bid_fn(bytes(job), bid),
                    purpose="bid",
                    job_id=row.job_id,
                    until=until,
                )  # gas estimated: a bid already beaten reverts here, for free
                await self.txm.wait(tx, until=until)
            except (ContractRevert, TransactionFailed) as exc:
                if not (await market.job(bytes(job))).exists:
                    # A reorg took the intent back between its relay and our bid: decide again
                    # (the relay is sent again), never give the accepted intent up for it.
                    self._set(row, Pursuit.SEEN, note=f"intent gone from the chain before the bid: {exc}")
                    await self._sleep(self.section.poll_interval_s)
                    return
                revert = exc if isinstance(exc, ContractRevert) else exc.revert
                if revert is not None and revert.name == "TermsMismatch":
                    # a reorg re-posted the intent in another block: its terms moved with it
                    await market.forget(bytes(job))
                if revert is not None and revert.name == "InsufficientStake":
                    # a bid reserves max(minStake, maxPrice * stakeMultiple) of the provider's free
                    # stake: waiting does not free it, so the job is not tried again
                    note = (
                        f"bid refused: the provider's free stake cannot cover the bid's reservation ({exc})"
                    )
                else:
                    note = f"bid refused: {exc}"
                self._set(row, Pursuit.LOST, note=note)
        elif isinstance(action, FillAction):
            await self._fill(row, market, intent, action)
        elif action.wait_for_price is not None and market.auction == AuctionType.DUTCH:
            if not on_chain:
                if not await self._ensure_posted(row, market, intent):
                    return
                return
            wait = self._dutch_wait(chain_job, action.wait_for_price, now)
            if wait is None:
                self._set(row, Pursuit.PASSED, note="the price never covers our floor")
            else:
                await self._sleep(min(wait, 2.0))
        else:
            self._set(row, Pursuit.PASSED, note=action.reason)

    @staticmethod
    def _dutch_wait(chain_job: Job, floor: int, now: int) -> float | None:
        """Seconds until a linear Dutch price (start -> max over the window) reaches ``floor``."""
        start, top = chain_job.start_price, chain_job.max_price
        posted, end = chain_job.posted_at, chain_job.auction_end
        if floor > top:
            return None
        if top <= start or end <= posted:
            return 0.0
        at = posted + (floor - start) * (end - posted) / (top - start)
        if at >= end:
            return None
        return max(0.0, at - now)

    async def _ensure_posted(self, row: JobRow, market: AsyncMarket, intent: Intent) -> bool:
        """Make sure a signed intent is on chain (relaying it ourselves if allowed)."""
        if row.posted_block is not None:
            return True
        chain_job = await market.job(bytes(HexBytes(row.job_id)))
        if chain_job.exists:
            return chain_job.state is JobState.OPEN
        if not self.section.submit_signed or row.signature is None:
            await self._sleep(self.section.poll_interval_s)
            return False
        until = self._until(intent.expiry or intent.deadline, await self._now())
        # the job is not on chain: a relay we hold as mined was taken back by a reorg
        await self.txm.reconfirm(self.store.job_txs(row.job_id, "submit"), until)
        submits = [
            t
            for t in self.store.job_txs(row.job_id, "submit")
            if t.state not in (TxState.DROPPED, TxState.REPLACED)
        ]
        try:
            if submits and submits[-1].state in (TxState.SIGNED, TxState.SENT):
                # Signed before an RPC outage or a restart: broadcast again (never signed anew)
                # and waited for; an outage raises ChainError and the job task runs again.
                await self.txm.wait(submits[-1], until=until)
                return (await market.job(bytes(HexBytes(row.job_id)))).state is JobState.OPEN
            if submits:  # mined (or failed): the chain says where the job stands
                await self._sleep(self.section.poll_interval_s)
                return (await market.job(bytes(HexBytes(row.job_id)))).state is JobState.OPEN
            tx = await self.txm.send(
                market.sync.fn.submitSigned(intent.to_abi(), bytes(HexBytes(row.signature))),
                purpose="submit",
                job_id=row.job_id,
                until=until,
            )
            await self.txm.wait(tx, until=until)
        except (ContractRevert, TransactionFailed) as exc:
            # Another solver relayed it first (or the requester lacks funds): re-read the chain.
            log(logger, "job.submit_failed", job_id=row.job_id, error=str(exc))
            return (await market.job(bytes(HexBytes(row.job_id)))).state is JobState.OPEN
        return True

    async def _fill(self, row: JobRow, market: AsyncMarket, intent: Intent, action: FillAction) -> None:
        if not await self._ensure_posted(row, market, intent):
            return
        self._set(row, Pursuit.FILLING, **action.pursuit())
        job = bytes(HexBytes(row.job_id))
        try:
            provider = Web3.to_checksum_address(action.provider)
            tx = await self.txm.send(
                market.sync.fn.fill(job, provider, action.latency), purpose="fill", job_id=row.job_id
            )
        except (ContractRevert, TransactionFailed) as exc:
            self._set(row, Pursuit.LOST, note=f"fill refused: {exc}")
            return
        await self._await_fill(self.store.job(row.job_id) or row, market, tx)

    async def _await_fill(self, row: JobRow, market: AsyncMarket, tx: TxRow | None = None) -> None:
        fills = [t for t in self.store.job_txs(row.job_id, "fill") if t.state != TxState.DROPPED]
        if tx is None and fills:
            tx = fills[-1]
        if tx is None:
            self._set(row, Pursuit.SEEN)
            return
        # a fill held as mined whose receipt a reorg took back is sent again (the same bytes)
        await self.txm.reconfirm([tx])
        try:
            await self.txm.wait(tx)
        except TransactionFailed as exc:
            self._set(row, Pursuit.LOST, note=f"fill failed: {exc}")
            return
        job = bytes(HexBytes(row.job_id))
        chain_job = await market.job(job)
        if chain_job.provider.lower() == (row.provider or "").lower():
            await self._won(row, market, chain_job)
        else:
            self._set(row, Pursuit.LOST, note="filled by another")

    async def _won(self, row: JobRow, market: AsyncMarket, chain_job: Job) -> None:
        """``row``'s job is awarded to its provider (by our bid or fill)."""
        deadline = await market.provider_deadline(bytes(HexBytes(row.job_id)))
        self._set(
            row,
            Pursuit.WON,
            winner=chain_job.provider,
            award_price=chain_job.price,
            provider_deadline=deadline,
        )

    async def _await_award(self, row: JobRow, market: AsyncMarket) -> None:
        job = bytes(HexBytes(row.job_id))
        bids = [t for t in self.store.job_txs(row.job_id, "bid") if t.state != TxState.DROPPED]
        if not bids:
            self._set(row, Pursuit.SEEN)  # the bid never got out: decide again
            return
        if bids[-1].state in (TxState.SIGNED, TxState.SENT):
            try:
                await self.txm.wait(bids[-1])
            except TransactionFailed as exc:
                self._set(row, Pursuit.LOST, note=f"bid failed: {exc}")
                return
        bid_block = self.store.job_txs(row.job_id, "bid")[-1].block or 0
        if (self.store.cursor or 0) < bid_block:
            # Judge who bid last only once the feed has read our own bid's block.
            await self._sleep(self.section.poll_interval_s)
            return
        chain_job = await market.job(job)
        if chain_job.state is JobState.OPEN:
            if row.last_bidder and row.last_bidder.lower() != self.address.lower():
                self._set(row, Pursuit.LOST, note="outbid")
                return
            now = await self._now()
            failed = [t for t in self.store.job_txs(row.job_id, "award") if t.state == TxState.FAILED]
            if now >= chain_job.deadline and len(failed) >= _AWARD_TRIES:
                # We no longer try, and nobody can award it any more: its escrow is refundable
                # by anyone (the keeper, the requester's SDK).
                self._set(row, Pursuit.LOST, note="deadline passed with the job unawarded")
                return
            if await self.txm.reconfirm(self.store.job_txs(row.job_id, "bid")):
                # A reorg took our mined bid back before the feed read its block (so no rollback
                # said so): it is on its way again, and awaited as any pending bid.
                return
            # The award goes out once the chain's next block closes the auction, so it is mined
            # in that block rather than one later (on 2 s blocks a whole block sooner); the market
            # refuses an award mined before auctionEnd in any case (and the estimate, made
            # against that block, refuses it here for free).
            early = now < chain_job.auction_end
            if early and (nxt := await self._next_block_time(now)) < chain_job.auction_end:
                await self._sleep(min(chain_job.auction_end - nxt, 2.0) + 0.05)
                return
            refused = await self._award(
                row, market, job, until=self._until(chain_job.deadline, now), next_block=early
            )
            if refused is not None and (await market.job(job)).state is JobState.OPEN:
                # Nobody can award it any more (e.g. DeadlinePassed): we leave the job. Its
                # escrow is refundable by anyone; the requester's SDK refunds it itself.
                self._set(row, Pursuit.LOST, note=f"award refused for good: {refused}")
                return
            await self._sleep(self.section.poll_interval_s)
            return
        if not chain_job.exists:
            intent = Intent.from_json(row.intent)
            expired = bool(intent.expiry) and intent.expiry <= await self._now()
            if row.signature is not None and self.section.submit_signed and not expired:
                # A reorg took back the intent we relayed: it is relayed again (the signed
                # transaction broadcast again, or a new one), then the award awaited as before.
                if row.posted_block is not None:  # the feed never saw the reorg
                    with self.store.transaction():
                        self.store.update_job(row.job_id, posted_block=None)
                    row = self.store.job(row.job_id) or row
                await self._ensure_posted(row, market, intent)
                return
            self._set(row, Pursuit.DROPPED, note="intent no longer on chain")
            return
        ours = chain_job.provider.lower() == (row.provider or "").lower() and (
            row.last_bidder is None or row.last_bidder.lower() == self.address.lower()
        )
        if ours and not chain_job.state.final:
            await self._won(row, market, chain_job)
        elif ours:
            self._set(row, ENDED[chain_job.state], note=f"chain state {chain_job.state.name}")
        else:
            self._set(
                row, Pursuit.LOST, note=f"awarded to {chain_job.provider}, state {chain_job.state.name}"
            )

    async def _award(
        self,
        row: JobRow,
        market: AsyncMarket,
        job: bytes,
        *,
        until: float | None = None,
        next_block: bool = False,
    ) -> ContractRevert | None:
        """Close our auction: one award at a time; a failed one (e.g. mined on a chain whose
        clock a reorg set back) is retried, at most :data:`_AWARD_TRIES` failures on the chain
        that stands; an award a reorg took back is sent again (``TxManager.reconfirm``).
        Returns the revert that refused the award for good (``DeadlinePassed``...), if one did. RPC errors are retried
        until ``until`` (unix seconds: the job's deadline). ``next_block``: the latest block is
        still inside the auction; the gas is estimated against the next block."""
        # The job is still open on chain, so an award we hold as mined was taken back by a reorg
        # (seen by the feed or not): the chain decides, the receipt is sent again.
        await self.txm.reconfirm(self.store.job_txs(row.job_id, "award"), until)
        awards = self.store.job_txs(row.job_id, "award")
        pending = [t for t in awards if t.state in (TxState.SIGNED, TxState.SENT)]
        if pending:
            try:
                await self.txm.wait(pending[-1], until=until)
            except TransactionFailed as exc:
                return self._refusal(row, "award", exc)
            return None
        failed = [t for t in awards if t.state == TxState.FAILED]
        if any(t.state == TxState.MINED for t in awards) or len(failed) >= _AWARD_TRIES:
            # mined (the node's view of the job lags its receipt), or failed on this chain as
            # often as we try: the keeper (the verifier) awards or refunds it
            return None
        # Gas is estimated: an award that would revert (already awarded by someone else, or
        # past the deadline) costs nothing, and a permanent refusal is not tried again.
        return await self._send_job_tx(
            row,
            "award",
            await market.award_fn(job),
            until=until,
            estimate_at="pending" if next_block else None,
        )

    async def _send_job_tx(
        self,
        row: JobRow,
        purpose: str,
        tx: ContractFunction,
        *,
        until: float | None = None,
        estimate_at: BlockIdentifier | None = None,
    ) -> ContractRevert | None:
        """Send an ``award``/``expire``/``finalize`` for ``row`` and wait for it. Returns the
        permanent revert that refused it (now or on an earlier try: it is not sent again), or
        ``None`` (mined, or refused for a reason that waiting may cure). An RPC outage raises
        :class:`~tender.errors.ChainError` (after retrying until ``until``): the job task is
        run again, and a transaction already signed is broadcast again, never signed anew."""
        refused = self._refused.get((row.job_id, purpose))
        if refused is not None:
            return refused
        try:
            sent = await self.txm.send(
                tx, purpose=purpose, job_id=row.job_id, until=until, estimate_at=estimate_at
            )
            await self.txm.wait(sent, until=until)
        except (ContractRevert, TransactionFailed) as exc:
            return self._refusal(row, purpose, exc)
        return None

    def _refusal(
        self, row: JobRow, purpose: str, exc: ContractRevert | TransactionFailed
    ) -> ContractRevert | None:
        """Log a refused ``purpose`` transaction; remember it when it is permanent."""
        revert = permanent_revert(exc)
        log(logger, f"job.{purpose}_failed", job_id=row.job_id, error=str(exc), permanent=revert is not None)
        if revert is not None:
            self._refused[(row.job_id, purpose)] = revert
        return revert

    async def _fetch_input(self, location: bytes) -> Any:
        data = decode_input(location)
        if data is not None:
            return data
        url = location.decode(errors="replace")
        if not url.startswith(("http://", "https://")):
            raise JobError(f"unsupported inputLocation {url[:60]!r}")
        status, body = await self.fanout.transport.get(url, time_limit=10)
        if status != 200:
            raise JobError(f"input at {url} answered HTTP {status}")
        return json.loads(body)

    async def _hand_over(self, row: JobRow) -> None:
        """Send the won job's input to its provider (POST /jobs)."""
        provider = self.fanout.by_address(row.provider or "")
        if provider is None:
            raise JobError(f"won job {row.job_id} names provider {row.provider} that is not configured")
        intent = Intent.from_json(row.intent)
        data = await self._fetch_input(intent.input_location)
        body = JobInput(jobId=row.job_id, market=row.market, input=data).model_dump_json().encode()
        status, answer = await self.fanout.transport.post(
            provider.url.rstrip("/") + "/jobs", body, time_limit=10
        )
        if status >= 300 and status != 409:  # 409: it holds another input, checked against the commitment
            # A provider declines on chain an input that does not match its commitment: the job
            # then failed over or was refunded, and is no longer ours to hand over.
            market = self.markets[row.market.lower()]
            chain_job = await market.job(bytes(HexBytes(row.job_id)))
            if chain_job.state is JobState.OPEN and row.provider:
                # A reorg took the award back (the provider answers "not awarded"): await the
                # award again, as after any rollback, instead of giving the job up.
                again = Pursuit.BID if market.auction == AuctionType.REVERSE else Pursuit.FILLING
                self._set(row, again, note="award reorged out: awaiting it again")
                return
            if (
                chain_job.state is not JobState.AWARDED
                or chain_job.provider.lower() != provider.address.lower()
            ):
                self._set(
                    row,
                    Pursuit.LOST,
                    note=f"{provider.name} refused it (HTTP {status}), job "
                    f"{chain_job.state.name} for {chain_job.provider}: {answer[:200]!r}",
                )
                return
            raise JobError(f"{provider.name} refused job {row.job_id}: HTTP {status} {answer[:200]!r}")
        if _answer_state(answer) == "declined":
            self._set(row, Pursuit.LOST, note=f"{provider.name} declined it on chain")
            return
        self._set(row, Pursuit.SENT, input_sent=True)

    async def _follow_job(self, row: JobRow, market: AsyncMarket) -> None:
        """Wait for settlement; expire the job once its provider is past the deadline."""
        job = bytes(HexBytes(row.job_id))
        chain_job = await market.job(job)
        if chain_job.state.final:
            self._set(row, ENDED[chain_job.state], note=f"chain state {chain_job.state.name}")
            return
        if chain_job.state in (JobState.OPEN, JobState.NONE):
            # A reorg took the award (or the intent) back, whether or not the feed saw it: the
            # chain decides. The award is awaited, or sent, again (and the intent relayed again).
            again = Pursuit.BID if market.auction == AuctionType.REVERSE else Pursuit.FILLING
            self._set(row, again, input_sent=False, note=f"award reorged out: job {chain_job.state.name}")
            return
        if chain_job.state is JobState.AWARDED and chain_job.provider.lower() != (row.provider or "").lower():
            self._set(row, Pursuit.LOST, note="re-awarded to another provider (failover)")
            return
        now = await self._now()
        dispute_end = chain_job.dispute_end
        grace = self.section.finalize_grace_s
        late = chain_job.state is JobState.DELIVERED and dispute_end and now > dispute_end + grace
        # Backstop: the provider normally finalizes its own optimistic delivery.
        if late and not self.store.job_txs(row.job_id, "finalize"):
            await self._send_job_tx(row, "finalize", market.sync.fn.finalize(job))
        # Expire only after the provider's deadline (the market's rule, read from it), and only once.
        if chain_job.state is JobState.AWARDED and not self.store.job_txs(row.job_id, "expire"):
            deadline = await market.provider_deadline(job) or row.provider_deadline or 0
            if deadline and now > deadline:
                await self._send_job_tx(row, "expire", market.sync.fn.expire(job))
        await self._sleep(self.section.job_poll_s)
