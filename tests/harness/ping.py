"""A bare Anvil with a contract that emits ``Ping(uint256 n)``: logs to follow, reorg, and replay
without deploying Tender (the event feed's tests)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from eth_account import Account
from eth_utils.crypto import keccak
from web3 import Web3

from tender.anvil import DEV_KEYS, Anvil

__all__ = ["PING_ABI", "ping", "ping_chain"]

# The fallback emits ``Ping(uint256 n)`` with the calldata as ``n``:
# CALLDATASIZE PUSH1 0 PUSH1 0 CALLDATACOPY PUSH32 topic CALLDATASIZE PUSH1 0 LOG1 STOP.
_TOPIC = keccak(text="Ping(uint256)")
_RUNTIME = "3660006000377f" + _TOPIC.hex() + "3660" + "00a100"
_INIT = f"60{len(_RUNTIME) // 2:02x}600c60003960{len(_RUNTIME) // 2:02x}6000f3" + _RUNTIME
PING_ABI = [
    {
        "type": "event",
        "name": "Ping",
        "anonymous": False,
        "inputs": [{"name": "n", "type": "uint256", "indexed": False}],
    }
]


@contextlib.contextmanager
def ping_chain() -> Iterator[tuple[Anvil, Web3, str]]:
    """An Anvil, a web3 on it, and the Ping emitter's address."""
    with Anvil() as anvil:
        w3 = Web3(Web3.HTTPProvider(anvil.rpc_url))
        tx = {"from": Account.from_key(DEV_KEYS[0]).address, "data": "0x" + _INIT, "gas": 200_000}
        receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction(tx))  # type: ignore[arg-type]
        yield anvil, w3, str(receipt["contractAddress"])


def ping(w3: Web3, emitter: str, n: int) -> None:
    """Emit ``Ping(n)`` and wait for it to be mined."""
    tx = {
        "from": w3.eth.accounts[0],
        "to": emitter,
        "data": "0x" + n.to_bytes(32, "big").hex(),
        "gas": 60_000,
    }
    w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction(tx))  # type: ignore[arg-type]
