"""The lifecycle core on a real Anvil: the event feed (sync and async twins, resumable,
reorg-safe) and :class:`JobView`, which must agree with the market's own record at every step."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from chain_env import GOOD_PROOF, OUTPUT, TOKEN_UNIT, TenderEnv
from web3 import Web3

from tender.anvil import Anvil
from tender.chain import (
    DEFAULT_PARAMS,
    AsyncEventFeed,
    AsyncMarket,
    Event,
    EventFeed,
    JobState,
    JobView,
    LogDecoder,
    Market,
    MemoryCursor,
    RawEvent,
    async_connect,
)
from tender.intents import AuctionType, Bid
from tests.harness.ping import PING_ABI, ping, ping_chain

# -- JobView against the market's record ---------------------------------------------------------


def _check(env: TenderEnv, market: Market, job: bytes, start: int, expected: JobState) -> JobView:
    """Fold the job's events read from the chain; the view must match ``market.job``."""
    events = EventFeed(env.w3, [market.address]).read(start)
    view = JobView.fold(job, events)
    assert market.job(job).state is expected
    assert view.state is expected, [e.name for e in view.events]
    return view


def _reverse_zk(env: TenderEnv, start: int) -> None:
    intent = env.intent(AuctionType.REVERSE)
    market = env.requester.reverse
    job = market.job_id(intent)
    market.post(intent)
    _check(env, market, job, start, JobState.OPEN)
    env.solver.reverse.bid(job, Bid(provider=env.provider.address, price=4 * TOKEN_UNIT, latency=60))
    env.advance(intent.auction_window + 1)
    env.relayer.reverse.award(job)
    view = _check(env, market, job, start, JobState.AWARDED)
    record = market.job(job)
    assert (view.provider, view.price, view.stake_locked) == (
        record.provider,
        record.price,
        record.stake_locked,
    )
    assert view.provider_deadline == market.provider_deadline(job)
    env.solver.reverse.deliver(job, OUTPUT, GOOD_PROOF)
    view = _check(env, market, job, start, JobState.SETTLED)
    assert view.output == tuple(OUTPUT)
    assert view.final
    assert [e.name for e in view.events][:2] == ["IntentPosted", "BidPlaced"]


def _dutch_expired(env: TenderEnv, start: int) -> None:
    intent = env.intent(AuctionType.DUTCH, allow_failover=False)
    market = env.requester.dutch
    job = market.job_id(intent)
    market.post(intent)
    env.solver.dutch.fill(job, env.provider.address, 60)
    _check(env, market, job, start, JobState.AWARDED)
    env.advance(120)
    env.relayer.dutch.expire(job)
    view = _check(env, market, job, start, JobState.EXPIRED)  # the Refunded that follows keeps EXPIRED
    assert view.slashed == market.job(job).stake_locked > 0
    assert view.refunded > 0


def _refunded(env: TenderEnv, start: int) -> None:
    intent = env.intent(AuctionType.REVERSE)
    market = env.requester.reverse
    job = market.job_id(intent)
    market.post(intent)
    env.advance(intent.auction_window + 1)
    env.relayer.reverse.refund(job)
    _check(env, market, job, start, JobState.REFUNDED)


def _challenged_slashed(env: TenderEnv, start: int) -> None:
    intent = env.intent(AuctionType.DUTCH, proof_mode=1, max_price=10 * TOKEN_UNIT)
    market = env.requester.dutch
    job = market.job_id(intent)
    market.post(intent)
    env.solver.dutch.fill(job, env.provider.address, 60)
    env.provider.dutch.deliver(job, OUTPUT)
    _check(env, market, job, start, JobState.DELIVERED)
    env.challenger.dutch.challenge(job)
    view = _check(env, market, job, start, JobState.CHALLENGED)
    assert view.challenger == env.challenger.address
    env.advance(DEFAULT_PARAMS.proof_window + 1)
    env.relayer.dutch.expire(job)
    view = _check(env, market, job, start, JobState.SLASHED)
    assert view.slashed == market.job(job).stake_locked


@pytest.mark.parametrize(
    "scenario",
    [_reverse_zk, _dutch_expired, _refunded, _challenged_slashed],
    ids=lambda f: f.__name__.strip("_"),
)
def test_job_view_matches_the_market_at_every_step(
    env: TenderEnv, scenario: Callable[[TenderEnv, int], None]
) -> None:
    scenario(env, env.w3.eth.block_number + 1)


def test_job_view_ignores_other_jobs_and_keeps_order(env: TenderEnv) -> None:
    start = env.w3.eth.block_number + 1
    first, second = env.intent(AuctionType.REVERSE), env.intent(AuctionType.REVERSE)
    market = env.requester.reverse
    market.post(first)
    market.post(second)
    events = EventFeed(env.w3, [market.address]).read(start)
    view = JobView.fold(market.job_id(first), events)
    assert [e.name for e in view.events] == ["IntentPosted"]
    assert view.intent is not None
    assert view.intent.nonce == first.nonce
    only = EventFeed(env.w3, [market.address]).read(start, job_id=market.job_id(second))
    assert [getattr(e, "job_id", None) for e in only] == [market.job_id(second)]


# -- the feed: step, resume, names, the async twin -------------------------------------------------


class RecordingCursor(MemoryCursor):
    """A memory cursor that keeps the events it was handed, by block, and forgets on rollback."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Event] = []

    def handle(self, events: list[Event]) -> None:
        self.seen.extend(events)

    def rollback(self, fork: int) -> Sequence[Any]:
        dropped = sorted({e.block_number for e in self.seen if e.block_number > fork})
        self.seen = [e for e in self.seen if e.block_number <= fork]
        super().rollback(fork)
        return dropped


def test_feed_steps_resume_and_filter_by_name(env: TenderEnv) -> None:
    start = env.w3.eth.block_number + 1
    market = env.requester.reverse
    cursor = RecordingCursor()
    feed = EventFeed(
        env.w3, [market.address], names=["IntentPosted"], cursor=cursor, start_block=start, chunk=2
    )
    market.post(env.intent(AuctionType.REVERSE))
    while feed.step(cursor.handle):
        pass
    assert [e.name for e in cursor.seen] == ["IntentPosted"]
    assert feed.position == env.w3.eth.block_number == feed.head
    market.post(env.intent(AuctionType.REVERSE))
    # a second feed on the same cursor resumes after the last block processed
    again = EventFeed(env.w3, [market.address], names=["IntentPosted"], cursor=cursor, start_block=start)
    assert again.step(cursor.handle) == 1
    assert [e.name for e in cursor.seen] == ["IntentPosted", "IntentPosted"]
    assert again.step(cursor.handle) == 0


def test_async_twin_reads_what_the_sync_feed_reads(env: TenderEnv) -> None:
    start = env.w3.eth.block_number + 1
    market = env.requester.reverse
    market.post(env.intent(AuctionType.REVERSE))
    market.post(env.intent(AuctionType.REVERSE))

    async def read() -> tuple[list[Event], JobState]:
        w3 = async_connect(env.chain.rpc_url)
        try:
            events = await AsyncEventFeed(w3, [market.address]).read(start)
            job = await AsyncMarket(market).job(events[0].job_id)  # type: ignore[attr-defined]
        finally:
            await w3.provider.disconnect()
        return events, job.state

    events, state = asyncio.run(read())
    assert events == EventFeed(env.w3, [market.address]).read(start)
    assert [e.block_number for e in events] == sorted(e.block_number for e in events)
    assert state is JobState.OPEN


def test_async_market_has_every_public_method_of_market() -> None:
    public = {n for n, f in inspect.getmembers(Market, inspect.isfunction) if not n.startswith("_")}
    public -= {
        n for n, f in inspect.getmembers(Market.__mro__[1], inspect.isfunction)
    }  # ContractWrapper's plumbing
    twins = {n for n, f in inspect.getmembers(AsyncMarket, inspect.iscoroutinefunction)}
    assert public - twins == set()
    assert all(
        inspect.signature(getattr(AsyncMarket, n)).parameters.keys()
        == inspect.signature(getattr(Market, n)).parameters.keys()
        for n in public
    )


# -- reorgs on a bare Anvil --------------------------------------------------------------------


@pytest.fixture
def bare() -> Iterator[tuple[Anvil, Web3, str]]:
    with ping_chain() as chain:
        yield chain


def pings(cursor: RecordingCursor) -> list[int]:
    return [int(e.args["n"]) for e in cursor.seen if isinstance(e, RawEvent)]


def test_feed_rolls_back_what_a_reorg_dropped(bare: tuple[Anvil, Web3, str]) -> None:
    anvil, w3, emitter = bare
    cursor = RecordingCursor()
    feed = EventFeed(w3, [emitter], decoder=LogDecoder(PING_ABI), cursor=cursor)
    ping(w3, emitter, 10)
    while feed.step(cursor.handle):
        pass
    ping(w3, emitter, 11)
    ping(w3, emitter, 12)
    while feed.step(cursor.handle):
        pass
    assert pings(cursor) == [10, 11, 12]
    told: list[tuple[int, Sequence[Any]]] = []
    anvil.rpc("anvil_reorg", [2, []])  # drops the blocks of 11 and 12
    ping(w3, emitter, 13)
    while feed.step(cursor.handle, lambda fork, touched: told.append((fork, touched))):
        pass
    assert pings(cursor) == [10, 13]
    assert len(told) == 1
    assert len(told[0][1]) == 2
    assert cursor.block_hash(feed.position) == w3.eth.get_block(feed.position)["hash"].to_0x_hex()


def test_async_feed_with_confirmations_never_sees_a_shallow_reorg(bare: tuple[Anvil, Web3, str]) -> None:
    anvil, w3, emitter = bare
    cursor = RecordingCursor()

    async def drain() -> None:
        feed = AsyncEventFeed(
            async_connect(anvil.rpc_url),
            [emitter],
            decoder=LogDecoder(PING_ABI),
            cursor=cursor,
            confirmations=3,
        )
        while await feed.step(cursor.handle):
            pass

    ping(w3, emitter, 20)
    for _ in range(3):
        anvil.rpc("evm_mine")
    ping(w3, emitter, 21)
    asyncio.run(drain())
    assert pings(cursor) == [20]
    anvil.rpc("anvil_reorg", [1, []])
    for _ in range(3):
        anvil.rpc("evm_mine")
    asyncio.run(drain())
    assert pings(cursor) == [20]


def test_a_chain_that_keeps_moving_under_a_step_is_not_an_error(bare: tuple[Anvil, Web3, str]) -> None:
    """Issue 16: under load, with reorgs being mined, every attempt of one step found headers that
    did not chain together; the step raised ``FeedError`` and the solver and the SDK's hub, which
    treat it as fatal, stopped. Now such a step processes nothing and returns 0; the next poll
    reads the chain once it holds still."""
    from tender.chain._feed import _Headers

    _anvil, w3, emitter = bare
    cursor = RecordingCursor()
    feed = EventFeed(w3, [emitter], decoder=LogDecoder(PING_ABI), cursor=cursor)
    ping(w3, emitter, 30)
    honest = feed._perform

    def moving(read: Any) -> Any:  # every header answer names a parent that is not its block's
        answer = honest(read)
        if isinstance(read, _Headers) and len(read.numbers) > 1:
            return [(h, "0x" + "ab" * 32) for h, _ in answer]
        return answer

    feed._perform = moving  # type: ignore[method-assign]
    position = feed.position
    assert feed.step(cursor.handle) == 0
    assert (feed.position, pings(cursor)) == (position, [])
    feed._perform = honest  # type: ignore[method-assign]
    while feed.step(cursor.handle):
        pass
    assert pings(cursor) == [30]
