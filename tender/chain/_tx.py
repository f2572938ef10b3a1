"""Sending transactions: nonces, gas, fees, retries, stuck-transaction replacement, receipts.

A :class:`TxSender` signs with one key. Every sender for the same key on the same chain shares
one :class:`NonceManager`, so threads (and coroutines through ``asyncio.to_thread``) can send
concurrently without reusing a nonce::

    sender = TxSender(w3, key)
    receipt = sender.send(token.functions.approve(market, amount))

Surviving the chain's stumbles:

* **RPC outages.** A transient error (connection refused or reset, a timeout, HTTP 5xx or
  429, "header not found") is retried ``retries`` times, or, when the caller passes
  ``retry_until`` (unix seconds, e.g. the job's deadline), until then, with a backoff that
  doubles up to ``backoff_cap``. A revert is permanent and raises at once.
* **Uncertain broadcasts.** After a broadcast that failed or may have failed, the sender
  asks whether the node knows the signed transaction's hash (then it went through) and
  otherwise reads the account's ``pending`` nonce again before signing anew, so a nonce
  used meanwhile by another process with the same key is skipped, not reused.
* **Stuck transactions.** :meth:`TxSender.wait` re-signs a transaction that is not mined
  after ``replace_after`` seconds with the same nonce and fees raised by at least 12.5 %
  (never above ``max_fee_cap``), and accepts the receipt of whichever version is mined.
  :meth:`TxSender.pending` and :meth:`TxSender.stuck` list what is in flight and for how
  long, for a role's ``/health``.
* **Lost nonces.** A transaction waiting behind nonces the chain no longer has (a reorg took
  them back) gets the gap filled with empty self-transfers after :data:`GAP_GRACE_S`; one whose
  nonce another transaction of the key took is signed again on a fresh nonce.

Reverts are raised as :class:`~tender.errors.ContractRevert` with the custom error decoded
from the ABI of every Tender contract; a transaction mined with status 0 raises
:class:`~tender.errors.TransactionFailed` (its ``revert`` holds the replayed reason).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import re
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

import aiohttp
import requests
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils import keccak
from hexbytes import HexBytes
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.exceptions import (
    BlockNotFound,
    ContractLogicError,
    TimeExhausted,
    TransactionNotFound,
    Web3RPCError,
)
from web3.types import TxParams, TxReceipt

from tender.chain._reverts import RevertDecoder, tender_decoder
from tender.errors import ChainError, ContractRevert, TransactionFailed

__all__ = [
    "InFlight",
    "NonceManager",
    "PendingTx",
    "TxSender",
    "is_transient",
    "nonce_manager",
    "resync_nonces",
    "with_retries",
    "with_retries_async",
]

T = TypeVar("T")
P = ParamSpec("P")
log = logging.getLogger(__name__)

_TRANSIENT_MESSAGES = (
    "timeout",
    "timed out",
    "rate limit",
    "too many requests",
    "header not found",
    "connection reset",
    "connection refused",
    "connection aborted",
    "remote end closed",
    "temporarily unavailable",
)
#: HTTP statuses worth a retry, as whole numbers in a message (never digits inside a hash).
_TRANSIENT_STATUS = re.compile(r"\b(?:429|50[0-4])\b")
#: What nodes answer a broadcast whose nonce was used, whose bytes they hold, whose fee is too low.
NONCE_TOO_LOW = ("nonce too low", "nonce has already been used", "oldnonce", "nonce is too low")
ALREADY_KNOWN = ("already known", "known transaction", "already imported")
UNDERPRICED = ("replacement transaction underpriced", "replacement underpriced")

#: The smallest fee raise a node accepts for a replacement is 10 %; Tender raises by 12.5 %.
FEE_BUMP = 0.125
#: Seconds a broadcast may sit behind a nonce the chain lacks before the gap is filled.
GAP_GRACE_S = 2.0


def rpc_message(exc: BaseException) -> str:
    """The node's error message of ``exc``, lower case (the JSON-RPC ``error.message`` when there is one)."""
    if isinstance(exc, Web3RPCError) and isinstance(exc.rpc_response, dict):
        error = exc.rpc_response.get("error")
        if isinstance(error, dict):
            return str(error.get("message", exc)).lower()
    return str(exc).lower()


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is an RPC failure worth retrying (never a revert or a refused tx)."""
    if isinstance(
        exc, requests.ConnectionError | requests.Timeout | OSError | TimeoutError | aiohttp.ClientError
    ):
        return True  # the node unreachable or slow, from the sync (requests) or async (aiohttp) provider
    if isinstance(exc, requests.HTTPError):
        status = exc.response.status_code if exc.response is not None else 0
        return status == 429 or status >= 500
    if isinstance(exc, ContractLogicError | TransactionNotFound | BlockNotFound):
        return False  # answers, not failures (web3 7 raises them as Web3RPCError subclasses)
    if isinstance(exc, Web3RPCError):
        message = rpc_message(exc)
        return any(text in message for text in _TRANSIENT_MESSAGES) or bool(_TRANSIENT_STATUS.search(message))
    return False


def capped_fees(base_fee: int, tip: int, cap: int | None) -> tuple[int, int]:
    """EIP-1559 ``(maxFeePerGas, maxPriorityFeePerGas)`` over ``base_fee``: twice the base fee
    plus ``tip``, and ``tip``; each at most ``cap`` when there is one."""
    max_fee = 2 * base_fee + tip
    if cap is None:
        return max_fee, tip
    return min(max_fee, cap), min(tip, cap)


def failed_call(exc: BaseException, revert: ContractRevert | None, what: str) -> Exception:
    """What a refused call or estimate raises: its decoded ``revert``, else a ChainError that
    ``what`` failed."""
    return revert if revert is not None else ChainError(f"{what} failed: {exc}")


def in_thread(fn: Callable[P, T]) -> Callable[P, Coroutine[Any, Any, T]]:
    """``fn`` as a coroutine function that runs it in a worker thread (its signature kept)."""

    @functools.wraps(fn)
    async def run(*args: P.args, **kwargs: P.kwargs) -> T:
        return await asyncio.to_thread(fn, *args, **kwargs)

    return run


def forwarded(
    method: Callable[Concatenate[Any, P], T],
) -> Callable[Concatenate[Any, P], Coroutine[Any, Any, T]]:
    """The async twin of ``method``, for a class whose instances hold the sync object as ``sync``.

    ``post = forwarded(Market.post)`` makes ``await twin.post(intent)`` run ``twin.sync.post(intent)``
    in a worker thread (:func:`in_thread`), looked up by name so a subclass's override is the one
    run; the name, docstring and signature are ``method``'s, for mypy and ``inspect`` alike.
    """
    name = method.__name__

    @functools.wraps(method)
    async def call(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> T:
        bound: Callable[P, T] = getattr(self.sync, name)
        return await in_thread(bound)(*args, **kwargs)

    return call


def _delay(backoff: float, attempt: int, cap: float) -> float:
    return float(min(cap, backoff * 2.0 ** min(attempt, 30)))


def _retry_pause(
    exc: Exception, attempt: int, *, retries: int, backoff: float, until: float | None, cap: float
) -> float | None:
    """The pause before retrying after ``exc`` on attempt ``attempt`` (from 0); ``None``: give up."""
    if not is_transient(exc):
        return None
    pause = _delay(backoff, attempt, cap)
    out_of_time = attempt >= retries if until is None else time.time() + pause > until
    return None if out_of_time else pause


def with_retries(
    call: Callable[[], T],
    *,
    retries: int,
    backoff: float,
    until: float | None = None,
    cap: float = 2.0,
) -> T:
    """Run ``call``, retrying transient RPC errors with a doubling backoff (at most ``cap`` s).

    Without ``until`` it retries ``retries`` times; with ``until`` (unix seconds) it retries
    until that moment instead, however many times that takes. Other errors raise at once; the
    last transient error is raised when the retries run out.
    """
    attempt = 0
    while True:
        try:
            return call()
        except Exception as exc:  # narrowed by _retry_pause: only transient errors are retried
            pause = _retry_pause(exc, attempt, retries=retries, backoff=backoff, until=until, cap=cap)
            if pause is None:
                raise
            time.sleep(pause)
            attempt += 1


async def with_retries_async(
    call: Callable[[], Awaitable[T]],
    *,
    retries: int,
    backoff: float,
    until: float | None = None,
    cap: float = 2.0,
    on_retry: Callable[[Exception, int], None] | None = None,
) -> T:
    """:func:`with_retries` for a coroutine: the same rule, the pauses awaited; ``on_retry(exc,
    attempt)`` is told of each retry."""
    attempt = 0
    while True:
        try:
            return await call()
        except Exception as exc:  # narrowed by _retry_pause: only transient errors are retried
            pause = _retry_pause(exc, attempt, retries=retries, backoff=backoff, until=until, cap=cap)
            if pause is None:
                raise
            if on_retry is not None:
                on_retry(exc, attempt)
            await asyncio.sleep(pause)
            attempt += 1


class NonceManager:
    """The next nonce of one account on one chain, tracked locally.

    It reads the chain's pending count once, then counts up as transactions go out; after a
    "nonce too low" answer (another process used the key) :meth:`resync` reads it again.
    It also holds the account's transactions in flight (:attr:`inflight`, by nonce).
    """

    def __init__(self, w3: Web3, address: str) -> None:
        self._w3 = w3
        self.address = address
        self.lock = threading.RLock()
        self._next: int | None = None
        self.inflight: dict[int, PendingTx] = {}

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

    def used(self, nonce: int) -> None:
        """Record that ``nonce`` was used (the local count moves past it, never back)."""
        with self.lock:
            self._next = nonce + 1 if self._next is None else max(self._next, nonce + 1)

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
                with manager.lock:
                    manager.inflight.clear()


#: Seconds a nonce must look taken by another transaction (no receipt for any version) before
#: the transaction is signed again on a fresh nonce.
NONCE_TAKEN_GRACE_S = 2.0


@dataclass
class PendingTx:
    """A broadcast transaction; :meth:`wait` returns its receipt or raises.

    Attributes:
        tx_hash: the hash of the latest version broadcast.
        tx: the latest version's fields (nonce and fees included).
        hashes: every version broadcast with this nonce, oldest first (replacements add one).
        first_sent: when the first version went out (``time.monotonic``).
        last_sent: when the latest version went out (``time.monotonic``).
    """

    sender: TxSender
    tx_hash: HexBytes
    tx: TxParams
    hashes: list[HexBytes] = field(default_factory=list)
    first_sent: float = field(default_factory=time.monotonic)
    last_sent: float = field(default_factory=time.monotonic)
    #: when the chain was first seen to have mined this nonce without any of its versions
    taken_seen: float | None = None

    def __post_init__(self) -> None:
        if not self.hashes:
            self.hashes.append(self.tx_hash)

    @property
    def nonce(self) -> int:
        return int(self.tx["nonce"])

    @property
    def managed(self) -> bool:
        """Whether this sender signed it (its nonce and fees known): only then can it be replaced
        or re-sent; a bare hash handed over (a stored raw transaction) is only awaited."""
        return all(key in self.tx for key in ("nonce", "maxFeePerGas", "maxPriorityFeePerGas", "gas"))

    @property
    def age(self) -> float:
        """Seconds since the first version went out."""
        return time.monotonic() - self.first_sent

    def wait(
        self,
        *,
        timeout: float | None = None,
        confirmations: int | None = None,
        retry_until: float | None = None,
    ) -> TxReceipt:
        return self.sender.wait(self, timeout=timeout, confirmations=confirmations, retry_until=retry_until)


@dataclass(frozen=True)
class InFlight:
    """A transaction broadcast and not yet seen mined, as :meth:`TxSender.pending` reports it."""

    nonce: int
    tx_hash: str
    versions: int
    age_s: float


class TxSender:
    """Signs and sends transactions from one key.

    Args:
        w3: a connected :class:`~web3.Web3`.
        key: a private key (hex or bytes) or an ``eth_account`` local account.
        decoder: decodes revert data; defaults to every Tender contract's errors.
        confirmations: blocks on top of the receipt's block to wait for (0: none).
        timeout: seconds to wait for a receipt (when no ``retry_until`` is given).
        poll_interval: seconds between receipt polls.
        retries: how many times a transient RPC error is retried when no ``retry_until`` is given.
        backoff: first retry delay in seconds (doubles each time, up to ``backoff_cap``).
        backoff_cap: the longest pause between two retries.
        gas_multiplier: safety factor on estimated gas.
        priority_fee: tip in wei (``None``: ask the node).
        replace_after: seconds a broadcast transaction may wait unmined before it is replaced
            by the same nonce with higher fees (``None``: never replaced).
        max_fee_cap: the highest ``maxFeePerGas`` a replacement may offer (``None``: no cap).
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
        backoff_cap: float = 2.0,
        gas_multiplier: float = 1.2,
        priority_fee: int | None = None,
        replace_after: float | None = 30.0,
        max_fee_cap: int | None = None,
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
        self.backoff_cap = backoff_cap
        self.gas_multiplier = gas_multiplier
        self.priority_fee = priority_fee
        self.replace_after = replace_after
        self.max_fee_cap = max_fee_cap
        self.chain_id: int = self._rpc(lambda: w3.eth.chain_id)
        self.nonces = nonce_manager(w3, self.address)

    def __repr__(self) -> str:
        return f"TxSender({self.address}, chain {self.chain_id})"

    @property
    def decoder(self) -> RevertDecoder:
        if self._decoder is None:
            self._decoder = tender_decoder()
        return self._decoder

    def _rpc(self, call: Callable[[], T], until: float | None = None) -> T:
        return with_retries(
            call, retries=self.retries, backoff=self.backoff, until=until, cap=self.backoff_cap
        )

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

    def estimate(
        self, what: ContractFunction | TxParams, *, value: int = 0, retry_until: float | None = None
    ) -> int:
        """Estimated gas of a call; a revert raises :class:`ContractRevert` at once."""
        tx = self._base_tx(what, value)
        try:
            return int(self._rpc(lambda: self.w3.eth.estimate_gas(tx), retry_until))
        except (ContractLogicError, Web3RPCError) as exc:
            raise failed_call(exc, self._revert(exc), "gas estimation") from exc

    def call(
        self, what: ContractFunction | TxParams, *, value: int = 0, block: int | str = "latest"
    ) -> bytes:
        """``eth_call`` from this account; returns raw output, raises a decoded revert."""
        tx = self._base_tx(what, value)
        try:
            return bytes(self._rpc(lambda: self.w3.eth.call(tx, block)))  # type: ignore[arg-type]
        except (ContractLogicError, Web3RPCError) as exc:
            raise failed_call(exc, self._revert(exc), "call") from exc

    def _fees(self, until: float | None = None) -> tuple[int, int]:
        tip = self.priority_fee
        if tip is None:
            tip = int(self._rpc(lambda: self.w3.eth.max_priority_fee, until))
        block = self._rpc(lambda: self.w3.eth.get_block("latest"), until)
        return capped_fees(int(block.get("baseFeePerGas", 0)), tip, self.max_fee_cap)

    # -- sending ------------------------------------------------------------------------

    def submit(
        self,
        what: ContractFunction | TxParams,
        *,
        value: int = 0,
        gas: int | None = None,
        retry_until: float | None = None,
    ) -> PendingTx:
        """Estimate, sign and broadcast; returns without waiting for the receipt.

        Transient RPC errors are retried until ``retry_until`` (unix seconds; ``None``: the
        sender's ``retries``). After a broadcast that failed or may have failed, the node is
        asked whether it knows the signed hash and the nonce is read again from the chain.
        """
        tx = cast(dict[str, Any], self._base_tx(what, value))
        if gas is None:
            gas = (
                int(self.estimate(cast(TxParams, tx), retry_until=retry_until) * self.gas_multiplier) + 10_000
            )
        tx["gas"] = gas
        tx["maxFeePerGas"], tx["maxPriorityFeePerGas"] = self._fees(retry_until)
        tx.pop("gasPrice", None)
        refusals = 0  # "nonce too low" answers: another process uses the key
        failures = 0  # transient broadcast failures
        while True:
            with self.nonces.lock:
                tx["nonce"] = self._rpc(self.nonces.peek, retry_until)
                raw = self.account.sign_transaction(tx).raw_transaction
                tx_hash = HexBytes(keccak(raw))
                try:
                    self.w3.eth.send_raw_transaction(raw)
                    return self._sent(tx, tx_hash)
                except Exception as exc:  # sorted below: transient, already known, nonce used, refused
                    if is_transient(exc):
                        error: BaseException = exc
                    else:
                        message = rpc_message(exc)
                        if any(text in message for text in ALREADY_KNOWN) or self._known(tx_hash):
                            return self._sent(tx, tx_hash)  # a broadcast that had gone through
                        if any(text in message for text in (*NONCE_TOO_LOW, *UNDERPRICED)):
                            refusals += 1
                            if refusals > max(self.retries, 8):
                                raise TransactionFailed(
                                    f"could not find a free nonce for {self.address}"
                                ) from exc
                            log.info(
                                "tx.nonce_taken nonce=%s address=%s: reading it again",
                                tx["nonce"],
                                self.address,
                            )
                            self.nonces.resync()
                            continue
                        revert = self._revert(exc)
                        if revert is not None:
                            raise revert from exc
                        raise TransactionFailed(f"broadcast refused: {exc}") from exc
            # Transient: the broadcast may or may not have reached the node. Pause (without the
            # nonce lock), then look for the hash; if it is unknown, read the nonce again.
            pause = _delay(self.backoff, failures, self.backoff_cap)
            if (retry_until is None and failures >= self.retries) or (
                retry_until is not None and time.time() + pause > retry_until
            ):
                self.nonces.resync()
                raise error
            log.info(
                "tx.broadcast_retry nonce=%s attempt=%d error=%s",
                tx["nonce"],
                failures + 1,
                type(error).__name__,
            )
            time.sleep(pause)
            failures += 1
            try:
                if self._known(tx_hash, strict=True):
                    with self.nonces.lock:
                        return self._sent(tx, tx_hash)
            except Exception as exc:  # only transient ones: the next round retries them
                if not is_transient(exc):
                    raise
            self.nonces.resync()

    def _sent(self, tx: dict[str, Any], tx_hash: HexBytes) -> PendingTx:
        """Record a broadcast transaction (call with the nonce lock held)."""
        self.nonces.used(int(tx["nonce"]))
        pending = PendingTx(self, tx_hash, cast(TxParams, dict(tx)))
        self.nonces.inflight[pending.nonce] = pending
        return pending

    def _known(self, tx_hash: HexBytes, *, strict: bool = False) -> bool:
        """Whether the node already has this transaction (pending or mined).

        With ``strict``, transient errors raise instead of reading as "unknown".
        """
        try:
            self.w3.eth.get_transaction(tx_hash)
        except TransactionNotFound:
            return False
        except Exception as exc:  # transient RPC errors: unknown, unless the caller wants them
            if strict and is_transient(exc):
                raise
            if isinstance(exc, Web3RPCError) or is_transient(exc):
                return False
            raise
        return True

    def _receipt(self, pending: PendingTx) -> TxReceipt | None:
        """The receipt of whichever version of ``pending`` was mined, or ``None``."""
        for tx_hash in reversed(pending.hashes):
            try:
                return self.w3.eth.get_transaction_receipt(tx_hash)
            except (TransactionNotFound, TimeExhausted):
                continue
        return None

    def _replace(self, pending: PendingTx, until: float | None) -> None:
        """Re-sign ``pending``'s nonce with fees raised by :data:`FEE_BUMP` and broadcast it."""
        old = cast(dict[str, Any], pending.tx)
        max_fee, tip = self._fees(until)
        bumped_tip = math.ceil(int(old["maxPriorityFeePerGas"]) * (1 + FEE_BUMP)) + 1
        bumped_max = math.ceil(int(old["maxFeePerGas"]) * (1 + FEE_BUMP)) + 1
        new_tip, new_max = max(tip, bumped_tip), max(max_fee, bumped_max)
        if self.max_fee_cap is not None and new_max > self.max_fee_cap:
            log.warning(
                "tx.replace_capped nonce=%s max_fee=%d cap=%d: waiting at the old fee",
                pending.nonce,
                new_max,
                self.max_fee_cap,
            )
            pending.last_sent = time.monotonic()  # ask again after another replace_after
            return
        tx = dict(old, maxFeePerGas=new_max, maxPriorityFeePerGas=min(new_tip, new_max))
        raw = self.account.sign_transaction(tx).raw_transaction
        tx_hash = HexBytes(keccak(raw))
        try:
            self.w3.eth.send_raw_transaction(raw)
        except Exception as exc:  # the old version may be mined already, or the node be away
            message = rpc_message(exc)
            if not (
                is_transient(exc) or any(t in message for t in (*ALREADY_KNOWN, *NONCE_TOO_LOW, *UNDERPRICED))
            ):
                raise TransactionFailed(f"replacement refused: {exc}", tx_hash=tx_hash) from exc
            if not any(text in message for text in ALREADY_KNOWN):
                log.info("tx.replace_failed nonce=%s error=%s", pending.nonce, message[:120])
                pending.last_sent = time.monotonic()
                return
        log.warning(
            "tx.replaced nonce=%s old=%s new=%s max_fee=%d after=%.1fs",
            pending.nonce,
            pending.tx_hash.hex(),
            tx_hash.hex(),
            new_max,
            pending.age,
        )
        pending.hashes.append(tx_hash)
        pending.tx_hash = tx_hash
        pending.tx = cast(TxParams, tx)
        pending.last_sent = time.monotonic()

    def _nonce_taken(self, pending: PendingTx) -> bool:
        """Whether the chain mined ``pending``'s nonce with a transaction that is not one of its versions.

        A node may count a mined nonce a moment before it serves that transaction's receipt, so
        the answer is yes only when it holds for :data:`NONCE_TAKEN_GRACE_S` (with receipts
        asked again each poll): signing again too early would run the call twice.
        """
        mined = int(self.w3.eth.get_transaction_count(self.address, "latest"))
        if mined <= pending.nonce or self._receipt(pending) is not None:
            pending.taken_seen = None
            return False
        now = time.monotonic()
        if pending.taken_seen is None:
            pending.taken_seen = now
        return now - pending.taken_seen >= NONCE_TAKEN_GRACE_S

    def _nonce_gap(self, pending: PendingTx) -> bool:
        """Whether ``pending`` waits behind nonces nothing will fill (the chain lost transactions
        in a reorg or a rewind), checked once the first version is :data:`GAP_GRACE_S` old (not the
        latest: replacements every ``replace_after`` seconds must not hide the gap)."""
        if time.monotonic() - pending.first_sent < GAP_GRACE_S:
            return False
        return int(self.w3.eth.get_transaction_count(self.address, "pending")) < pending.nonce

    def _fill_gap(self, pending: PendingTx, until: float | None) -> None:
        """Fill the nonces below ``pending``'s that the chain lost with empty self-transfers, so
        that ``pending`` itself can be mined (re-signing it lower would let it run twice once
        the gap filled up anyway)."""
        first = int(self.w3.eth.get_transaction_count(self.address, "pending"))
        max_fee, tip = self._fees(until)
        for nonce in range(first, pending.nonce):
            filler: dict[str, Any] = {
                "to": self.address,
                "value": 0,
                "gas": 21_000,
                "maxFeePerGas": max_fee,
                "maxPriorityFeePerGas": tip,
                "nonce": nonce,
                "chainId": self.chain_id,
            }
            raw = self.account.sign_transaction(filler).raw_transaction
            try:
                self.w3.eth.send_raw_transaction(raw)
            except Web3RPCError as exc:  # filled meanwhile by another transaction of this key
                log.info("tx.gap_fill_skipped nonce=%s error=%s", nonce, rpc_message(exc)[:120])
        log.warning("tx.gap_filled nonces=%s..%s below nonce=%s", first, pending.nonce - 1, pending.nonce)
        pending.last_sent = time.monotonic()

    def wait(
        self,
        pending: PendingTx,
        *,
        timeout: float | None = None,
        confirmations: int | None = None,
        retry_until: float | None = None,
    ) -> TxReceipt:
        """The receipt of ``pending`` once mined (and confirmed); raises on status 0.

        It waits ``timeout`` seconds, or until ``retry_until`` (unix seconds) when given, through
        transient RPC errors; a version not mined after ``replace_after`` seconds is replaced
        (same nonce, higher fees) and the receipt of whichever version is mined is returned. If
        another transaction (another process with the same key) took the nonce, the transaction
        is signed again on a fresh nonce; a gap below its nonce (transactions lost in a reorg)
        is filled with empty self-transfers.
        """
        if retry_until is not None:
            deadline = time.monotonic() + max(0.0, retry_until - time.time())
        else:
            deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        confirmations = self.confirmations if confirmations is None else confirmations
        receipt = self._mined(pending, deadline, retry_until)
        with self.nonces.lock:  # mined: no longer in flight (a timeout leaves it listed as stuck)
            if pending.managed and self.nonces.inflight.get(pending.nonce) is pending:
                del self.nonces.inflight[pending.nonce]
        while confirmations:
            try:
                if self.w3.eth.block_number - receipt["blockNumber"] >= confirmations:
                    break
            except Exception as exc:  # transient errors: ask again
                if not is_transient(exc):
                    raise
            if time.monotonic() > deadline:
                raise TransactionFailed(
                    f"{pending.tx_hash.hex()} not confirmed in time", tx_hash=pending.tx_hash
                )
            time.sleep(self.poll_interval)
        if receipt["status"] != 1:
            revert = self._replay(pending.tx, receipt)
            shown = f": {revert}" if revert is not None else ""
            raise TransactionFailed(
                f"transaction {receipt['transactionHash'].hex()} failed{shown}",
                tx_hash=receipt["transactionHash"],
                revert=revert,
            )
        return receipt

    def _mined(self, pending: PendingTx, deadline: float, retry_until: float | None) -> TxReceipt:
        failures = 0
        while True:
            try:
                receipt = self._receipt(pending)
                if receipt is not None:
                    return receipt
                if not pending.managed:
                    pass  # only awaited
                elif self._nonce_gap(pending):
                    self._fill_gap(pending, retry_until)
                elif self._nonce_taken(pending):
                    log.warning("tx.nonce_lost nonce=%s: signing again on a fresh nonce", pending.nonce)
                    with self.nonces.lock:
                        self.nonces.inflight.pop(pending.nonce, None)
                        self.nonces.resync()
                    fresh = self.submit(
                        cast(TxParams, {k: v for k, v in pending.tx.items() if k in ("to", "data", "value")}),
                        gas=int(pending.tx["gas"]),
                        retry_until=retry_until,
                    )
                    pending.tx, pending.tx_hash, pending.hashes = fresh.tx, fresh.tx_hash, fresh.hashes
                    pending.last_sent = fresh.last_sent
                    with self.nonces.lock:
                        self.nonces.inflight[pending.nonce] = pending
                    continue
                if (
                    pending.managed
                    and self.replace_after is not None
                    and time.monotonic() - pending.last_sent >= self.replace_after
                ):
                    self._replace(pending, retry_until)
                failures = 0
            except Exception as exc:  # transient errors wait for the chain to come back
                if not is_transient(exc):
                    raise
                failures += 1
            if time.monotonic() > deadline:
                self.nonces.resync()
                raise TransactionFailed(
                    f"transaction {pending.tx_hash.hex()} not mined in time", tx_hash=pending.tx_hash
                )
            time.sleep(
                self.poll_interval if not failures else _delay(self.backoff, failures - 1, self.backoff_cap)
            )

    def _replay(self, tx: TxParams, receipt: TxReceipt) -> ContractRevert | None:
        call = {k: v for k, v in tx.items() if k in ("from", "to", "data", "value", "gas")}
        try:
            self.w3.eth.call(cast(TxParams, call), receipt["blockNumber"] - 1)
        except (ContractLogicError, Web3RPCError) as exc:
            return self._revert(exc)
        return None

    # -- what is in flight --------------------------------------------------------------

    def pending(self) -> list[InFlight]:
        """This key's transactions broadcast and not seen mined, oldest first.

        Entries whose nonce the chain has mined are dropped (one RPC call); when the chain
        cannot be reached the local view is returned as it is.
        """
        try:
            mined = int(self.w3.eth.get_transaction_count(self.address, "latest"))
        except Exception as exc:  # the local view still answers during an outage
            if not is_transient(exc):
                raise
            mined = None
        with self.nonces.lock:
            if mined is not None:
                for nonce in [n for n in self.nonces.inflight if n < mined]:
                    del self.nonces.inflight[nonce]
            items = sorted(self.nonces.inflight.values(), key=lambda p: p.nonce)
            return [InFlight(p.nonce, p.tx_hash.hex(), len(p.hashes), round(p.age, 3)) for p in items]

    def stuck(self, older_than: float) -> list[InFlight]:
        """The transactions of :meth:`pending` in flight for more than ``older_than`` seconds."""
        return [item for item in self.pending() if item.age_s > older_than]

    def send(
        self,
        what: ContractFunction | TxParams,
        *,
        value: int = 0,
        gas: int | None = None,
        confirmations: int | None = None,
        retry_until: float | None = None,
    ) -> TxReceipt:
        """Estimate, sign, broadcast and wait for the receipt.

        Args:
            retry_until: unix seconds until which transient RPC errors are retried and the
                receipt awaited (e.g. the job's deadline); ``None``: ``retries`` and ``timeout``.

        Raises:
            ContractRevert: the call reverts (found while estimating gas).
            TransactionFailed: mined with status 0, or not mined in time.
        """
        pending = self.submit(what, value=value, gas=gas, retry_until=retry_until)
        return self.wait(pending, confirmations=confirmations, retry_until=retry_until)

    #: :meth:`send` in a worker thread, for asyncio daemons.
    send_async = in_thread(send)

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
