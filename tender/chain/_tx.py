"""Sending transactions: nonces, gas, fees, retries, receipts and decoded reverts.

A :class:`TxSender` signs with one key. Every sender for the same key on the same chain shares
one :class:`NonceManager`, so threads (and coroutines through ``asyncio.to_thread``) can send
concurrently without reusing a nonce::

    sender = TxSender(w3, key)
    receipt = sender.send(token.functions.approve(market, amount))

Reverts are raised as :class:`~tender.errors.ContractRevert` with the custom error decoded
from the ABI of every Tender contract; a transaction mined with status 0 raises
:class:`~tender.errors.TransactionFailed` (its ``revert`` holds the replayed reason).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import requests
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils import keccak
from hexbytes import HexBytes
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError, TimeExhausted, TransactionNotFound, Web3RPCError
from web3.types import TxParams, TxReceipt

from tender.chain._reverts import RevertDecoder, tender_decoder
from tender.errors import ChainError, ContractRevert, TransactionFailed

__all__ = ["NonceManager", "PendingTx", "TxSender", "nonce_manager", "resync_nonces", "with_retries"]

T = TypeVar("T")

_TRANSIENT_MESSAGES = ("timeout", "timed out", "rate limit", "too many requests", "header not found",
                       "connection reset", "503", "502", "504", "temporarily unavailable")  # fmt: skip
_NONCE_TOO_LOW = ("nonce too low", "nonce has already been used", "oldnonce", "nonce is too low")
_ALREADY_KNOWN = ("already known", "known transaction", "already imported")


def _message(exc: BaseException) -> str:
    if isinstance(exc, Web3RPCError) and isinstance(exc.rpc_response, dict):
        error = exc.rpc_response.get("error")
        if isinstance(error, dict):
            return str(error.get("message", exc)).lower()
    return str(exc).lower()


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, requests.ConnectionError | requests.Timeout | ConnectionError | TimeoutError):
        return True
    if isinstance(exc, requests.HTTPError):
        status = exc.response.status_code if exc.response is not None else 0
        return status == 429 or status >= 500
    if isinstance(exc, Web3RPCError):
        return any(text in _message(exc) for text in _TRANSIENT_MESSAGES)
    return False


def with_retries(call: Callable[[], T], *, retries: int, backoff: float) -> T:
    """Run ``call``; on a transient RPC error retry up to ``retries`` times, doubling ``backoff``."""
    attempt = 0
    while True:
        try:
            return call()
        except Exception as exc:  # narrowed right below: only transient errors are retried
            if attempt >= retries or not _is_transient(exc):
                raise
            time.sleep(backoff * (2**attempt))
            attempt += 1


class NonceManager:
    """The next nonce of one account on one chain, tracked locally.

    It reads the chain's pending count once, then counts up as transactions go out; after a
    "nonce too low" answer (another process used the key) :meth:`resync` reads it again.
    """

    def __init__(self, w3: Web3, address: str) -> None:
        self._w3 = w3
        self.address = address
        self.lock = threading.RLock()
        self._next: int | None = None

    def peek(self) -> int:
        """The nonce the next transaction will use (call with :attr:`lock` held)."""
        with self.lock:
            if self._next is None:
                self._next = self._w3.eth.get_transaction_count(self.address, "pending")  # type: ignore[arg-type]
            return self._next

    def advance(self) -> None:
        """Record that the nonce from :meth:`peek` was used."""
        with self.lock:
            self._next = self.peek() + 1

    def resync(self) -> None:
        """Forget the local count; the next :meth:`peek` asks the chain."""
        with self.lock:
            self._next = None


_MANAGERS: dict[tuple[str, str], NonceManager] = {}
_MANAGERS_LOCK = threading.Lock()


def _chain_key(w3: Web3) -> str:
    endpoint = getattr(w3.provider, "endpoint_uri", None) or f"provider-{id(w3.provider)}"
    # The genesis hash tells a restarted devnet on a reused port from the old one.
    genesis = w3.eth.get_block(0)["hash"]
    return f"{endpoint}#{HexBytes(genesis).hex()}"


def nonce_manager(w3: Web3, address: str) -> NonceManager:
    """The one :class:`NonceManager` of ``address`` on the chain ``w3`` talks to."""
    key = (_chain_key(w3), address)
    with _MANAGERS_LOCK:
        manager = _MANAGERS.get(key)
        if manager is None:
            manager = _MANAGERS[key] = NonceManager(w3, address)
        return manager


def resync_nonces(w3: Web3 | None = None) -> None:
    """Make every nonce manager (of ``w3``'s chain, or all) read the chain again.

    Call it after rewinding a devnet (``evm_revert``, ``anvil_reset``): local counts would
    otherwise run ahead of the chain.
    """
    prefix = _chain_key(w3) if w3 is not None else None
    with _MANAGERS_LOCK:
        for (chain, _), manager in _MANAGERS.items():
            if prefix is None or chain == prefix:
                manager.resync()


@dataclass
class PendingTx:
    """A broadcast transaction; :meth:`wait` returns its receipt or raises."""

    sender: TxSender
    tx_hash: HexBytes
    tx: TxParams

    def wait(self, *, timeout: float | None = None, confirmations: int | None = None) -> TxReceipt:
        return self.sender.wait(self, timeout=timeout, confirmations=confirmations)


class TxSender:
    """Signs and sends transactions from one key.

    Args:
        w3: a connected :class:`~web3.Web3`.
        key: a private key (hex or bytes) or an ``eth_account`` local account.
        decoder: decodes revert data; defaults to every Tender contract's errors.
        confirmations: blocks on top of the receipt's block to wait for (0: none).
        timeout: seconds to wait for a receipt.
        poll_interval: seconds between receipt polls.
        retries: how many times a transient RPC error is retried.
        backoff: first retry delay in seconds (doubles each time).
        gas_multiplier: safety factor on estimated gas.
        priority_fee: tip in wei (``None``: ask the node).
    """

    def __init__(
        self,
        w3: Web3,
        key: str | bytes | LocalAccount,
        *,
        decoder: RevertDecoder | None = None,
        confirmations: int = 0,
        timeout: float = 120.0,
        poll_interval: float = 0.05,
        retries: int = 3,
        backoff: float = 0.25,
        gas_multiplier: float = 1.2,
        priority_fee: int | None = None,
    ) -> None:
        self.w3 = w3
        self.account: LocalAccount = key if isinstance(key, LocalAccount) else Account.from_key(key)
        self.address: ChecksumAddress = self.account.address
        self._decoder = decoder
        self.confirmations = confirmations
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.retries = retries
        self.backoff = backoff
        self.gas_multiplier = gas_multiplier
        self.priority_fee = priority_fee
        self.chain_id: int = self._rpc(lambda: w3.eth.chain_id)
        self.nonces = nonce_manager(w3, self.address)

    def __repr__(self) -> str:
        return f"TxSender({self.address}, chain {self.chain_id})"

    @property
    def decoder(self) -> RevertDecoder:
        if self._decoder is None:
            self._decoder = tender_decoder()
        return self._decoder

    def _rpc(self, call: Callable[[], T]) -> T:
        return with_retries(call, retries=self.retries, backoff=self.backoff)

    # -- building -----------------------------------------------------------------------

    def _base_tx(self, what: ContractFunction | TxParams, value: int) -> TxParams:
        tx: dict[str, Any]
        if isinstance(what, ContractFunction):
            tx = {"to": what.address, "data": what._encode_transaction_data()}
        else:
            tx = dict(what)
        tx["from"] = self.address
        if value:
            tx["value"] = value
        tx.setdefault("value", 0)
        tx["chainId"] = self.chain_id
        return cast(TxParams, tx)

    def _revert(self, exc: BaseException) -> ContractRevert | None:
        return self.decoder.from_exception(exc)

    def estimate(self, what: ContractFunction | TxParams, *, value: int = 0) -> int:
        """Estimated gas of a call; a revert raises :class:`ContractRevert`."""
        tx = self._base_tx(what, value)
        try:
            return int(self._rpc(lambda: self.w3.eth.estimate_gas(tx)))
        except (ContractLogicError, Web3RPCError) as exc:
            revert = self._revert(exc)
            if revert is not None:
                raise revert from exc
            raise ChainError(f"gas estimation failed: {exc}") from exc

    def call(
        self, what: ContractFunction | TxParams, *, value: int = 0, block: int | str = "latest"
    ) -> bytes:
        """``eth_call`` from this account; returns raw output, raises a decoded revert."""
        tx = self._base_tx(what, value)
        try:
            return bytes(self._rpc(lambda: self.w3.eth.call(tx, block)))  # type: ignore[arg-type]
        except (ContractLogicError, Web3RPCError) as exc:
            revert = self._revert(exc)
            if revert is not None:
                raise revert from exc
            raise ChainError(f"call failed: {exc}") from exc

    def _fees(self) -> tuple[int, int]:
        tip = self.priority_fee
        if tip is None:
            tip = int(self._rpc(lambda: self.w3.eth.max_priority_fee))
        block = self._rpc(lambda: self.w3.eth.get_block("latest"))
        base = int(block.get("baseFeePerGas", 0))
        return 2 * base + tip, tip

    # -- sending ------------------------------------------------------------------------

    def submit(
        self, what: ContractFunction | TxParams, *, value: int = 0, gas: int | None = None
    ) -> PendingTx:
        """Estimate, sign and broadcast; returns without waiting for the receipt."""
        tx = cast(dict[str, Any], self._base_tx(what, value))
        if gas is None:
            gas = int(self.estimate(cast(TxParams, tx)) * self.gas_multiplier) + 10_000
        tx["gas"] = gas
        tx["maxFeePerGas"], tx["maxPriorityFeePerGas"] = self._fees()
        tx.pop("gasPrice", None)
        for attempt in range(self.retries + 2):
            with self.nonces.lock:
                tx["nonce"] = self.nonces.peek()
                raw = self.account.sign_transaction(tx).raw_transaction
                try:
                    self._rpc(lambda: self.w3.eth.send_raw_transaction(raw))  # noqa: B023 (called right here)
                except Web3RPCError as exc:
                    message = _message(exc)
                    if any(text in message for text in _ALREADY_KNOWN) or self._known(raw):
                        pass  # a retried broadcast that had gone through (maybe mined): same hash
                    elif any(text in message for text in _NONCE_TOO_LOW) and attempt <= self.retries:
                        self.nonces.resync()
                        continue
                    else:
                        revert = self._revert(exc)
                        if revert is not None:
                            raise revert from exc
                        raise TransactionFailed(f"broadcast refused: {exc}") from exc
                self.nonces.advance()
                return PendingTx(self, HexBytes(keccak(raw)), cast(TxParams, tx))
        raise TransactionFailed(f"could not find a free nonce for {self.address}")

    def _known(self, raw: bytes) -> bool:
        """Whether the node already has this signed transaction (pending or mined)."""
        try:
            self.w3.eth.get_transaction(HexBytes(keccak(raw)))
        except (TransactionNotFound, Web3RPCError):
            return False
        return True

    def wait(
        self, pending: PendingTx, *, timeout: float | None = None, confirmations: int | None = None
    ) -> TxReceipt:
        """The receipt of ``pending`` once mined (and confirmed); raises on status 0."""
        timeout = self.timeout if timeout is None else timeout
        confirmations = self.confirmations if confirmations is None else confirmations
        deadline = time.monotonic() + timeout
        receipt: TxReceipt | None = None
        while receipt is None:
            try:
                receipt = self._rpc(lambda: self.w3.eth.get_transaction_receipt(pending.tx_hash))
            except (TransactionNotFound, TimeExhausted):
                if time.monotonic() > deadline:
                    self.nonces.resync()
                    raise TransactionFailed(
                        f"transaction {pending.tx_hash.hex()} not mined within {timeout}s",
                        tx_hash=pending.tx_hash,
                    ) from None
                time.sleep(self.poll_interval)
        while (
            confirmations
            and self._rpc(lambda: self.w3.eth.block_number) - receipt["blockNumber"] < confirmations
        ):
            if time.monotonic() > deadline:
                raise TransactionFailed(
                    f"{pending.tx_hash.hex()} not confirmed in time", tx_hash=pending.tx_hash
                )
            time.sleep(self.poll_interval)
        if receipt["status"] != 1:
            revert = self._replay(pending.tx, receipt)
            shown = f": {revert}" if revert is not None else ""
            raise TransactionFailed(
                f"transaction {pending.tx_hash.hex()} failed{shown}", tx_hash=pending.tx_hash, revert=revert
            )
        return receipt

    def _replay(self, tx: TxParams, receipt: TxReceipt) -> ContractRevert | None:
        call = {k: v for k, v in tx.items() if k in ("from", "to", "data", "value", "gas")}
        try:
            self.w3.eth.call(cast(TxParams, call), receipt["blockNumber"] - 1)
        except (ContractLogicError, Web3RPCError) as exc:
            return self._revert(exc)
        return None

    def send(
        self,
        what: ContractFunction | TxParams,
        *,
        value: int = 0,
        gas: int | None = None,
        confirmations: int | None = None,
    ) -> TxReceipt:
        """Estimate, sign, broadcast and wait for the receipt.

        Raises:
            ContractRevert: the call reverts (found while estimating gas).
            TransactionFailed: mined with status 0, or not mined in time.
        """
        return self.wait(self.submit(what, value=value, gas=gas), confirmations=confirmations)

    async def send_async(
        self,
        what: ContractFunction | TxParams,
        *,
        value: int = 0,
        gas: int | None = None,
        confirmations: int | None = None,
    ) -> TxReceipt:
        """:meth:`send` in a worker thread, for asyncio daemons."""
        return await asyncio.to_thread(self.send, what, value=value, gas=gas, confirmations=confirmations)

    def transfer_eth(self, to: str, amount: int) -> TxReceipt:
        """Send ``amount`` wei of the native coin to ``to``."""
        return self.send(cast(TxParams, {"to": Web3.to_checksum_address(to)}), value=amount)

    def deploy(self, bytecode: bytes, *, gas: int | None = None) -> tuple[str, TxReceipt]:
        """Deploy creation code (constructor arguments already appended); returns the address."""
        receipt = self.send(cast(TxParams, {"data": HexBytes(bytecode)}), gas=gas)
        address = receipt.get("contractAddress")
        if not address:
            raise TransactionFailed(
                "deployment receipt holds no contract address", tx_hash=receipt["transactionHash"]
            )
        return Web3.to_checksum_address(address), receipt
