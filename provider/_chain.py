"""The node's chain access: the deployment's markets as :class:`tender.chain.AsyncMarket`, and
the few reads no market answers.

The node calls the markets directly (``chain.market(address).deliver(...)``): every market
operation, view and rule (the provider deadline included) lives in ``tender.chain``. What
:class:`ProviderChain` adds is only what the node needs besides: one
:class:`~tender.chain.TxSender` (one nonce manager) for the provider key shared by the markets,
the chain clock, the models the ``ModelRegistry`` announced (read through
:class:`~tender.chain.AsyncEventFeed`), audit rates, and a failed transaction's diagnostics.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from eth_utils import to_checksum_address
from hexbytes import HexBytes
from web3 import AsyncWeb3, Web3
from web3.types import TxReceipt

from tender.chain import (
    AsyncEventFeed,
    AsyncMarket,
    Contracts,
    Deployment,
    FeedCursor,
    ModelRegistered,
    TxSender,
    async_connect,
    connect,
)
from tender.config import ChainSection
from tender.errors import ConfigError, TransactionFailed
from tender.logs import log

logger = logging.getLogger("provider.chain")


def job_id_bytes(job_id: str) -> bytes:
    """A job id as the node stores it (``0x`` hex) in the bytes the markets take."""
    return bytes.fromhex(job_id.removeprefix("0x"))


def tx_hash(receipt: Any) -> str:
    """A receipt's transaction hash as ``0x`` hex (what the node records per step)."""
    return HexBytes(receipt["transactionHash"]).to_0x_hex()


class ProviderChain:
    """The markets of one deployment, sending from the provider's key.

    Args:
        w3: a connected Web3 (the markets' wrappers are synchronous; :class:`AsyncMarket` runs
            them in threads).
        deployment: the Tender deployment (its markets are the ones served).
        key: the provider's private key.
        confirmations: blocks to wait on top of each receipt.
        async_w3: the ``AsyncWeb3`` for the clock and the event feed (default: one on ``w3``'s URL).
    """

    def __init__(
        self,
        w3: Web3,
        deployment: Deployment,
        key: str,
        *,
        confirmations: int = 0,
        async_w3: AsyncWeb3[Any] | None = None,
    ) -> None:
        self.w3 = w3
        if async_w3 is None:
            url = getattr(w3.provider, "endpoint_uri", None)
            if not url:
                raise ConfigError("ProviderChain: pass async_w3 (w3's provider has no endpoint_uri)")
            async_w3 = async_connect(str(url))
        self.async_w3 = async_w3
        self.deployment = deployment
        sender = TxSender(w3, key, confirmations=confirmations)
        #: the one sender of the provider key (its :meth:`~tender.chain.TxSender.stuck` feeds ``/health``)
        self.sender = sender
        self.contracts = Contracts.load(w3, deployment, sender=sender)
        #: the provider's address (checksummed)
        self.address = to_checksum_address(sender.address)
        self.chain_id = deployment.chain_id
        #: the markets this node serves, by checksummed address
        self.markets: dict[str, AsyncMarket] = {
            to_checksum_address(m.address): AsyncMarket(m)
            for m in (self.contracts.reverse, self.contracts.dutch)
        }
        self._audit_rates: dict[bytes, int] = {}

    @classmethod
    def connect(cls, chain: ChainSection, *, confirmations: int | None = None) -> ProviderChain:
        """Connect with the ``[chain]`` section (key from the environment or keystore)."""
        w3 = connect(chain.rpc_url)
        deployment = Deployment.load(int(w3.eth.chain_id), path=chain.deployment)
        count = chain.confirmations if confirmations is None else confirmations
        return cls(
            w3, deployment, chain.private_key(), confirmations=count, async_w3=async_connect(chain.rpc_url)
        )

    def market(self, address: str) -> AsyncMarket:
        """The served market at ``address`` (``KeyError`` if it is not one of them)."""
        return self.markets[to_checksum_address(address)]

    async def send(self, market: AsyncMarket, function: str, *args: Any, until: float) -> TxReceipt:
        """Send ``market.function(*args)`` from the provider key, retrying transient RPC errors
        (and waiting for the receipt, replacing a stuck version) until ``until`` (unix seconds:
        the job's deadline less a margin) instead of a fixed number of tries. Reverts raise at once
        as :class:`~tender.errors.ContractRevert`."""
        call = getattr(market.sync.fn, function)(*args)
        return await self.sender.send_async(call, retry_until=until)

    async def follow(self, cursor: FeedCursor, *, names: Sequence[str]) -> AsyncEventFeed:
        """A feed of the markets' ``names`` events keeping its place in ``cursor``; a fresh
        cursor starts at the next block (the node's jobs are all ahead of it)."""
        start = await self.block_number() + 1 if cursor.cursor is None else 0
        return AsyncEventFeed(
            self.async_w3, list(self.markets), names=names, cursor=cursor, start_block=start
        )

    async def now(self) -> int:
        """The latest block's timestamp (deadlines are chain time)."""
        block = await self.async_w3.eth.get_block("latest")
        return int(block["timestamp"])

    async def block_number(self) -> int:
        return int(await self.async_w3.eth.block_number)

    async def audit_rate_bps(self, model_id: bytes) -> int:
        """The share of ``model_id``'s optimistic deliveries audited, in basis points (cached:
        a registry record never changes)."""
        if model_id not in self._audit_rates:
            info = await asyncio.to_thread(self.contracts.registry.model, model_id)
            self._audit_rates[model_id] = info.audit_rate_bps
        return self._audit_rates[model_id]

    async def registered_models(self) -> list[tuple[str, str, str]]:
        """``(modelId, onnx sha256, settings hash)`` of every registered model, as lowercase hex."""
        feed = AsyncEventFeed(self.async_w3, [self.contracts.registry.address], names=["ModelRegistered"])
        return [
            (
                "0x" + event.model_id.hex(),
                bytes(event.info.onnx_sha256).hex(),
                bytes(event.info.settings_hash).hex(),
            )
            for event in await feed.read(self.deployment.block)
            if isinstance(event, ModelRegistered)
        ]

    async def explain(self, exc: TransactionFailed) -> None:
        """Log what a failed transaction's receipt says (gas used against its limit)."""
        if exc.tx_hash is None:
            return
        eth, sent = self.async_w3.eth, HexBytes(exc.tx_hash)
        try:
            tx = await eth.get_transaction(sent)
            receipt = await eth.get_transaction_receipt(sent)
            mined_at = (await eth.get_block(receipt["blockNumber"]))["timestamp"]
        except Exception as lookup:  # diagnostics only: never hide the original failure
            log(logger, "tx.lookup_failed", level=logging.DEBUG, error=repr(lookup))
            return
        log(
            logger,
            "tx.failed",
            level=logging.WARNING,
            tx=sent.to_0x_hex(),
            gas=tx["gas"],
            gas_used=receipt["gasUsed"],
            block=receipt["blockNumber"],
            mined_at=mined_at,
            revert=repr(exc.revert),
        )

    async def close(self) -> None:
        """Release the async connection."""
        await self.async_w3.provider.disconnect()


__all__ = ["ProviderChain", "job_id_bytes", "tx_hash"]
