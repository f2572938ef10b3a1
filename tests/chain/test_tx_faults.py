"""TxSender against a stumbling chain: RPC outages, lost replies, stuck fees, a shared key.

Each test runs its own Anvil (plain ETH transfers: no Tender contracts needed); the outage
tests talk to it through :class:`tests._proxy.OutageProxy`. Acceptance is behaviour (what was
mined, with which nonce and hash), never how long it took.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest
import requests
from eth_account import Account
from web3 import HTTPProvider, Web3
from web3.types import RPCEndpoint, TxParams

from tender.anvil import DEV_KEYS, Anvil
from tender.chain import TxSender
from tender.errors import ChainError, ContractRevert, TransactionFailed
from tests._proxy import OutageProxy

KEY = DEV_KEYS[7]
OTHER = Account.from_key(DEV_KEYS[8]).address
GWEI = 10**9


def _transfer(amount: int = 1) -> TxParams:
    return cast(TxParams, {"to": OTHER, "value": amount})


@pytest.fixture
def anvil() -> Iterator[Anvil]:
    with Anvil() as chain:
        yield chain


@pytest.fixture
def proxy(anvil: Anvil) -> Iterator[OutageProxy]:
    with OutageProxy(anvil.rpc_url) as running:
        yield running


def _w3(url: str) -> Web3:
    # a short request timeout: a request caught in an outage fails fast and is retried
    return Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 5}))


def _count(w3: Web3, address: str, block: str = "latest") -> int:
    return int(w3.eth.get_transaction_count(address, block))  # type: ignore[arg-type]


class _CountingHTTP(HTTPProvider):
    """An HTTP provider that records every RPC method asked and every one that failed."""

    def __init__(self, url: str) -> None:
        super().__init__(url, request_kwargs={"timeout": 5})
        self.asked: list[str] = []
        self.failed: list[str] = []

    def make_request(self, method: RPCEndpoint, params: Any) -> Any:
        self.asked.append(method)
        try:
            return super().make_request(method, params)
        except OSError:
            self.failed.append(method)
            raise


# ---------------------------------------------------------------- (a) RPC outages


def test_send_started_during_an_outage_lands_after_it(anvil: Anvil, proxy: OutageProxy) -> None:
    w3 = _w3(proxy.url)
    sender = TxSender(w3, KEY, retries=0)
    before = _count(w3, sender.address)
    proxy.outage(4)
    assert proxy.down
    receipt = sender.send(_transfer(), retry_until=time.time() + 120)
    assert not proxy.down
    assert receipt["status"] == 1
    direct = _w3(anvil.rpc_url)
    assert direct.eth.get_transaction(receipt["transactionHash"])["nonce"] == before
    assert _count(direct, sender.address) == before + 1
    # the next send uses the next nonce: nothing was used up locally by the failed tries
    assert sender.send(_transfer())["status"] == 1
    assert _count(direct, sender.address) == before + 2


def test_without_retry_until_an_outage_fails_after_the_few_retries(proxy: OutageProxy) -> None:
    w3 = _w3(proxy.url)
    sender = TxSender(w3, KEY, retries=1, backoff=0.01)
    proxy.go_down()
    try:
        with pytest.raises(requests.ConnectionError):
            sender.send(_transfer())
    finally:
        proxy.come_back()
    assert sender.send(_transfer())["status"] == 1


def test_an_outage_while_waiting_for_the_receipt_is_waited_out(anvil: Anvil, proxy: OutageProxy) -> None:
    http = _CountingHTTP(proxy.url)
    w3 = Web3(http)
    sender = TxSender(w3, KEY)
    anvil.rpc("anvil_setAutomine", [False])
    pending = sender.submit(_transfer())
    proxy.go_down()
    anvil.rpc("evm_mine", [])
    result: dict[str, Any] = {}
    waiter = threading.Thread(target=lambda: result.update(r=pending.wait(retry_until=time.time() + 120)))
    waiter.start()
    while len(http.failed) < 2:  # the waiter has met the outage
        time.sleep(0.05)
    proxy.come_back()
    waiter.join(timeout=120)
    assert result["r"]["transactionHash"] == pending.tx_hash
    assert sender.pending() == []


def test_a_lost_reply_to_a_broadcast_is_not_sent_twice(anvil: Anvil, proxy: OutageProxy) -> None:
    w3 = _w3(proxy.url)
    sender = TxSender(w3, KEY)
    direct = _w3(anvil.rpc_url)
    before = _count(direct, sender.address)
    gas = 21_000
    proxy.lose_replies(1, containing=b"eth_sendRawTransaction")
    receipt = sender.send(_transfer(), gas=gas, retry_until=time.time() + 60)
    assert proxy.reset >= 1
    assert receipt["status"] == 1
    assert _count(direct, sender.address) == before + 1  # one transaction, not two


def test_a_revert_raises_at_once_even_with_a_far_deadline(anvil: Anvil) -> None:
    http = _CountingHTTP(anvil.rpc_url)
    sender = TxSender(Web3(http), KEY)
    reverting = cast(TxParams, {"data": "0x60006000fd"})  # creation code: PUSH1 0 PUSH1 0 REVERT
    with pytest.raises((ContractRevert, ChainError)):
        sender.send(reverting, retry_until=time.time() + 3_600)
    assert http.asked.count("eth_estimateGas") == 1


# ---------------------------------------------------------------- (b) stuck transactions


class _Miner:
    """Mines a block every 0.1 s with the next base fee held at ``base_fee`` (automine off)."""

    def __init__(self, anvil: Anvil, base_fee: int) -> None:
        self.anvil, self.base_fee = anvil, base_fee
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.anvil.rpc("anvil_setNextBlockBaseFeePerGas", [hex(self.base_fee)])
            self.anvil.rpc("evm_mine", [])
            self._stop.wait(0.1)

    def __enter__(self) -> _Miner:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def test_a_transaction_with_a_too_low_fee_is_replaced_and_mined(anvil: Anvil) -> None:
    w3 = _w3(anvil.rpc_url)
    sender = TxSender(w3, KEY, priority_fee=GWEI, replace_after=0.5)
    anvil.rpc("anvil_setAutomine", [False])
    pending = sender.submit(_transfer())
    first = pending.tx_hash
    first_fee = int(w3.eth.get_transaction(first)["maxFeePerGas"])
    assert [item.tx_hash for item in sender.pending()] == [first.hex()]
    # the base fee jumps above what the first version offers: it can never be mined
    with _Miner(anvil, base_fee=first_fee * 20):
        receipt = pending.wait(timeout=120)
    assert receipt["status"] == 1
    assert len(pending.hashes) >= 2
    assert receipt["transactionHash"] != first
    assert receipt["transactionHash"] in pending.hashes
    mined = w3.eth.get_transaction(receipt["transactionHash"])
    assert mined["nonce"] == w3.eth.get_transaction(receipt["transactionHash"])["nonce"] == pending.nonce
    assert int(mined["maxFeePerGas"]) >= first_fee * 1.125
    assert sender.pending() == []


def test_the_fee_cap_stops_replacements(anvil: Anvil) -> None:
    w3 = _w3(anvil.rpc_url)
    sender = TxSender(w3, KEY, priority_fee=GWEI, replace_after=0.2)
    anvil.rpc("anvil_setAutomine", [False])
    pending = sender.submit(_transfer())
    sender.max_fee_cap = int(pending.tx["maxFeePerGas"])  # no room to raise the fee
    with _Miner(anvil, base_fee=int(pending.tx["maxFeePerGas"]) * 20), pytest.raises(TransactionFailed):
        pending.wait(timeout=3)
    assert pending.hashes == [pending.tx_hash]
    stuck = sender.stuck(older_than=0)
    assert [item.nonce for item in stuck] == [pending.nonce]


# ---------------------------------------------------------------- (c) a key shared with another process

_OTHER_PROCESS = """
import sys
from eth_account import Account
from web3 import HTTPProvider, Web3
w3 = Web3(Web3.HTTPProvider(sys.argv[1]))
account = Account.from_key(sys.argv[2])
nonce = w3.eth.get_transaction_count(account.address, "pending")
tx = {"to": account.address, "value": 0, "gas": 21000, "maxFeePerGas": 10**11,
      "maxPriorityFeePerGas": 10**9, "nonce": nonce, "chainId": w3.eth.chain_id}
print(w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction).hex())
"""


def _other_process_sends(url: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _OTHER_PROCESS, url, KEY], check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


def test_a_nonce_used_by_another_process_is_recovered_from(anvil: Anvil) -> None:
    w3 = _w3(anvil.rpc_url)
    sender = TxSender(w3, KEY)
    assert sender.send(_transfer())["status"] == 1  # the local count is now primed
    local = sender.nonces.peek()
    other = _other_process_sends(anvil.rpc_url)  # takes nonce `local` behind our back
    assert w3.eth.get_transaction(other)["nonce"] == local
    receipt = sender.send(_transfer())
    assert receipt["status"] == 1
    assert w3.eth.get_transaction(receipt["transactionHash"])["nonce"] == local + 1
    assert sender.nonces.peek() == local + 2


def test_a_dropped_transaction_whose_nonce_another_process_took_is_sent_again(anvil: Anvil) -> None:
    w3 = _w3(anvil.rpc_url)
    sender = TxSender(w3, KEY, replace_after=None)
    anvil.rpc("anvil_setAutomine", [False])
    pending = sender.submit(_transfer(7))
    anvil.rpc("anvil_dropTransaction", [pending.tx_hash.hex()])
    other = _other_process_sends(anvil.rpc_url)
    anvil.rpc("evm_mine", [])
    assert w3.eth.get_transaction(other)["nonce"] == pending.nonce
    anvil.rpc("evm_setIntervalMining", [1])
    try:
        receipt = pending.wait(timeout=120)
    finally:
        anvil.rpc("evm_setIntervalMining", [0])
    assert receipt["status"] == 1
    mined = w3.eth.get_transaction(receipt["transactionHash"])
    assert mined["value"] == 7
    assert mined["nonce"] == pending.nonce == w3.eth.get_transaction(other)["nonce"] + 1


def test_a_transaction_behind_nonces_a_reorg_took_back_is_mined_once(anvil: Anvil) -> None:
    w3 = _w3(anvil.rpc_url)
    sender = TxSender(w3, KEY, replace_after=None)  # the gap is filled without any replacement
    first = sender.send(_transfer(5))
    lost_nonce = w3.eth.get_transaction(first["transactionHash"])["nonce"]
    anvil.rpc("anvil_reorg", [1, []])  # the block holding it is replaced by an empty one
    assert _count(w3, sender.address) == lost_nonce  # the chain lost that nonce; the sender does not know
    receipt = sender.send(_transfer(9), retry_until=time.time() + 120)
    mined = w3.eth.get_transaction(receipt["transactionHash"])
    assert receipt["status"] == 1
    assert mined["value"] == 9
    assert mined["nonce"] == lost_nonce + 1  # its own nonce: the gap below it was filled
    mine = [
        tx
        for n in range(w3.eth.block_number + 1)
        for tx in w3.eth.get_block(n, full_transactions=True)["transactions"]
        if tx["from"] == sender.address  # type: ignore[index]
    ]
    assert [tx["value"] for tx in mine].count(9) == 1  # mined once, never re-signed lower  # type: ignore[index]
    assert [tx["nonce"] for tx in mine] == list(range(lost_nonce + 2))  # type: ignore[index]


def test_an_answer_is_not_a_transient_failure() -> None:
    """A receipt not found is an answer (retrying it as an outage stalled the solver); digits inside
    a hash never read as an HTTP status."""
    from web3.exceptions import TransactionNotFound, Web3RPCError

    from tender.chain import is_transient

    assert not is_transient(TransactionNotFound("Transaction with hash: '0x4c2e…8829425eeb' not found."))
    refused = Web3RPCError("refused")
    refused.rpc_response = {"error": {"message": "execution reverted: 0x8829425e503"}}
    assert not is_transient(refused)
    limited = Web3RPCError("limited")
    limited.rpc_response = {"error": {"message": "HTTP 429 Too Many Requests"}}
    assert is_transient(limited)
