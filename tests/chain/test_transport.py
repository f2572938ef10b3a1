"""Transaction sending, nonces, revert decoding, artefacts and deployment records on Anvil.

Uses the OpenZeppelin ERC-20 ``T`` compiled with the smoke test, so it runs before (and
independently of) the Tender contracts.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from web3 import Web3

from tender.anvil import DEV_KEYS, Anvil
from tender.chain import (
    Artifact,
    Deployment,
    RevertDecoder,
    Token,
    TxSender,
    load_artifact,
    resync_nonces,
)
from tender.chain._deploy import constructor_data
from tender.chain._events import Approval, RawEvent, Transfer
from tender.errors import ArtifactError, ConfigError, ContractRevert, DeploymentError, TransactionFailed


@pytest.fixture(scope="module")
def w3() -> Iterator[Web3]:
    with Anvil() as chain:
        yield Web3(Web3.HTTPProvider(chain.rpc_url))


@pytest.fixture(scope="module")
def erc20() -> Artifact:
    return load_artifact("TestToken")


@pytest.fixture(scope="module")
def token(w3: Web3, erc20: Artifact) -> Token:
    sender = TxSender(w3, DEV_KEYS[0], decoder=RevertDecoder(erc20.abi))
    address, _ = sender.deploy(constructor_data(erc20, ["Test", "TST", 18]))
    return Token(w3, address, sender=sender, artifact=erc20)


def test_concurrent_sends_from_threads_use_distinct_nonces(w3: Web3) -> None:
    sender = TxSender(w3, DEV_KEYS[2])
    start = w3.eth.get_transaction_count(sender.address)
    to = Account.from_key(DEV_KEYS[9]).address
    hashes: list[bytes] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(5):
            receipt = sender.transfer_eth(to, 1)
            with lock:
                hashes.append(bytes(receipt["transactionHash"]))

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(hashes)) == 30
    assert w3.eth.get_transaction_count(sender.address) == start + 30


def test_senders_of_one_key_share_a_nonce_manager(w3: Web3) -> None:
    assert TxSender(w3, DEV_KEYS[3]).nonces is TxSender(w3, DEV_KEYS[3]).nonces


def test_nonce_too_low_resyncs(w3: Web3) -> None:
    sender = TxSender(w3, DEV_KEYS[4])
    to = Account.from_key(DEV_KEYS[9]).address
    sender.transfer_eth(to, 1)
    # Another process spends the next nonce behind the sender's back.
    account = Account.from_key(DEV_KEYS[4])
    tx = {
        "to": to,
        "value": 1,
        "gas": 21_000,
        "maxFeePerGas": 10**11,
        "maxPriorityFeePerGas": 10**9,
        "nonce": w3.eth.get_transaction_count(account.address),
        "chainId": w3.eth.chain_id,
    }
    w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
    receipt = sender.transfer_eth(to, 1)
    assert receipt["status"] == 1


def test_resync_after_evm_revert(w3: Web3) -> None:
    sender = TxSender(w3, DEV_KEYS[5])
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    sender.transfer_eth(sender.address, 1)
    w3.provider.make_request("evm_revert", [snapshot])  # type: ignore[arg-type]
    resync_nonces(w3)
    sender.timeout = 5
    assert sender.transfer_eth(sender.address, 1)["status"] == 1


def test_revert_is_decoded_from_the_abi(w3: Web3, token: Token) -> None:
    poor = token.using(TxSender(w3, DEV_KEYS[6], decoder=token.decoder))
    with pytest.raises(ContractRevert) as caught:
        poor.transfer(token.address, 5)
    assert caught.value.name == "ERC20InsufficientBalance"
    assert caught.value.args_by_name == {"sender": poor._me(), "balance": 0, "needed": 5}
    assert caught.value.data[:4] == token.decoder.selector("ERC20InsufficientBalance")


def test_failed_transaction_carries_the_replayed_revert(w3: Web3, token: Token) -> None:
    sender = TxSender(w3, DEV_KEYS[6], decoder=token.decoder)
    with pytest.raises(TransactionFailed) as caught:
        sender.send(token.fn.transfer(token.address, 5), gas=80_000)  # skip estimation: mined, status 0
    assert caught.value.revert is not None
    assert caught.value.revert.name == "ERC20InsufficientBalance"
    assert caught.value.tx_hash is not None


def test_unknown_and_builtin_reverts() -> None:
    decoder = RevertDecoder([])
    assert decoder.decode(b"\xde\xad\xbe\xef").name == "unknown"
    error_string = decoder.selector("Error") + bytes.fromhex(
        "0000000000000000000000000000000000000000000000000000000000000020"
        "0000000000000000000000000000000000000000000000000000000000000002"
        "6869000000000000000000000000000000000000000000000000000000000000"
    )
    assert decoder.decode(error_string).args_by_name == {"message": "hi"}
    panic = decoder.decode(decoder.selector("Panic") + (0x11).to_bytes(32, "big"))
    assert (panic.name, panic.args_by_name) == ("Panic", {"code": 0x11})


def test_events_are_typed(w3: Web3, token: Token) -> None:
    receipt = token.approve(Account.from_key(DEV_KEYS[7]).address, 7)
    (event,) = token.events_in(receipt)
    assert isinstance(event, Approval)
    assert (event.owner, event.value, event.block_number) == (token._me(), 7, receipt["blockNumber"])
    assert event in list(token.events(names=["Approval"]))
    assert not [e for e in token.events() if isinstance(e, RawEvent | Transfer)]


def test_wrapper_without_sender_refuses_to_send(w3: Web3, token: Token, erc20: Artifact) -> None:
    reader = Token(w3, token.address, artifact=erc20)
    assert reader.balance_of(token.address) == 0
    with pytest.raises(ConfigError):
        reader.approve(token.address, 1)


def test_missing_artifact_says_make_contracts(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="make contracts"):
        load_artifact("Nope", artifacts_dir=tmp_path)


def test_deployment_record_round_trip(tmp_path: Path) -> None:
    a = [Account.from_key(k).address for k in DEV_KEYS[:5]]
    deployment = Deployment(
        chain_id=31337,
        token=a[0],
        registry=a[1],
        staking=a[2],
        markets={"reverse": a[3], "dutch": a[4]},
        block=7,
    )
    path = deployment.save(tmp_path / "31337.json")
    assert Deployment.load(31337, path=path) == deployment
    assert deployment.market("dutch") == a[4]
    with pytest.raises(DeploymentError):
        Deployment.load(1, path=path)
    with pytest.raises(DeploymentError, match="no deployment"):
        Deployment.load(path=tmp_path / "missing.json")


def test_confirmations_wait_for_blocks_on_top(w3: Web3) -> None:
    sender = TxSender(w3, DEV_KEYS[8], poll_interval=0.01)
    stop = threading.Event()

    def miner() -> None:
        while not stop.wait(0.05):
            w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

    thread = threading.Thread(target=miner)
    thread.start()
    try:
        receipt = sender.send({"to": sender.address}, value=1, confirmations=3)
    finally:
        stop.set()
        thread.join()
    assert w3.eth.block_number - receipt["blockNumber"] >= 3


def test_connect_refuses_a_dead_endpoint() -> None:
    from tender.anvil import free_port
    from tender.chain import connect
    from tender.errors import ChainError

    with pytest.raises(ChainError, match="no JSON-RPC node"):
        connect(f"http://127.0.0.1:{free_port()}", timeout=0.5)


def test_broadcast_retried_after_a_lost_reply_is_not_sent_twice(
    w3: Web3, monkeypatch: pytest.MonkeyPatch
) -> None:
    import requests

    sender = TxSender(w3, DEV_KEYS[7], backoff=0.0)
    real = w3.eth.send_raw_transaction
    lost: list[bool] = []

    def flaky(raw: bytes) -> object:
        result = real(raw)
        if not lost:
            lost.append(True)
            raise requests.ConnectionError("connection reset after the node accepted the transaction")
        return result

    monkeypatch.setattr(w3.eth, "send_raw_transaction", flaky)
    start = w3.eth.get_transaction_count(sender.address)
    receipt = sender.transfer_eth(sender.address, 1)
    assert receipt["status"] == 1
    assert lost == [True]
    assert w3.eth.get_transaction_count(sender.address) == start + 1
