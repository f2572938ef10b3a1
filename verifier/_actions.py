"""Send the agent's transactions so that a crash can never double one.

Each decision (challenge job X, expire job Y...) is signed, written to the store with its raw
bytes, and only then broadcast. After a restart :func:`resume` rebroadcasts what was stored:
the node answers "already known", mines it, or says its nonce is used (it was mined, or the
account moved on); no second transaction for the same (job, kind) is ever signed, because the
store's key refuses it.

A broadcast that fails because the node does not answer (an RPC outage) leaves the action
``signed`` and the nonce not advanced; the agent calls :meth:`ActionSender.resume` before each
pass while actions are pending, which broadcasts the same bytes again and then reads the
account's nonce from the chain, so an outage neither loses the action nor reuses its nonce.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from hexbytes import HexBytes
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.exceptions import TransactionNotFound, Web3RPCError
from web3.types import TxParams, TxReceipt

from tender.chain import PendingTx, TxSender, is_transient
from tender.errors import TransactionFailed
from tender.logs import log
from verifier._store import Action, Store

logger = logging.getLogger("verifier.actions")

_GONE = ("nonce too low", "nonce has already been used", "already known", "known transaction")


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an action ended: ``mined``, ``failed`` (reverted), ``duplicate`` (already decided)."""

    status: str
    receipt: TxReceipt | None = None
    error: str | None = None

    @property
    def gas_used(self) -> int | None:
        return None if self.receipt is None else int(self.receipt["gasUsed"])


class ActionSender:
    """Signs, persists, broadcasts and confirms the agent's transactions.

    Args:
        sender: the agent's :class:`~tender.chain.TxSender` (its key and nonce manager).
        store: where signed transactions are written before they leave.
    """

    def __init__(
        self, sender: TxSender, store: Store, *, on_persisted: Callable[[str, str], None] | None = None
    ) -> None:
        self.sender = sender
        self.store = store
        self.w3: Web3 = sender.w3
        self._on_persisted = on_persisted

    def _sign(self, function: ContractFunction, *, value: int) -> tuple[dict[str, Any], bytes, bytes]:
        tx: dict[str, Any] = {
            "from": self.sender.address,
            "to": function.address,
            "data": function._encode_transaction_data(),
            "value": value,
            "chainId": self.sender.chain_id,
        }
        gas = (
            int(self.sender.estimate(cast(TxParams, tx)) * self.sender.gas_multiplier) + 10_000
        )  # raises ContractRevert
        latest = self.w3.eth.get_block("latest")
        tip = (
            self.sender.priority_fee
            if self.sender.priority_fee is not None
            else int(self.w3.eth.max_priority_fee)
        )
        tx["gas"] = gas
        tx["maxFeePerGas"] = 2 * int(latest.get("baseFeePerGas", 0)) + tip
        tx["maxPriorityFeePerGas"] = tip
        tx["nonce"] = self.sender.nonces.peek()
        signed = self.sender.account.sign_transaction(tx)
        return tx, bytes(signed.raw_transaction), bytes(signed.hash)

    def send(self, job_id: str, kind: str, function: ContractFunction, *, value: int = 0) -> Outcome:
        """Decide, persist, broadcast and wait for one action; at most once per (job, kind).

        Raises:
            ContractRevert: the call would revert (nothing is stored: the caller may retry later).
        """
        if self.store.action(job_id, kind) is not None:
            return Outcome("duplicate")
        with self.sender.nonces.lock:
            tx, raw, tx_hash = self._sign(function, value=value)
            if not self.store.record_signed(
                job_id, kind, tx_hash=Web3.to_hex(tx_hash), raw_tx=Web3.to_hex(raw), nonce=int(tx["nonce"])
            ):
                return Outcome("duplicate")
            log(logger, "action.signed", job_id=job_id, kind=kind, tx=Web3.to_hex(tx_hash), nonce=tx["nonce"])
            if self._on_persisted is not None:
                self._on_persisted(job_id, kind)
            self._broadcast(raw)
            self.sender.nonces.advance()
        return self._confirm(job_id, kind, tx_hash, cast(TxParams, tx))

    def _broadcast(self, raw: bytes) -> None:
        try:
            self.w3.eth.send_raw_transaction(raw)
        except Web3RPCError as exc:
            message = str(exc).lower()
            if not any(text in message for text in _GONE):
                raise

    def _confirm(self, job_id: str, kind: str, tx_hash: bytes, tx: TxParams) -> Outcome:
        try:
            receipt = self.sender.wait(PendingTx(self.sender, HexBytes(tx_hash), tx))
        except TransactionFailed as exc:
            if exc.tx_hash is not None and exc.revert is None and "not mined" in str(exc):
                raise  # still pending: stays 'signed', resumed later
            self.store.finish_action(job_id, kind, "failed", str(exc))
            log(logger, "action.failed", level=logging.WARNING, job_id=job_id, kind=kind, error=str(exc))
            return Outcome("failed", error=str(exc))
        self.store.finish_action(job_id, kind, "mined", f"gas={receipt['gasUsed']}")
        log(logger, "action.mined", job_id=job_id, kind=kind, tx=Web3.to_hex(tx_hash), gas=receipt["gasUsed"])
        return Outcome("mined", receipt=receipt)

    def resume(self) -> list[Outcome]:
        """Rebroadcast and confirm every action stored as signed but not known to be mined."""
        outcomes = []
        for action in self.store.pending_actions():
            outcomes.append(self._resume_one(action))
        self.sender.nonces.resync()
        return outcomes

    def _resume_one(self, action: Action) -> Outcome:
        if action.tx_hash is None or action.raw_tx is None:
            self.store.finish_action(action.job_id, action.kind, "failed", "stored without a transaction")
            return Outcome("failed", error="stored without a transaction")
        tx_hash = bytes(HexBytes(action.tx_hash))
        try:
            receipt = self.w3.eth.get_transaction_receipt(HexBytes(tx_hash))
        except TransactionNotFound:
            receipt = None
        if receipt is None:
            log(logger, "action.rebroadcast", job_id=action.job_id, kind=action.kind, tx=action.tx_hash)
            try:
                self._broadcast(bytes(HexBytes(action.raw_tx)))
                known = self.w3.eth.get_transaction(HexBytes(tx_hash))
            except (Web3RPCError, TransactionNotFound) as exc:
                if is_transient(exc):
                    raise  # the node did not answer: still signed, resumed on a later pass
                # Its nonce was used by another transaction of this key: it can never be mined.
                self.store.finish_action(action.job_id, action.kind, "failed", f"rebroadcast refused: {exc}")
                return Outcome("failed", error=str(exc))
            # What the sender needs to wait for it (and to replace it if it is stuck): its nonce
            # and fees too.
            tx = cast(
                TxParams,
                {
                    "from": known["from"],
                    "to": known["to"],
                    "data": known["input"],
                    "value": known["value"],
                    "gas": known["gas"],
                    "nonce": known["nonce"],
                    "chainId": self.sender.chain_id,
                    **{k: known[k] for k in ("maxFeePerGas", "maxPriorityFeePerGas") if k in known},
                },
            )
            return self._confirm(action.job_id, action.kind, tx_hash, tx)
        status = "mined" if receipt["status"] == 1 else "failed"
        self.store.finish_action(action.job_id, action.kind, status, f"gas={receipt['gasUsed']}")
        return Outcome(status, receipt=receipt)
