"""The persistent transaction sender on a real Anvil."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from eth_account import Account
from hexbytes import HexBytes

from solver._config import GasSection
from solver._store import Store, TxState
from solver._txs import TxManager
from tender.anvil import DEV_KEYS, Anvil
from tender.chain import async_connect
from tests._proxy import OutageProxy

KEY = DEV_KEYS[7]
OTHER = Account.from_key(DEV_KEYS[8]).address


def manager(anvil: Anvil, store: Store, **gas: object) -> TxManager:
    w3 = async_connect(anvil.rpc_url)
    return TxManager(w3, Account.from_key(KEY), store, chain_id=31337, gas=GasSection(**gas))  # type: ignore[arg-type]


def test_send_persists_before_broadcast_and_settles(tmp_path) -> None:
    with Anvil() as anvil:
        store = Store(tmp_path / "s.sqlite")
        txm = manager(anvil, store)

        async def main() -> None:
            rows = [
                await txm.send({"to": OTHER, "value": i + 1}, purpose="test", job_id="0xab") for i in range(3)
            ]
            assert [r.nonce for r in rows] == [0, 1, 2]
            for row in rows:
                receipt = await txm.wait(row)
                assert receipt["status"] == 1

        asyncio.run(main())
        mined = store.txs(states=(TxState.MINED,))
        assert len(mined) == 3
        assert all(t.fee_paid for t in mined)
        assert store.gas_spent("0xab") == sum(t.fee_paid or 0 for t in mined)


def test_stuck_transaction_is_replaced_with_the_same_nonce(tmp_path) -> None:
    with Anvil() as anvil:
        store = Store(tmp_path / "s.sqlite")
        txm = manager(anvil, store, stuck_after_s=0.3)
        anvil.rpc("evm_setAutomine", [False])

        async def main() -> int:
            row = await txm.send({"to": OTHER, "value": 5}, purpose="test", gas=21_000)
            waiting = asyncio.create_task(txm.wait(row, poll=0.05))
            await asyncio.sleep(0.8)  # long enough for at least one replacement
            anvil.rpc("evm_mine")
            receipt = await waiting
            return int(receipt["blockNumber"])

        asyncio.run(main())
        rows = store.txs()
        assert {r.nonce for r in rows} == {0}
        assert len(rows) >= 2
        assert [r.state for r in rows].count(TxState.MINED) == 1
        assert all(r.state in (TxState.MINED, TxState.REPLACED) for r in rows)
        assert rows[-1].max_fee > rows[0].max_fee


def test_recover_rebroadcasts_the_same_bytes_or_cancels(tmp_path) -> None:
    with Anvil() as anvil:
        store = Store(tmp_path / "s.sqlite")
        txm = manager(anvil, store)
        anvil.rpc("evm_setAutomine", [False])

        async def send_two() -> None:
            await txm.send({"to": OTHER, "value": 1}, purpose="bid", job_id="0x01", gas=21_000)
            await txm.send({"to": OTHER, "value": 2}, purpose="bid", job_id="0x02", gas=21_000)

        asyncio.run(send_two())
        # A crash: the node forgets its mempool; the store still holds both signed txs.
        anvil.rpc("anvil_dropAllTransactions")
        anvil.rpc("evm_setAutomine", [True])
        restarted = manager(anvil, Store(tmp_path / "s.sqlite"))

        async def recover() -> None:
            await restarted.recover(lambda row: row.job_id == "0x01")
            for row in restarted.store.txs(states=(TxState.SENT,)):
                await restarted.wait(row)

        asyncio.run(recover())
        rows = restarted.store.txs()
        by_job = {r.job_id: r for r in rows if r.state == TxState.MINED}
        assert set(by_job) == {"0x01", "0x02"}
        assert by_job["0x01"].purpose == "bid"
        assert by_job["0x02"].purpose == "cancel"
        first = [r for r in rows if r.job_id == "0x01"]
        assert len(first) == 1  # re-broadcast, not re-signed


def test_send_through_an_outage_is_retried_until_the_given_time(tmp_path) -> None:
    """The node is unreachable when the transaction is sent: it is retried (not failed) until
    ``until``, and goes out once the node is back."""
    with Anvil() as anvil, OutageProxy(anvil.rpc_url) as proxy:
        store = Store(tmp_path / "s.sqlite")
        txm = TxManager(
            async_connect(proxy.url),
            Account.from_key(KEY),
            store,
            chain_id=31337,
            gas=GasSection(),
            retries=0,
        )

        retries = _Count()
        logger = logging.getLogger("solver.txs")
        logger.addHandler(retries)
        logger.setLevel(logging.DEBUG)

        async def main() -> None:
            proxy.go_down()
            sending = asyncio.create_task(
                txm.send({"to": OTHER, "value": 1}, purpose="test", gas=21_000, until=time.time() + 300)
            )
            for _ in range(6_000):  # until the send was refused and retried a few times
                if retries.count >= 3:
                    break
                await asyncio.sleep(0.05)
            assert retries.count >= 3
            assert not sending.done()
            assert store.txs() == []  # the fees could not be read: nothing signed yet
            proxy.come_back()
            row = await sending
            assert (await txm.wait(row))["status"] == 1

        try:
            asyncio.run(main())
        finally:
            logger.removeHandler(retries)
            logger.setLevel(logging.NOTSET)
        assert [(t.nonce, t.state) for t in store.txs()] == [(0, TxState.MINED)]


def test_a_broadcast_whose_reply_is_lost_is_not_sent_twice_and_the_nonce_moves_on(tmp_path) -> None:
    """The node takes the transaction but the reply never comes back: the retry finds its own
    transaction mined (not "nonce too low: dropped"), and the next send takes the next nonce."""
    with Anvil() as anvil, OutageProxy(anvil.rpc_url) as proxy:
        store = Store(tmp_path / "s.sqlite")
        txm = TxManager(
            async_connect(proxy.url), Account.from_key(KEY), store, chain_id=31337, gas=GasSection()
        )

        async def main() -> None:
            proxy.lose_replies(1, containing=b"eth_sendRawTransaction")
            first = await txm.send({"to": OTHER, "value": 1}, purpose="test", gas=21_000)
            assert (await txm.wait(first))["status"] == 1
            second = await txm.send({"to": OTHER, "value": 2}, purpose="test", gas=21_000)
            assert (await txm.wait(second))["status"] == 1

        asyncio.run(main())
        assert proxy.reset >= 1
        assert [(t.nonce, t.state) for t in store.txs()] == [(0, TxState.MINED), (1, TxState.MINED)]


class _Count(logging.Handler):
    """Counts the sender's ``rpc.retry`` records."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += record.getMessage() == "rpc.retry"


def test_reconfirm_sends_again_what_a_reorg_took_back_unseen(tmp_path) -> None:
    """A receipt is not final by itself: two transactions are mined, then ``anvil_reorg`` drops
    their blocks (no feed, so no rollback tells the manager). ``reconfirm`` finds the one asked
    about gone, fills the gap below it (the other one, the same bytes) and broadcasts it again;
    both are mined once on the new chain, under their original hashes."""
    with Anvil() as anvil:
        store = Store(tmp_path / "s.sqlite")
        txm = manager(anvil, store)

        async def main() -> list[tuple[str, int]]:
            first = await txm.send({"to": OTHER, "value": 1}, purpose="bid", job_id="0xab")
            await txm.wait(first)
            second = await txm.send({"to": OTHER, "value": 2}, purpose="award", job_id="0xab")
            await txm.wait(second)
            assert await txm.reconfirm(store.job_txs("0xab")) == []  # both receipts stand
            anvil.rpc("anvil_reorg", [2, []])  # the two blocks are replaced by empty ones
            (back,) = await txm.reconfirm(store.job_txs("0xab", "award"))
            assert (back.id, back.state, back.block) == (second.id, TxState.SENT, None)
            receipts = [await txm.wait(row) for row in (first, second)]
            return [(HexBytes(r["transactionHash"]).to_0x_hex(), int(r["status"])) for r in receipts]

        mined = asyncio.run(main())
        rows = store.job_txs("0xab")
        assert mined == [(t.hash, 1) for t in rows]  # the same two transactions, nothing signed anew
        assert [(t.purpose, t.state) for t in rows] == [("bid", TxState.MINED), ("award", TxState.MINED)]
        assert len(store.txs()) == 2


def test_heal_finds_what_a_reorg_took_back_from_the_nonce_count(tmp_path) -> None:
    """After an unseen reorg the chain counts fewer transactions from the key than the nonces
    held as mined: ``heal`` sends those again at once (not ``stuck_after_s`` later), so a new
    transaction is not held behind the gap."""
    with Anvil() as anvil:
        store = Store(tmp_path / "s.sqlite")
        txm = manager(anvil, store, stuck_after_s=600)

        async def main() -> None:
            for value in (1, 2):
                await txm.wait(await txm.send({"to": OTHER, "value": value}, purpose="bid", job_id="0xab"))
            assert await txm.heal(every=0) == []
            anvil.rpc("anvil_reorg", [2, []])
            back = await txm.heal(every=0)
            assert [(t.nonce, t.state) for t in back] == [(0, TxState.SENT), (1, TxState.SENT)]
            later = await txm.send({"to": OTHER, "value": 3}, purpose="award", job_id="0xab")
            assert later.nonce == 2
            receipt = await asyncio.wait_for(txm.wait(later), 30)  # well before stuck_after_s
            assert receipt["status"] == 1
            for row in back:
                await txm.wait(row)

        asyncio.run(main())
        assert [(t.nonce, t.state) for t in store.txs()] == [(n, TxState.MINED) for n in range(3)]


def test_a_reorged_out_transaction_whose_rebroadcast_failed_is_sent_again_by_wait(tmp_path) -> None:
    """The CI flake of the award-reorg trial: ``heal`` took a reorged-out award back, but its
    broadcast again failed (an RPC error on a loaded machine, injected here once). The row was
    already marked as taken back, so the next ``heal`` finds nothing; it must still be owed a
    broadcast, and ``wait`` sends it, long before ``stuck_after_s`` would replace it."""
    from tender.errors import ChainError

    with Anvil() as anvil:
        store = Store(tmp_path / "s.sqlite")
        txm = manager(anvil, store, stuck_after_s=600)

        async def main() -> None:
            row = await txm.send({"to": OTHER, "value": 1}, purpose="award", job_id="0xab")
            await txm.wait(row)
            anvil.rpc("anvil_reorg", [1, []])
            fill_gap = txm._fill_gap

            async def failing(nonce: int, until: float | None = None) -> None:
                txm._fill_gap = fill_gap  # type: ignore[method-assign]
                raise ChainError("the node did not answer (injected)")

            txm._fill_gap = failing  # type: ignore[method-assign]
            with pytest.raises(ChainError, match="injected"):
                await txm.heal(every=0)
            assert await txm.heal(every=0) == []  # already taken back: nothing more to find
            (taken,) = store.txs()
            assert taken.state == TxState.SIGNED  # owed a broadcast
            receipt = await asyncio.wait_for(txm.wait(taken), 30)
            assert receipt["status"] == 1

        asyncio.run(main())
        (row,) = store.txs()
        assert row.state == TxState.MINED
