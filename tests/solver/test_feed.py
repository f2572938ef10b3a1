"""The solver's store as the cursor of ``tender.chain``'s event feed, on a real Anvil: it resumes
after a restart, and a reorg forgets the jobs the dropped blocks taught it. Also: the events the
solver follows exist in the markets' ABI, and a store written by an older solver still opens."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from web3 import Web3

from solver._solver import FOLLOWED
from solver._store import Pursuit, Store
from tender.anvil import Anvil
from tender.chain import AsyncEventFeed, Event, LogDecoder, RawEvent, async_connect, load_artifact
from tender.errors import ArtifactError
from tests.harness.ping import PING_ABI, ping, ping_chain


@pytest.fixture
def chain() -> Iterator[tuple[Anvil, Web3, str]]:
    with ping_chain() as chain:
        yield chain


def make_feed(anvil: Anvil, store: Store, emitter: str) -> AsyncEventFeed:
    return AsyncEventFeed(async_connect(anvil.rpc_url), [emitter], decoder=LogDecoder(PING_ABI), cursor=store)


def remember(store: Store, emitter: str):  # type: ignore[no-untyped-def]
    """A feed handler that records each ping as a job posted in the ping's block."""

    def handle(events: list[Event]) -> None:
        for event in events:
            assert isinstance(event, RawEvent)
            store.add_job(
                f"0x{int(event.args['n']):064x}",
                market=emitter,
                auction="reverse",
                intent={},
                posted_block=event.block_number,
            )

    return handle


def drain(feed: AsyncEventFeed, store: Store, emitter: str, touched: list[str] | None = None) -> None:
    async def run() -> None:
        on_rollback = (lambda fork, ids: touched.extend(ids)) if touched is not None else None
        while await feed.step(remember(store, emitter), on_rollback):
            pass

    asyncio.run(run())  # one loop per drain: web3 keeps its aiohttp session per loop


def live(store: Store) -> set[int]:
    return {int(j.job_id, 16) for j in store.jobs() if j.pursuit != Pursuit.DROPPED}


def test_store_cursor_resumes_after_a_restart(chain, tmp_path) -> None:
    anvil, w3, emitter = chain
    for n in (1, 2, 3):
        ping(w3, emitter, n)
    store = Store(tmp_path / "s.sqlite")
    drain(make_feed(anvil, store, emitter), store, emitter)
    assert live(store) == {1, 2, 3}
    cursor = store.cursor
    store.close()
    ping(w3, emitter, 4)
    reopened = Store(tmp_path / "s.sqlite")
    assert reopened.cursor == cursor
    drain(make_feed(anvil, reopened, emitter), reopened, emitter)
    assert live(reopened) == {1, 2, 3, 4}  # 1-3 not seen twice: the feed started after the cursor
    assert reopened.cursor == w3.eth.block_number


def test_store_forgets_the_jobs_a_reorg_dropped(chain, tmp_path) -> None:
    anvil, w3, emitter = chain
    store = Store(tmp_path / "s.sqlite")
    feed = make_feed(anvil, store, emitter)
    ping(w3, emitter, 10)
    drain(feed, store, emitter)
    ping(w3, emitter, 11)
    ping(w3, emitter, 12)
    drain(feed, store, emitter)
    assert live(store) == {10, 11, 12}
    touched: list[str] = []
    anvil.rpc("anvil_reorg", [2, []])  # drops the blocks of 11 and 12; the new chain holds 13
    ping(w3, emitter, 13)
    drain(feed, store, emitter, touched)
    assert live(store) == {10, 13}
    assert sorted(int(t, 16) for t in touched) == [11, 12]
    assert store.block_hash(store.cursor or 0) == w3.eth.get_block(store.cursor or 0)["hash"].to_0x_hex()


def test_followed_events_exist_in_the_markets_abi() -> None:
    try:
        abis = [load_artifact(name).abi for name in ("ReverseAuctionMarket", "DutchAuctionMarket")]
    except ArtifactError:
        pytest.skip("Tender contracts not built: run `make contracts`")
    reverse, dutch = ({e["name"] for e in abi if e.get("type") == "event"} for abi in abis)
    for event in FOLLOWED:
        assert event.__name__ in reverse, event.__name__
        assert event.__name__ in dutch or event.__name__ == "BidPlaced", event.__name__


def test_a_store_written_by_an_older_solver_opens_with_its_jobs(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.executescript(
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE jobs (job_id TEXT PRIMARY KEY, market TEXT NOT NULL, auction TEXT NOT NULL,
            intent TEXT NOT NULL, signature TEXT, posted_block INTEGER, posted_at INTEGER,
            state TEXT NOT NULL, provider TEXT, price TEXT, latency INTEGER, cost TEXT,
            awarded_block INTEGER, winner TEXT, award_price TEXT, deadline_at INTEGER,
            input_sent INTEGER NOT NULL DEFAULT 0, final_block INTEGER, last_bidder TEXT,
            last_bid_block INTEGER, note TEXT, updated REAL NOT NULL);
        CREATE INDEX jobs_state ON jobs (state);
        INSERT INTO meta VALUES ('cursor', '41');
        INSERT INTO jobs (job_id, market, auction, intent, state, deadline_at, updated)
            VALUES ('0xaa', '0xm', 'reverse', '{}', 'sent', 1234, 0);
        """
    )
    old.commit()
    old.close()
    store = Store(path)
    row = store.job("0xaa")
    assert row is not None
    assert (row.pursuit, row.provider_deadline) == (Pursuit.SENT, 1234)
    assert [j.job_id for j in store.open_jobs()] == ["0xaa"]
    assert store.cursor == 41
    assert store.get_meta("schema") == "2"
    store.close()
    assert Store(path).job("0xaa") is not None  # and it opens again, already migrated
