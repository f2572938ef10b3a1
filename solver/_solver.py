"""The solver daemon: feed -> quotes -> policy -> bid/fill -> award -> input -> settlement.

One :class:`Solver` per key. Its tasks (run by ``tender.daemon.supervise``):

* ``follow``: the :class:`~solver._feed.LogFeed` over the followed markets; each batch of
  logs is stored in the same SQLite transaction as the cursor (intents, bids, awards,
  terminal states), and a reorg rolls the store back and wakes the affected jobs;
* ``schedule``: one asyncio task per open job (:meth:`Solver._run_job`), restarted from the
  store after a crash. A job task only acts on what the store and the chain say *now*, so it
  can be stopped and re-run at any point: a bid is sent once (its signed transaction is in the
  store before it is broadcast), an award/expire is sent only when the chain still needs it.

Job life (``JobState``)::

    seen --quotes+policy--> bid --window over, ours best--> (award) --> won --input--> sent --> settled
      |                      \\--outbid / not awarded to us--> lost                   \\--deadline passed--> expired
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
from collections.abc import Coroutine
from typing import Any

from eth_account import Account
from hexbytes import HexBytes
from web3.types import TxParams

from solver._api import IntentApi, erc1271_accepts_on_chain
from solver._config import SolverSection
from solver._errors import JobError
from solver._feed import LogFeed
from solver._market import FINAL_STATES, MarketGateway, step_of
from solver._metrics import DECISIONS, JOBS
from solver._policy import AuctionState, BidAction, Economics, FillAction, Terms, decide
from solver._quotes import TRANSPORT_ERRORS, FanOut, make_transport
from solver._store import JobRow, JobState, Store, TxRow, TxState
from solver._txs import TxManager
from tender.chain import Deployment, async_connect, tender_decoder
from tender.config import ChainSection
from tender.daemon import Daemon
from tender.errors import ChainError, ContractRevert, TransactionFailed
from tender.intents import AuctionType, Intent
from tender.logs import log
from tender.wire import IntentWire, JobInput, QuoteRequest

__all__ = ["Solver"]

logger = logging.getLogger("solver")

_DATA_PREFIX = b"data:application/json,"

#: What a job task survives (logged, then retried): chain, provider and network trouble.
_JOB_ERRORS: tuple[type[Exception], ...] = (ChainError, JobError, *TRANSPORT_ERRORS)

#: Reverts that waiting cures: the chain's clock has not reached the time yet (the estimate ran
#: on a block a little behind, or a reorg set the clock back). Any other revert of an award,
#: expire or finalize is permanent: retrying it cannot succeed, so the attempt ends there.
_WAITING_REVERTS = frozenset({"AuctionNotEnded", "NotExpired", "ChallengeWindowOpen"})


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

    # -- lifecycle ----------------------------------------------------------------------

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
        self.store = Store(s.db_path)
        self.store.check_chain(self.chain_id, genesis)
        self.account = Account.from_key(self._key or self.chain.private_key())
        self.address: str = self.account.address
        self.markets: dict[str, MarketGateway] = {}
        for name in s.markets:
            gateway = MarketGateway(self.w3, self.deployment.market(name), AuctionType[name.upper()])
            self.markets[gateway.address.lower()] = gateway
        self.txm = TxManager(
            self.w3, self.account, self.store, chain_id=self.chain_id, gas=s.gas, decoder=tender_decoder()
        )
        self.fanout = FanOut(
            s.providers,
            make_transport(s.http_backend, max_connections=s.max_connections),
            timeout=s.quote_timeout_s,
            breaker=s.breaker,
        )
        self.feed = LogFeed(
            self.w3,
            self.store,
            addresses=[m.address for m in self.markets.values()],
            topics=None,
            handler=self._on_logs,
            on_rollback=self._on_rollback,
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
                limits=s.http_limits(),
                contract_accepts=functools.partial(erc1271_accepts_on_chain, self.w3),
            )
            await self.api.start(s.listen)
        if s.metrics_port is not None:
            from prometheus_client import start_http_server

            from solver._metrics import REGISTRY

            start_http_server(s.metrics_port, registry=REGISTRY)
        log(logger, "solver.ready", address=self.address, chain_id=self.chain_id, cursor=self.store.cursor,
            open_jobs=len(self.store.open_jobs()), providers=len(s.providers))  # fmt: skip

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

    def status(self) -> dict[str, object]:
        return {
            "address": self.address,
            "chainId": self.chain_id,
            "block": self.store.cursor,
            "jobs": self.store.counts(),
            "providers": {
                p.name: {"failures": self.fanout.breakers[p.name].failures,
                         "available": self.fanout.breakers[p.name].available(time.monotonic())}
                for p in self.fanout.providers
            },
        }  # fmt: skip

    # -- the feed -----------------------------------------------------------------------

    async def _follow(self) -> None:
        while not self.stopping.is_set():
            try:
                processed = await self.feed.step()
            except (ChainError, OSError, TimeoutError) as exc:
                log(logger, "feed.error", level=logging.WARNING, error=repr(exc))
                processed = 0
            if processed:
                self.wake.set()
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), self.section.poll_interval_s)

    def _on_logs(self, logs: list[Any]) -> None:
        """Store what a batch of logs says (inside the feed's transaction)."""
        for raw in logs:
            market = self.markets.get(str(raw["address"]).lower())
            decoded = market.decode(raw) if market else None
            if market is None or decoded is None:
                continue
            step = step_of(decoded.name)
            job = decoded.args.get("job_id")
            if step is None or not isinstance(job, bytes):
                continue
            job_hex = _hex(job)
            block = decoded.block_number
            if step == "posted":
                intent_value = decoded.args.get("intent")
                if intent_value is None:
                    continue
                intent = Intent.from_abi(intent_value)
                self.store.add_job(job_hex, market=market.address, auction=market.name, intent=intent.to_json(),
                                   posted_block=block)  # fmt: skip
            elif step == "bid":
                # Who placed the latest bid for the provider we chose (a provider's new bid
                # replaces its old one, so another solver's bid for it means we were outbid).
                row = self.store.job(job_hex)
                provider = str(decoded.args.get("provider", ""))
                if row is not None and (row.provider is None or row.provider.lower() == provider.lower()):
                    self.store.update_job(
                        job_hex, last_bidder=decoded.args.get("solver"), last_bid_block=block
                    )
            elif step == "awarded":
                winner = decoded.args.get("provider") or decoded.args.get("to")
                row = self.store.job(job_hex)
                if row is not None:
                    fields: dict[str, Any] = {}
                    if self._ours_again(row, winner):
                        # A job we had lost came back to our provider: awarded later to our
                        # runner-up bid, or failed over to it. It is ours to hand over again.
                        fields = {"state": JobState.WON, "input_sent": False,
                                  "note": f"{decoded.name}: awarded to our bid after all"}  # fmt: skip
                        log(logger, "job.won", job_id=job_hex, market=row.auction, note=fields["note"])
                        JOBS.labels(JobState.WON.value).inc()
                    self.store.update_job(job_hex, awarded_block=block, winner=winner,
                                          award_price=decoded.args.get("price"),
                                          deadline_at=decoded.args.get("provider_deadline"), **fields)  # fmt: skip
            else:
                row = self.store.job(job_hex)
                if row is not None and row.state.open:
                    final = {
                        "settled": JobState.SETTLED,
                        "expired": JobState.EXPIRED,
                        "refunded": JobState.LOST,
                    }
                    if step in final:
                        self.store.update_job(job_hex, state=final[step], final_block=block)
                        JOBS.labels(step).inc()

    def _ours_again(self, row: JobRow, winner: object) -> bool:
        """Whether an award (or failover) to ``winner`` gives back a reverse job we had lost:
        our provider's standing bid is ours (we placed it and nobody bid for that provider
        since) and the bid was mined."""
        return (
            row.state == JobState.LOST
            and row.auction == AuctionType.REVERSE.name.lower()
            and isinstance(winner, str)
            and (row.provider or "").lower() == winner.lower()
            and (row.last_bidder is None or row.last_bidder.lower() == self.address.lower())
            and any(t.state == TxState.MINED for t in self.store.job_txs(row.job_id, "bid"))
        )

    def _on_rollback(self, fork: int, job_ids: list[str]) -> None:
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
        if job is None or job.state == JobState.DROPPED:
            return False
        if row.purpose in ("bid", "fill"):
            return job.state in (JobState.BID, JobState.FILLING, JobState.SEEN)
        return job.state.open

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
        except asyncio.CancelledError:
            raise
        except _JOB_ERRORS as exc:
            log(logger, "job.error", level=logging.WARNING, job_id=job_id, error=repr(exc))
            await asyncio.sleep(0.5)
            self.wake.set()

    async def accept_signed(self, intent: Intent, signature: bytes, market: str, job_id: str) -> bool:
        """A checked signed intent from ``POST /intents``: remember it and schedule it."""
        gateway = self.markets[market.lower()]
        with self.store.transaction():
            new = self.store.add_job(job_id, market=gateway.address, auction=gateway.name,
                                     intent=intent.to_json(), posted_block=None, signature=_hex(signature))  # fmt: skip
        self.wake.set()
        return new

    # -- one job ------------------------------------------------------------------------

    async def _now(self) -> int:
        """The chain's clock: the latest block's time. Deadlines are judged by it, never by the
        local clock, so the solver cannot expire or award early (a chain whose clock a reorg
        set back, or a quiet devnet that mines no blocks, simply makes it wait)."""
        return int((await self.w3.eth.get_block("latest"))["timestamp"])

    async def _gas_cost(self, gas_units: int) -> int:
        price = await self.txm.gas_price()
        return math.ceil(gas_units * price * self.section.gas.token_per_wei)

    async def _run_job(self, job_id: str) -> None:
        while not self.stopping.is_set():
            row = self.store.job(job_id)
            if row is None or not row.state.open:
                return
            market = self.markets[row.market.lower()]
            if row.state == JobState.SEEN:
                await self._decide(row, market)
            elif row.state == JobState.BID:
                await self._await_award(row, market)
            elif row.state == JobState.FILLING:
                await self._await_fill(row, market)
            elif row.state == JobState.WON:
                await self._hand_over(row)
            elif row.state == JobState.SENT:
                await self._follow_job(row, market)

    def _set(self, row: JobRow, state: JobState, **fields: Any) -> None:
        with self.store.transaction():
            self.store.update_job(row.job_id, state=state, **fields)
        shown: dict[str, Any] = {k: str(v) for k, v in fields.items()}
        log(logger, f"job.{state.value}", job_id=row.job_id, market=row.auction, **shown)
        if state in (JobState.WON, JobState.LOST, JobState.PASSED):
            JOBS.labels(state.value).inc()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), max(0.0, seconds))

    async def _decide(self, row: JobRow, market: MarketGateway) -> None:
        intent = Intent.from_json(row.intent)
        job = HexBytes(row.job_id)
        mine = [t for t in self.store.job_txs(row.job_id) if t.purpose in ("bid", "fill")]
        if any(t.state != TxState.DROPPED for t in mine):
            # A bid or fill was signed before a restart: never a second one.
            self._set(row, JobState.BID if market.auction == AuctionType.REVERSE else JobState.FILLING)
            return
        on_chain = row.posted_block is not None
        chain_job = await market.job(bytes(job))
        if not on_chain and chain_job.state != "none":
            on_chain = True  # posted by someone else; the feed will record the block
        if on_chain and chain_job.state != "open":
            self._set(row, JobState.LOST, note=f"chain state {chain_job.state} before we acted")
            return
        now = await self._now()
        if on_chain:
            auction_end = int(chain_job.get("auction_end", default=0))
            deadline = int(chain_job.get("deadline", default=intent.deadline))
        else:
            if intent.expiry and intent.expiry <= now:
                self._set(row, JobState.DROPPED, note="signed intent expired before it was posted")
                return
            auction_end = now + intent.auction_window
            deadline = intent.deadline
        if on_chain and now >= auction_end:
            self._set(row, JobState.LOST, note="auction window closed before we decided")
            return
        request = QuoteRequest(jobId=row.job_id, market=market.address, chainId=self.chain_id,
                               intent=IntentWire.model_validate(intent.to_json()))  # fmt: skip
        quotes = await self.fanout.collect(request)
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
            best_price, best_latency = await self._standing_best(market, bytes(job), chain_job)
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
            self._set(row, JobState.BID, provider=action.provider, price=action.price, latency=action.latency,
                      cost=action.cost)  # fmt: skip
            try:
                tx = await self.txm.send(
                    market.bid_tx(bytes(job), action.provider, action.price, action.latency),
                    purpose="bid",
                    job_id=row.job_id,
                )  # fmt: skip (gas estimated: a bid already beaten reverts here, for free)
                await self.txm.wait(tx)
            except (ContractRevert, TransactionFailed) as exc:
                self._set(row, JobState.LOST, note=f"bid refused: {exc}")
        elif isinstance(action, FillAction):
            await self._fill(row, market, intent, action)
        elif action.wait_for_price is not None and market.auction == AuctionType.DUTCH:
            if not on_chain:
                if not await self._ensure_posted(row, market, intent):
                    return
                return
            wait = self._dutch_wait(intent, chain_job, action.wait_for_price, now)
            if wait is None:
                self._set(row, JobState.PASSED, note="the price never covers our floor")
            else:
                await self._sleep(min(wait, 2.0))
        else:
            self._set(row, JobState.PASSED, note=action.reason)

    def _dutch_wait(self, intent: Intent, chain_job: Any, floor: int, now: int) -> float | None:
        """Seconds until a linear Dutch price (start -> max over the window) reaches ``floor``."""
        start = int(chain_job.get("start_price", default=intent.start_price))
        top = int(chain_job.get("max_price", default=intent.max_price))
        posted = int(chain_job.get("posted_at", default=now))
        end = int(chain_job.get("auction_end", default=posted + intent.auction_window))
        if floor > top:
            return None
        if top <= start or end <= posted:
            return 0.0
        at = posted + (floor - start) * (end - posted) / (top - start)
        if at >= end:
            return None
        return max(0.0, at - now)

    async def _standing_best(
        self, market: MarketGateway, job: bytes, chain_job: Any
    ) -> tuple[int | None, int | None]:
        """The standing best bid's (price, latency), or (None, None)."""
        for view in ("bestBid", "bids"):
            if market.has(view):
                best = await market.view(view, job)
                price, latency = int(best.get("price", 0)), int(best.get("latency", 0))
                return (price, latency) if price else (None, None)
        price = int(chain_job.get("price", default=0))
        latency = int(chain_job.get("latency", default=0))
        return (price, latency) if price else (None, None)

    async def _ensure_posted(self, row: JobRow, market: MarketGateway, intent: Intent) -> bool:
        """Make sure a signed intent is on chain (relaying it ourselves if allowed)."""
        if row.posted_block is not None:
            return True
        chain_job = await market.job(bytes(HexBytes(row.job_id)))
        if chain_job.state != "none":
            return chain_job.state == "open"
        if not self.section.submit_signed or row.signature is None:
            await self._sleep(self.section.poll_interval_s)
            return False
        if self.store.job_txs(row.job_id, "submit"):
            await self._sleep(self.section.poll_interval_s)
            return (await market.job(bytes(HexBytes(row.job_id)))).state == "open"
        try:
            tx = await self.txm.send(
                market.submit_signed_tx(intent, bytes(HexBytes(row.signature))),
                purpose="submit",
                job_id=row.job_id,
            )
            await self.txm.wait(tx)
        except (ContractRevert, TransactionFailed) as exc:
            # Another solver relayed it first (or the requester lacks funds): re-read the chain.
            log(logger, "job.submit_failed", job_id=row.job_id, error=str(exc))
            return (await market.job(bytes(HexBytes(row.job_id)))).state == "open"
        return True

    async def _fill(self, row: JobRow, market: MarketGateway, intent: Intent, action: FillAction) -> None:
        if not await self._ensure_posted(row, market, intent):
            return
        self._set(row, JobState.FILLING, provider=action.provider, price=action.price, latency=action.latency,
                  cost=action.cost)  # fmt: skip
        job = bytes(HexBytes(row.job_id))
        try:
            tx = await self.txm.send(market.fill_tx(job, action.provider, action.latency), purpose="fill",
                                     job_id=row.job_id)  # fmt: skip
        except (ContractRevert, TransactionFailed) as exc:
            self._set(row, JobState.LOST, note=f"fill refused: {exc}")
            return
        await self._await_fill(self.store.job(row.job_id) or row, market, tx)

    async def _await_fill(self, row: JobRow, market: MarketGateway, tx: TxRow | None = None) -> None:
        fills = [t for t in self.store.job_txs(row.job_id, "fill") if t.state != TxState.DROPPED]
        if tx is None and fills:
            tx = fills[-1]
        if tx is None:
            self._set(row, JobState.SEEN)
            return
        try:
            await self.txm.wait(tx)
        except TransactionFailed as exc:
            self._set(row, JobState.LOST, note=f"fill failed: {exc}")
            return
        chain_job = await market.job(bytes(HexBytes(row.job_id)))
        if chain_job.provider and chain_job.provider.lower() == (row.provider or "").lower():
            self._set(row, JobState.WON, winner=chain_job.provider, award_price=chain_job.price,
                      deadline_at=self._deadline(chain_job))  # fmt: skip
        else:
            self._set(row, JobState.LOST, note="filled by another")

    @staticmethod
    def _deadline(chain_job: Any) -> int:
        awarded = int(chain_job.get("awarded_at", default=0))
        latency = int(chain_job.get("latency", default=0))
        deadline = int(chain_job.get("deadline", default=0))
        return min(deadline, awarded + latency) if awarded and latency else deadline

    async def _await_award(self, row: JobRow, market: MarketGateway) -> None:
        job = bytes(HexBytes(row.job_id))
        bids = [t for t in self.store.job_txs(row.job_id, "bid") if t.state != TxState.DROPPED]
        if not bids:
            self._set(row, JobState.SEEN)  # the bid never got out: decide again
            return
        if bids[-1].state in (TxState.SIGNED, TxState.SENT):
            try:
                await self.txm.wait(bids[-1])
            except TransactionFailed as exc:
                self._set(row, JobState.LOST, note=f"bid failed: {exc}")
                return
        bid_block = self.store.job_txs(row.job_id, "bid")[-1].block or 0
        if (self.store.cursor or 0) < bid_block:
            # Judge who bid last only once the feed has read our own bid's block.
            await self._sleep(self.section.poll_interval_s)
            return
        chain_job = await market.job(job)
        if chain_job.state == "open":
            if row.last_bidder and row.last_bidder.lower() != self.address.lower():
                self._set(row, JobState.LOST, note="outbid")
                return
            now = await self._now()
            end = int(chain_job.get("auction_end", default=now))
            if now < end:
                await self._sleep(min(end - now, 2.0) + 0.05)
                return
            refused = await self._award(row, market, job)
            if refused is not None and (await market.job(job)).state == "open":
                # Nobody can award it any more (e.g. DeadlinePassed): we leave the job. Its
                # escrow is refundable by anyone; the requester's SDK refunds it itself.
                self._set(row, JobState.LOST, note=f"award refused for good: {refused}")
                return
            await self._sleep(self.section.poll_interval_s)
            return
        if chain_job.state in ("none",):
            self._set(row, JobState.DROPPED, note="intent no longer on chain")
            return
        ours = (
            chain_job.provider is not None
            and chain_job.provider.lower() == (row.provider or "").lower()
            and (row.last_bidder is None or row.last_bidder.lower() == self.address.lower())
        )
        if ours and chain_job.state not in FINAL_STATES:
            self._set(row, JobState.WON, winner=chain_job.provider, award_price=chain_job.price,
                      deadline_at=self._deadline(chain_job))  # fmt: skip
        elif ours:
            self._set(row, JobState.SETTLED if chain_job.state == "settled" else JobState.EXPIRED)
        else:
            self._set(row, JobState.LOST, note=f"awarded to {chain_job.provider}, state {chain_job.state}")

    async def _award(self, row: JobRow, market: MarketGateway, job: bytes) -> ContractRevert | None:
        """Close our auction: one award at a time; a failed one (e.g. mined on a chain whose
        clock a reorg set back) is retried, at most three times in all. Returns the revert that
        refused the award for good (``DeadlinePassed``...), if one did."""
        awards = self.store.job_txs(row.job_id, "award")
        pending = [t for t in awards if t.state in (TxState.SIGNED, TxState.SENT)]
        if pending:
            try:
                await self.txm.wait(pending[-1])
            except TransactionFailed as exc:
                return self._refusal(row, "award", exc)
            return None
        if any(t.state == TxState.MINED for t in awards) or len(awards) >= 3:
            return None
        # Gas is estimated: an award that would revert (already awarded by someone else, or
        # past the deadline) costs nothing, and a permanent refusal is not tried again.
        return await self._send_job_tx(row, "award", market.award_tx(job))

    async def _send_job_tx(self, row: JobRow, purpose: str, tx: TxParams) -> ContractRevert | None:
        """Send an ``award``/``expire``/``finalize`` for ``row`` and wait for it. Returns the
        permanent revert that refused it (now or on an earlier try: it is not sent again), or
        ``None`` (mined, or refused for a reason that waiting may cure)."""
        refused = self._refused.get((row.job_id, purpose))
        if refused is not None:
            return refused
        try:
            sent = await self.txm.send(tx, purpose=purpose, job_id=row.job_id)
            await self.txm.wait(sent)
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
            if chain_job.state != "awarded" or (chain_job.provider or "").lower() != provider.address.lower():
                self._set(row, JobState.LOST, note=f"{provider.name} refused it (HTTP {status}), job "
                          f"{chain_job.state} for {chain_job.provider}: {answer[:200]!r}")  # fmt: skip
                return
            raise JobError(f"{provider.name} refused job {row.job_id}: HTTP {status} {answer[:200]!r}")
        if _answer_state(answer) == "declined":
            self._set(row, JobState.LOST, note=f"{provider.name} declined it on chain")
            return
        self._set(row, JobState.SENT, input_sent=True)

    async def _follow_job(self, row: JobRow, market: MarketGateway) -> None:
        """Wait for settlement; expire the job once its provider is past the deadline."""
        job = bytes(HexBytes(row.job_id))
        chain_job = await market.job(job)
        if chain_job.state in FINAL_STATES:
            state = JobState.SETTLED if chain_job.state == "settled" else JobState.EXPIRED
            self._set(row, state, note=f"chain state {chain_job.state}")
            return
        if (
            chain_job.state == "awarded"
            and (chain_job.provider or "").lower() != (row.provider or "").lower()
        ):
            self._set(row, JobState.LOST, note="re-awarded to another provider (failover)")
            return
        now = await self._now()
        deadline = self._deadline(chain_job) or row.deadline_at or 0
        dispute_end = int(chain_job.get("dispute_end", default=0))
        grace = self.section.finalize_grace_s
        late = chain_job.state == "delivered" and dispute_end and now > dispute_end + grace
        # Backstop: the provider normally finalizes its own optimistic delivery.
        if late and not self.store.job_txs(row.job_id, "finalize"):
            await self._send_job_tx(row, "finalize", market.finalize_tx(job))
        # Expire only after the provider's deadline, and only once.
        if (
            chain_job.state == "awarded"
            and deadline
            and now > deadline
            and not self.store.job_txs(row.job_id, "expire")
        ):
            await self._send_job_tx(row, "expire", market.expire_tx(job))
        await self._sleep(self.section.job_poll_s)
