"""The log feed on a real Anvil: resume after restart, reorgs roll back what they dropped."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from eth_account import Account
from hexbytes import HexBytes
from web3 import Web3

from solver._feed import LogFeed
from solver._store import JobState, Store
from tender.anvil import DEV_KEYS, Anvil
from tender.chain import async_connect

# A contract whose fallback emits LOG1 with the calldata's first word as the topic:
# PUSH1 0 CALLDATALOAD PUSH1 0 PUSH1 0 LOG1 STOP, behind a CODECOPY/RETURN constructor.
RUNTIME = "60003560006000a100"
INIT = "6009600c60003960096000f3" + RUNTIME


@pytest.fixture
def chain() -> Iterator[tuple[Anvil, Web3, str]]:
    with Anvil() as anvil:
        w3 = Web3(Web3.HTTPProvider(anvil.rpc_url))
        account = Account.from_key(DEV_KEYS[0])
        tx = {"from": account.address, "data": "0x" + INIT, "gas": 100_000}
        receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction(tx))  # type: ignore[arg-type]
        yield anvil, w3, str(receipt["contractAddress"])


def emit(w3: Web3, emitter: str, topic: int) -> None:
    tx = {
        "from": w3.eth.accounts[0],
        "to": emitter,
        "data": "0x" + topic.to_bytes(32, "big").hex(),
        "gas": 60_000,
    }
    w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction(tx))  # type: ignore[arg-type]


def make_feed(anvil: Anvil, store: Store, emitter: str, *, confirmations: int = 0) -> LogFeed:
    w3 = async_connect(anvil.rpc_url)

    def handler(logs: list) -> None:
        for entry in logs:
            topic = HexBytes(entry["topics"][0]).to_0x_hex()
            store.add_job(
                topic, market=emitter, auction="reverse", intent={}, posted_block=int(entry["blockNumber"])
            )

    return LogFeed(w3, store, addresses=[emitter], topics=None, handler=handler, confirmations=confirmations)


async def drain(feed: LogFeed) -> None:
    # Each test runs in one event loop: web3 caches its aiohttp session per loop, and a
    # provider used from a second loop would try to close a session bound to a closed one.
    while await feed.step():
        pass


def live(store: Store) -> set[int]:
    return {int(j.job_id, 16) for j in store.jobs() if j.state != JobState.DROPPED}


async def test_feed_resumes_from_its_cursor(chain, tmp_path) -> None:
    anvil, w3, emitter = chain
    for topic in (1, 2, 3):
        emit(w3, emitter, topic)
    store = Store(tmp_path / "s.sqlite")
    await drain(make_feed(anvil, store, emitter))
    assert live(store) == {1, 2, 3}
    cursor = store.cursor
    store.close()
    emit(w3, emitter, 4)
    reopened = Store(tmp_path / "s.sqlite")
    assert reopened.cursor == cursor
    feed = make_feed(anvil, reopened, emitter)
    await drain(feed)
    assert live(reopened) == {1, 2, 3, 4}
    assert reopened.cursor == w3.eth.block_number


async def test_feed_forgets_what_a_reorg_dropped(chain, tmp_path) -> None:
    anvil, w3, emitter = chain
    store = Store(tmp_path / "s.sqlite")
    feed = make_feed(anvil, store, emitter)
    emit(w3, emitter, 10)
    await drain(feed)
    emit(w3, emitter, 11)
    emit(w3, emitter, 12)
    await drain(feed)
    assert live(store) == {10, 11, 12}
    touched: list[str] = []
    feed.on_rollback = lambda fork, jobs: touched.extend(jobs)
    # Drop the two blocks holding 11 and 12; the new chain holds 13 instead.
    anvil.rpc("anvil_reorg", [2, []])
    emit(w3, emitter, 13)
    await drain(feed)
    assert live(store) == {10, 13}
    assert sorted(int(t, 16) for t in touched) == [11, 12]
    assert store.block_hash(store.cursor or 0) == w3.eth.get_block(store.cursor or 0)["hash"].to_0x_hex()


async def test_feed_with_confirmations_never_sees_shallow_reorgs(chain, tmp_path) -> None:
    anvil, w3, emitter = chain
    store = Store(tmp_path / "s.sqlite")
    feed = make_feed(anvil, store, emitter, confirmations=3)
    emit(w3, emitter, 20)
    for _ in range(3):
        anvil.rpc("evm_mine")
    emit(w3, emitter, 21)
    await drain(feed)
    assert live(store) == {20}
    anvil.rpc("anvil_reorg", [1, []])
    for _ in range(3):
        anvil.rpc("evm_mine")
    await drain(feed)
    assert live(store) == {20}
    assert not any(j.state == JobState.DROPPED for j in store.jobs())
