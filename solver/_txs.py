"""The solver's transactions: persisted before broadcast, retried, replaced when stuck.

``tender.chain.TxSender`` is a synchronous sender that keeps nonces in memory; the solver
needs more, so it has this asyncio sender over the same revert decoder:

* **one nonce authority per key**: the next nonce is the larger of the chain's pending count
  and one past the highest nonce in the store, taken under an asyncio lock;
* **persist, then broadcast**: every signed transaction (raw bytes, hash, nonce, purpose, job)
  is committed to SQLite before it is sent, so a crash between the two loses nothing, and
  after a restart :meth:`TxManager.recover` re-broadcasts the same bytes (never a new bid);
* **retries with backoff** on transient RPC errors (as ``tender.chain.TxSender``): ``retries``
  times, or, when the caller passes ``until`` (unix seconds: the job's deadline), until then,
  the backoff doubling up to ``backoff_cap``; "already known" treated as success. A revert is
  permanent and raises at once;
* **uncertain broadcasts**: a broadcast that failed for a transient reason leaves its row
  ``signed`` (its nonce stays reserved) and drops the cached nonce, so the next one is read
  from the chain again; :meth:`TxManager.wait` and :meth:`TxManager.recover` broadcast the same
  bytes again once the node answers (never a second version signed anew);
* **replacement**: a transaction pending longer than ``stuck_after_s`` is re-signed with the
  same nonce and fees bumped by ``bump_pct`` (the node's minimum is 10%), capped by
  ``max_gas_price_wei``; whichever version is mined wins, the others are marked replaced;
* **health**: :meth:`TxManager.stuck` lists what is pending longer than it should be;
* **reorgs**: :meth:`TxManager.on_rollback` puts transactions mined in dropped blocks back to
  pending; the caller says whether each is still wanted, and one that is not is cancelled by a
  zero-value self-transfer with its nonce so later nonces are not stuck behind a gap. A receipt
  is never final by itself: :meth:`TxManager.reconfirm` finds transactions whose receipt a reorg
  took back before the feed read the blocks (so no rollback told), and sends them again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

from eth_account.signers.local import LocalAccount
from eth_account.typed_transactions import TypedTransaction
from hexbytes import HexBytes
from web3 import AsyncWeb3
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError
from web3.types import BlockIdentifier, TxParams, TxReceipt

from solver._config import GasSection
from solver._metrics import TXS
from solver._store import Store, TxRow, TxState
from tender.chain import (
    ALREADY_KNOWN,
    NONCE_TOO_LOW,
    RevertDecoder,
    capped_fees,
    failed_call,
    is_transient,
    rpc_message,
    with_retries_async,
)
from tender.errors import ChainError, ContractRevert, TransactionFailed
from tender.logs import log

__all__ = ["TxManager"]

logger = logging.getLogger("solver.txs")


class TxManager:
    """Sends the solver's transactions from one key.

    Args:
        w3: an async web3.
        account: the solver's key.
        store: where signed transactions are persisted.
        chain_id: the chain's id.
        gas: fee policy (caps, bump, stuck time).
        decoder: decodes revert data into :class:`~tender.errors.ContractRevert`.
        retries: attempts for a transient RPC error when no ``until`` is given (backoff doubles
            from 0.1 s).
        backoff_cap: the longest pause between two attempts.
    """

    def __init__(
        self,
        w3: AsyncWeb3[Any],
        account: LocalAccount,
        store: Store,
        *,
        chain_id: int,
        gas: GasSection,
        decoder: RevertDecoder | None = None,
        retries: int = 4,
        backoff_cap: float = 2.0,
    ) -> None:
        self.w3 = w3
        self.account = account
        self.address: str = account.address
        self.store = store
        self.chain_id = chain_id
        self.gas = gas
        self.decoder = decoder
        self.retries = retries
        self.backoff_cap = backoff_cap
        self._lock = asyncio.Lock()
        self._next: int | None = None
        self._fee_cache: tuple[float, int, int, int] | None = None  # (when, base fee, max fee, tip)
        self._healed_at = float("-inf")  # when :meth:`heal` last asked the chain (monotonic)

    # -- RPC helpers --------------------------------------------------------------------

    async def _rpc(self, call: Callable[[], Any], until: float | None = None) -> Any:
        """``await call()``, retrying transient RPC errors (:func:`~tender.chain.with_retries_async`):
        :attr:`retries` times, or until ``until`` (unix seconds) when given. Other errors raise at
        once; a transient error that outlasts the retries raises :class:`~tender.errors.ChainError`."""

        def retrying(exc: Exception, attempt: int) -> None:
            log(logger, "rpc.retry", level=logging.DEBUG, error=repr(exc), attempt=attempt)

        try:
            return await with_retries_async(
                call, retries=self.retries, backoff=0.1, until=until, cap=self.backoff_cap, on_retry=retrying
            )
        except Exception as exc:
            if is_transient(exc):
                raise ChainError(f"the node did not answer: {exc!r}") from exc
            raise

    def _revert(self, exc: BaseException) -> ContractRevert | None:
        return self.decoder.from_exception(exc) if self.decoder is not None else None

    async def gas_price(self) -> int:
        """What one unit of gas costs now (base fee + tip), capped; or the configured assumption."""
        if self.gas.gas_price_wei is not None:
            return self.gas.gas_price_wei
        max_fee, tip = await self._fees()
        base = self._fee_cache[1] if self._fee_cache is not None else 0
        return min(base + tip, max_fee)

    async def _fees(self, until: float | None = None) -> tuple[int, int]:
        """``(maxFeePerGas, maxPriorityFeePerGas)``, capped; cached for a second (many jobs
        decide at once, and the base fee moves only once per block)."""
        now = time.monotonic()
        if self._fee_cache is not None and now - self._fee_cache[0] < 1.0:
            return self._fee_cache[2], self._fee_cache[3]
        tip = int(await self._rpc(lambda: self.w3.eth.max_priority_fee, until))
        block = await self._rpc(lambda: self.w3.eth.get_block("latest"), until)
        base = int(block.get("baseFeePerGas", 0))
        fees = capped_fees(base, tip, self.gas.max_gas_price_wei)
        self._fee_cache = (now, base, *fees)
        return fees

    async def estimate(
        self, tx: TxParams, *, until: float | None = None, block: BlockIdentifier | None = None
    ) -> int:
        """Estimated gas (against ``block``: the node's default, or e.g. ``"pending"``); a revert
        raises the decoded :class:`ContractRevert`."""
        try:
            call = cast(TxParams, {**tx, "from": self.address})
            return int(await self._rpc(lambda: self.w3.eth.estimate_gas(call, block), until))
        except (ContractLogicError, Web3RPCError) as exc:
            raise failed_call(exc, self._revert(exc), "gas estimation") from exc

    # -- nonces -------------------------------------------------------------------------

    async def _take_nonce(self, until: float | None = None) -> int:
        """The next nonce: read from the chain (and the store) when none is cached, e.g. after a
        broadcast whose fate is unknown."""
        if self._next is None:
            chain = int(
                await self._rpc(
                    lambda: self.w3.eth.get_transaction_count(self.account.address, "pending"), until
                )
            )
            stored = self.store.max_nonce(self.address)
            self._next = max(chain, -1 if stored is None else stored + 1)
        nonce = self._next
        self._next += 1
        return nonce

    # -- sending ------------------------------------------------------------------------

    def _sign(self, tx: TxParams, *, nonce: int, max_fee: int, tip: int) -> tuple[bytes, str]:
        full = dict(tx)
        full.update(
            {
                "nonce": nonce,
                "chainId": self.chain_id,
                "maxFeePerGas": max_fee,
                "maxPriorityFeePerGas": tip,
                "from": self.address,
            }
        )
        full.setdefault("value", 0)
        signed = self.account.sign_transaction(cast(dict[str, Any], full))
        return bytes(signed.raw_transaction), HexBytes(signed.hash).to_0x_hex()

    async def send(
        self,
        tx: TxParams | ContractFunction,
        *,
        purpose: str,
        job_id: str | None = None,
        gas: int | None = None,
        until: float | None = None,
        estimate_at: BlockIdentifier | None = None,
    ) -> TxRow:
        """Sign ``tx`` (``to``, ``data``, ``value``; or a contract call such as
        ``market.award_fn(job_id)`` of a :class:`tender.chain.Market`), persist it, broadcast it;
        return its row.

        ``gas`` skips estimation (a revert then shows in the receipt, not here); ``estimate_at``
        names the block to estimate against (``"pending"``: the next one). ``until`` (unix
        seconds, e.g. the job's deadline): transient RPC errors are retried until then.

        Raises:
            ContractRevert: the call reverts (found while estimating gas).
            TransactionFailed: the node refused the transaction for good.
            ChainError: the node did not answer in time. The transaction may be signed and
                stored already: :meth:`wait` (or :meth:`recover`) broadcasts it again.
        """
        if isinstance(tx, ContractFunction):
            tx = unsent(tx)
        if gas is None:
            gas = int(await self.estimate(tx, until=until, block=estimate_at) * 1.2) + 10_000
        max_fee, tip = await self._fees(until)
        async with self._lock:
            nonce = await self._take_nonce(until)
            raw, tx_hash = self._sign({**tx, "gas": gas}, nonce=nonce, max_fee=max_fee, tip=tip)
            with self.store.transaction():
                tx_id = self.store.add_tx(
                    sender=self.address,
                    nonce=nonce,
                    purpose=purpose,
                    job_id=job_id,
                    raw=raw,
                    tx_hash=tx_hash,
                    max_fee=max_fee,
                    tip=tip,
                )
        TXS.labels(purpose, "signed").inc()
        await self._broadcast(tx_id, raw, tx_hash, until)
        row = self._row(tx_id)
        log(logger, "tx.sent", purpose=purpose, job_id=job_id, nonce=nonce, tx_hash=tx_hash)
        return row

    def _row(self, tx_id: int) -> TxRow:
        return next(t for t in self.store.txs(sender=self.address) if t.id == tx_id)

    async def _broadcast(self, tx_id: int, raw: bytes, tx_hash: str, until: float | None = None) -> None:
        try:
            await self._rpc(lambda: self.w3.eth.send_raw_transaction(raw), until)
        except ChainError:
            # The node did not answer: the transaction may or may not have reached it. Its row
            # stays signed (wait/recover send the same bytes again); the next nonce is read anew.
            self._next = None
            raise
        except Web3RPCError as exc:
            message = rpc_message(exc)
            if any(t in message for t in ALREADY_KNOWN):
                pass
            elif any(t in message for t in NONCE_TOO_LOW) and await self._receipt(tx_hash, until) is not None:
                pass  # this very transaction took its nonce: an earlier try went through unanswered
            elif any(t in message for t in NONCE_TOO_LOW):
                # Its nonce is taken: by one of our own versions (fine) or by another process.
                self._next = None
                self.store.update_tx(tx_id, state=TxState.DROPPED.value)
                raise TransactionFailed(
                    f"nonce of {tx_hash} already used", tx_hash=HexBytes(tx_hash)
                ) from exc
            else:
                revert = self._revert(exc)
                self.store.update_tx(tx_id, state=TxState.DROPPED.value)
                if revert is not None:
                    raise revert from exc
                raise TransactionFailed(f"broadcast refused: {exc}", tx_hash=HexBytes(tx_hash)) from exc
        self.store.update_tx(tx_id, state=TxState.SENT.value, sent=time.time())

    async def wait(
        self, row: TxRow, *, within_s: float = 120.0, poll: float = 0.1, until: float | None = None
    ) -> TxReceipt:
        """The receipt of ``row``'s nonce (whichever version was mined); replaces it when stuck,
        and broadcasts again a version whose broadcast never got an answer.

        ``until`` (unix seconds): transient RPC errors are retried until then.

        Raises:
            TransactionFailed: mined with status 0 (``revert`` holds the decoded reason), or not
                mined within ``within_s``.
            ChainError: the node did not answer in time.
        """
        deadline = time.monotonic() + within_s
        last_push = time.monotonic()
        while True:
            versions = [
                t
                for t in self.store.txs(sender=self.address)
                if t.nonce == row.nonce and t.state not in (TxState.DROPPED, TxState.REPLACED)
            ]
            for version in versions:
                receipt = await self._receipt(version.hash, until)
                if receipt is not None:
                    return await self._settle(version, versions, receipt)
            for version in versions:
                if version.state == TxState.SIGNED:  # its broadcast never got an answer
                    await self._rebroadcast(version, until)
                    deadline = max(deadline, time.monotonic() + within_s)  # it only left now
            if time.monotonic() > deadline:
                raise TransactionFailed(
                    f"nonce {row.nonce} not mined within {within_s}s", tx_hash=HexBytes(row.hash)
                )
            await self.heal(until)  # a reorg nobody saw may hold lower nonces back
            if time.monotonic() - last_push > self.gas.stuck_after_s and versions:
                await self._fill_gap(row.nonce, until)
                await self.replace(max(versions, key=lambda t: t.max_fee))
                last_push = time.monotonic()
            await asyncio.sleep(poll)

    async def _fill_gap(self, nonce: int, until: float | None = None) -> None:
        """A transaction waits behind lower nonces the chain has not mined (a reorg dropped them
        and the node forgot them): broadcast again what we signed for each (the same bytes: one
        execution on the canonical chain), or fill it with a self-transfer when nothing we
        signed for it is worth running (it failed, or was never broadcast)."""
        chain_nonce = int(
            await self._rpc(lambda: self.w3.eth.get_transaction_count(self.account.address, "latest"), until)
        )
        for gap in range(chain_nonce, nonce):
            ours = [t for t in self.store.txs(sender=self.address) if t.nonce == gap]
            again = [t for t in ours if t.state in (TxState.SIGNED, TxState.SENT, TxState.MINED)]
            log(logger, "tx.gap", level=logging.WARNING, nonce=gap, waiting=nonce, known=len(again))
            if again:
                latest = max(again, key=lambda t: t.max_fee)
                if latest.state == TxState.MINED:  # mined on a branch the chain left: owed a broadcast
                    self.store.update_tx(latest.id, state=TxState.SIGNED.value, block=None)
                await self._rebroadcast(latest, until)
                continue
            max_fee, tip = await self._fees(until)
            fill = cast(TxParams, {"to": self.address, "value": 0, "data": b"", "gas": 21_000})
            raw, tx_hash = self._sign(fill, nonce=gap, max_fee=max_fee, tip=tip)
            with self.store.transaction():
                tx_id = self.store.add_tx(
                    sender=self.address,
                    nonce=gap,
                    purpose="cancel",
                    job_id=None,
                    raw=raw,
                    tx_hash=tx_hash,
                    max_fee=max_fee,
                    tip=tip,
                )
            try:
                await self._broadcast(tx_id, raw, tx_hash, until)
            except TransactionFailed as exc:
                log(logger, "tx.gap_fill_refused", level=logging.DEBUG, error=repr(exc))

    async def _receipt(self, tx_hash: str, until: float | None = None) -> TxReceipt | None:
        try:
            return cast(
                TxReceipt,
                await self._rpc(lambda: self.w3.eth.get_transaction_receipt(HexBytes(tx_hash)), until),
            )
        except TransactionNotFound:
            return None

    async def _settle(self, mined: TxRow, versions: list[TxRow], receipt: TxReceipt) -> TxReceipt:
        fee = int(receipt["gasUsed"]) * int(receipt.get("effectiveGasPrice", 0))
        ok = receipt["status"] == 1
        with self.store.transaction():
            for version in versions:
                if version.id != mined.id:
                    self.store.update_tx(version.id, state=TxState.REPLACED.value)
            self.store.update_tx(
                mined.id,
                state=(TxState.MINED if ok else TxState.FAILED).value,
                block=int(receipt["blockNumber"]),
                gas_used=int(receipt["gasUsed"]),
                fee_paid=fee,
            )
        TXS.labels(mined.purpose, "mined" if ok else "failed").inc()
        if not ok:
            revert = await self._replay(mined, int(receipt["blockNumber"]))
            shown = f": {revert}" if revert is not None else ""
            raise TransactionFailed(
                f"transaction {mined.hash} ({mined.purpose}) failed{shown}",
                tx_hash=HexBytes(mined.hash),
                revert=revert,
            )
        return receipt

    async def _replay(self, row: TxRow, block: int) -> ContractRevert | None:
        """Why a mined transaction failed: the same call replayed on the block before."""
        call = cast(TxParams, {**_decode_raw(row.raw), "from": self.address})
        try:
            await self.w3.eth.call(call, block - 1)
        except (ContractLogicError, Web3RPCError) as exc:
            return self._revert(exc)
        return None

    async def replace(self, row: TxRow, *, cancel: bool = False) -> TxRow:
        """Re-sign ``row``'s nonce with bumped fees (or as a cancelling self-transfer)."""
        tx = _decode_raw(row.raw)
        if cancel:
            tx = {"to": self.address, "value": 0, "data": b"", "gas": 21_000}
        bump = 100 + self.gas.bump_pct
        now_fee, now_tip = await self._fees()
        max_fee = min(max(row.max_fee * bump // 100 + 1, now_fee), self.gas.max_gas_price_wei)
        tip = min(max(row.tip * bump // 100 + 1, now_tip), max_fee)
        if max_fee <= row.max_fee:
            log(logger, "tx.fee_cap_reached", level=logging.WARNING, nonce=row.nonce, max_fee=max_fee)
            return row
        raw, tx_hash = self._sign(cast(TxParams, tx), nonce=row.nonce, max_fee=max_fee, tip=tip)
        purpose = "cancel" if cancel else row.purpose
        with self.store.transaction():
            tx_id = self.store.add_tx(
                sender=self.address,
                nonce=row.nonce,
                purpose=purpose,
                job_id=row.job_id,
                raw=raw,
                tx_hash=tx_hash,
                max_fee=max_fee,
                tip=tip,
            )
        TXS.labels(purpose, "replacement").inc()
        log(logger, "tx.replaced", nonce=row.nonce, old=row.hash, new=tx_hash, max_fee=max_fee, cancel=cancel)
        try:
            await self._broadcast(tx_id, raw, tx_hash)
        except TransactionFailed as exc:
            log(logger, "tx.replace_refused", level=logging.DEBUG, error=repr(exc))
        return self._row(tx_id)

    # -- recovery -----------------------------------------------------------------------

    async def recover(self, wanted: Callable[[TxRow], bool]) -> None:
        """After a restart or a reorg: settle what was mined, re-broadcast what is still wanted
        (the same bytes), cancel what is not."""
        pending = self.store.txs(sender=self.address, states=(TxState.SIGNED, TxState.SENT))
        by_nonce: dict[int, list[TxRow]] = {}
        for row in pending:
            by_nonce.setdefault(row.nonce, []).append(row)
        chain_nonce = int(
            await self._rpc(lambda: self.w3.eth.get_transaction_count(self.account.address, "latest"))
        )
        for nonce, versions in sorted(by_nonce.items()):
            receipts = [(v, await self._receipt(v.hash)) for v in versions]
            mined = [(v, r) for v, r in receipts if r is not None]
            if mined:
                try:
                    await self._settle(mined[0][0], versions, mined[0][1])
                except TransactionFailed as exc:
                    log(logger, "tx.recovered_failed", level=logging.WARNING, error=str(exc))
                continue
            if nonce < chain_nonce:
                # Some other transaction of ours took this nonce (e.g. a cancel we lost track of).
                for v in versions:
                    self.store.update_tx(v.id, state=TxState.REPLACED.value)
                continue
            latest = max(versions, key=lambda t: t.max_fee)
            if wanted(latest):
                await self._rebroadcast(latest)
            else:
                await self.replace(latest, cancel=True)
        self._next = None

    async def _rebroadcast(self, row: TxRow, until: float | None = None) -> None:
        try:
            await self._broadcast(row.id, row.raw, row.hash, until)
            log(logger, "tx.rebroadcast", nonce=row.nonce, tx_hash=row.hash, purpose=row.purpose)
        except TransactionFailed as exc:
            log(logger, "tx.rebroadcast_refused", level=logging.WARNING, error=str(exc))

    async def heal(self, until: float | None = None, *, every: float = 1.0) -> list[TxRow]:
        """Send again what a reorg took back without anyone telling (the blocks were replaced
        before the feed read them): the chain counts fewer transactions from this key than the
        nonces held here as mined. Each of those is pending again and broadcast again (the same
        bytes), and every nonce below it that the chain lacks is filled (:meth:`_fill_gap`), so
        later transactions are not held behind a gap until ``stuck_after_s``. Returns them.

        One ``eth_getTransactionCount`` at most every ``every`` seconds (:meth:`wait` and the
        solver's feed loop both call it)."""
        started = time.monotonic()
        if started - self._healed_at < every:
            return []
        self._healed_at = started
        chain_nonce = int(
            await self._rpc(lambda: self.w3.eth.get_transaction_count(self.account.address, "latest"), until)
        )
        lost = [
            t for t in self.store.txs(sender=self.address, states=(TxState.MINED,)) if t.nonce >= chain_nonce
        ]
        if not lost:
            return []
        # SIGNED, not SENT: the node forgot them, so they are owed a broadcast until one is
        # answered; should the one below fail (an RPC error), `wait` broadcasts them again
        with self.store.transaction():
            for row in lost:
                self.store.update_tx(
                    row.id, state=TxState.SIGNED.value, block=None, gas_used=None, fee_paid=None
                )
        self._next = None
        log(
            logger,
            "tx.reorged_out",
            level=logging.WARNING,
            chain_nonce=chain_nonce,
            nonces=[t.nonce for t in lost],
            purposes=[t.purpose for t in lost],
        )
        await self._fill_gap(max(t.nonce for t in lost) + 1, until)
        return [self._row(t.id) for t in lost]

    async def reconfirm(self, rows: Sequence[TxRow], until: float | None = None) -> list[TxRow]:
        """Check that ``rows`` marked mined (or failed) still have their receipt: a reorg the
        feed never saw (the blocks were replaced before the feed read them) takes a receipt back
        without :meth:`on_rollback`. Each one whose receipt is gone is pending again and is
        broadcast again at once (the same bytes: one execution on the chain that stands; the
        nonces below it that the reorg dropped too are filled first). Returns those rows.

        A caller asks when the chain contradicts a receipt it holds (its job is still open
        although its award was mined; the market says ``NoBids`` although its bid was mined):
        a receipt is never final by itself."""
        back: list[TxRow] = []
        for row in rows:
            if row.state not in (TxState.MINED, TxState.FAILED):
                continue
            receipt = await self._receipt(row.hash, until)
            if receipt is not None:
                if row.block is not None and int(receipt["blockNumber"]) != row.block:
                    # mined again in another block of the new branch (the node re-ran it)
                    self.store.update_tx(row.id, block=int(receipt["blockNumber"]))
                continue
            # owed a broadcast (SIGNED) until one is answered, as in `heal`
            self.store.update_tx(row.id, state=TxState.SIGNED.value, block=None, gas_used=None, fee_paid=None)
            self._next = None
            log(
                logger,
                "tx.reorged_out",
                level=logging.WARNING,
                purpose=row.purpose,
                job_id=row.job_id,
                nonce=row.nonce,
                tx_hash=row.hash,
                was=row.state.value,
            )
            again = self._row(row.id)
            await self._fill_gap(row.nonce, until)
            await self._rebroadcast(again, until)
            back.append(self._row(row.id))
        return back

    def stuck(self, older_than: float) -> list[TxRow]:
        """Transactions signed or sent more than ``older_than`` seconds ago and not yet mined
        (for ``/health``)."""
        now = time.time()
        return [
            t
            for t in self.store.txs(sender=self.address, states=(TxState.SIGNED, TxState.SENT))
            if now - (t.sent or t.created) > older_than
        ]

    def on_rollback(self, fork: int) -> None:
        """Transactions mined after ``fork`` are pending again (the caller then runs :meth:`recover`)."""
        with self.store.transaction():
            for row in self.store.txs(sender=self.address, states=(TxState.MINED, TxState.FAILED)):
                if row.block is not None and row.block > fork:
                    self.store.update_tx(
                        row.id, state=TxState.SENT.value, block=None, gas_used=None, fee_paid=None
                    )
        self._next = None


def unsent(call: ContractFunction) -> TxParams:
    """The transaction that makes ``call`` (a contract function with its arguments), unsigned."""
    return cast(TxParams, {"to": call.address, "data": call._encode_transaction_data(), "value": 0})


def _decode_raw(raw: bytes) -> dict[str, Any]:
    """The fields of a signed EIP-1559 transaction that a replacement keeps."""
    fields = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
    out: dict[str, Any] = {k: fields[k] for k in ("to", "value", "data", "gas") if k in fields}
    if out.get("to"):
        out["to"] = AsyncWeb3.to_checksum_address(out["to"])
    return out
