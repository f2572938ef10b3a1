"""What the node needs from the chain, behind one narrow interface.

:class:`ChainGateway` is the seam between the node and the markets: read a job, deliver,
prove a challenged or audited delivery, finalize an unchallenged one, read the chain clock, read
and withdraw what a market owes the provider (its earnings are credited, not sent).
:class:`MarketGateway` implements it over the shared ``tender.chain`` wrappers, with one
:class:`~tender.chain.TxSender` (one nonce manager) for the provider key; web3 is synchronous,
so every call runs in a thread and the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from eth_utils import to_checksum_address
from hexbytes import HexBytes

from tender.chain import Deployment, Job, JobState, Market, Registry, TxSender, connect
from tender.config import ChainSection
from tender.errors import TransactionFailed
from tender.intents import AuctionType
from tender.logs import log

logger = logging.getLogger("provider.chain")


def provider_deadline(job: Job) -> int:
    """The latest time this provider may deliver: ``min(deadline, awardedAt + latency)``."""
    return min(job.deadline, job.awarded_at + job.latency) if job.awarded_at else job.deadline


def job_id_bytes(job_id: str) -> bytes:
    return bytes.fromhex(job_id.removeprefix("0x"))


class ChainGateway(ABC):
    """The node's access to the markets (async)."""

    #: the provider's address (checksummed)
    address: str
    #: market addresses this node serves (checksummed)
    markets: frozenset[str]
    chain_id: int

    @abstractmethod
    async def job(self, market: str, job_id: str) -> Job:
        """The job as the market stores it (``state`` NONE if the market never heard of it)."""

    @abstractmethod
    async def deliver(self, market: str, job_id: str, output: Sequence[int], proof: bytes) -> str:
        """Send ``deliver`` and wait for its receipt (with confirmations); the tx hash."""

    @abstractmethod
    async def prove(self, market: str, job_id: str, proof: bytes) -> str:
        """Answer a challenge or an audit with the proof; the tx hash."""

    @abstractmethod
    async def finalize(self, market: str, job_id: str) -> str:
        """Settle an unchallenged optimistic delivery after its window; the tx hash."""

    @abstractmethod
    async def now(self) -> int:
        """The latest block's timestamp (deadlines are chain time)."""

    async def decline(self, market: str, job_id: str) -> str:
        """Give an awarded job back without penalty (its input does not match the intent's
        commitment); the tx hash. Only within the first quarter of the promised latency.

        Raises:
            ContractRevert: ``DeclineWindowClosed`` past that, ``InvalidState``...
        """
        raise NotImplementedError(f"{type(self).__name__} cannot decline")

    async def release_declined(self, market: str, job_id: str) -> str:
        """Free the stake a declined job locked, once its provider deadline has passed; the tx hash.

        Raises:
            ContractRevert: ``NotExpired`` before that, ``NotDeclined`` once released.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot release a declined job")

    async def audit_drawable(self, market: str, job_id: str) -> bool:
        """Whether the audit of our optimistic delivery can be drawn now and should be: the
        model is audited at all, nobody drew it yet and the block after the delivery is mined
        (the draw reads its hash, which stops being readable 256 blocks later: then the job
        counts as audited, so the node draws early)."""
        return False

    async def draw_audit(self, market: str, job_id: str) -> str:
        """Draw whether our optimistic delivery is audited; the tx hash."""
        raise NotImplementedError(f"{type(self).__name__} cannot draw audits")

    async def registered_models(self) -> list[tuple[str, str, str]]:
        """``(modelId, onnx sha256, settings hash)`` of every registered model, as lowercase hex."""
        return []

    async def owed(self, market: str) -> int:
        """What ``market`` owes the provider: its settled earnings not yet withdrawn."""
        return 0

    async def withdraw(self, market: str) -> tuple[int, str]:
        """Withdraw everything ``market`` owes the provider; ``(amount paid, tx hash)``.

        Raises:
            ContractRevert: ``NothingOwed`` when it owes nothing.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot withdraw")

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class MarketGateway(ChainGateway):
    """:class:`ChainGateway` over ``tender.chain``.

    Args:
        w3: a connected Web3.
        deployment: the Tender deployment (its markets are the ones served).
        key: the provider's private key.
        confirmations: blocks to wait on top of each receipt.
    """

    def __init__(self, w3: Any, deployment: Deployment, key: str, *, confirmations: int = 0) -> None:
        self.w3 = w3
        self.deployment = deployment
        self.sender = TxSender(w3, key, confirmations=confirmations)
        self.address = to_checksum_address(self.sender.address)
        self.chain_id = deployment.chain_id
        self._markets = {
            to_checksum_address(address): Market(
                w3, address, auction=AuctionType[name.upper()], sender=self.sender
            )
            for name, address in deployment.markets.items()
        }
        self.markets = frozenset(self._markets)
        self._registry = Registry(w3, deployment.registry)
        self._audit_rates: dict[bytes, int] = {}

    @classmethod
    def connect(cls, chain: ChainSection, *, confirmations: int | None = None) -> MarketGateway:
        """Connect with the ``[chain]`` section (key from the environment or keystore)."""
        w3 = connect(chain.rpc_url)
        deployment = Deployment.load(int(w3.eth.chain_id), path=chain.deployment)
        count = chain.confirmations if confirmations is None else confirmations
        return cls(w3, deployment, chain.private_key(), confirmations=count)

    def market(self, address: str) -> Market:
        return self._markets[to_checksum_address(address)]

    async def job(self, market: str, job_id: str) -> Job:
        return await asyncio.to_thread(self.market(market).job, job_id_bytes(job_id))

    @staticmethod
    def _hash(receipt: Any) -> str:
        return HexBytes(receipt["transactionHash"]).to_0x_hex()

    async def deliver(self, market: str, job_id: str, output: Sequence[int], proof: bytes) -> str:
        deliver = self.market(market).deliver
        try:
            receipt = await asyncio.to_thread(deliver, job_id_bytes(job_id), list(output), proof)
        except TransactionFailed as exc:
            await asyncio.to_thread(self._explain, exc)
            raise
        return self._hash(receipt)

    def _explain(self, exc: TransactionFailed) -> None:
        """Log what a failed transaction's receipt says (gas used against its limit)."""
        if exc.tx_hash is None:
            return
        try:
            tx = self.w3.eth.get_transaction(exc.tx_hash)
            receipt = self.w3.eth.get_transaction_receipt(exc.tx_hash)
            mined_at = self.w3.eth.get_block(receipt["blockNumber"])["timestamp"]
        except Exception as lookup:  # diagnostics only: never hide the original failure
            log(logger, "tx.lookup_failed", level=logging.DEBUG, error=repr(lookup))
            return
        log(logger, "tx.failed", level=logging.WARNING, tx=HexBytes(exc.tx_hash).to_0x_hex(), gas=tx["gas"],
            gas_used=receipt["gasUsed"], block=receipt["blockNumber"], mined_at=mined_at, revert=repr(exc.revert))  # fmt: skip

    async def prove(self, market: str, job_id: str, proof: bytes) -> str:
        return self._hash(await asyncio.to_thread(self.market(market).prove, job_id_bytes(job_id), proof))

    async def finalize(self, market: str, job_id: str) -> str:
        return self._hash(await asyncio.to_thread(self.market(market).finalize, job_id_bytes(job_id)))

    async def decline(self, market: str, job_id: str) -> str:
        return self._hash(await asyncio.to_thread(self.market(market).decline, job_id_bytes(job_id)))

    async def release_declined(self, market: str, job_id: str) -> str:
        wrapper = self.market(market)
        receipt = await asyncio.to_thread(wrapper.release_declined, job_id_bytes(job_id), self.address)
        return self._hash(receipt)

    async def audit_drawable(self, market: str, job_id: str) -> bool:
        def check() -> bool:
            wrapper = self.market(market)
            job_bytes = job_id_bytes(job_id)
            terms = wrapper.dispute_terms(job_bytes)
            if terms.audit_drawn or terms.delivered_block == 0:
                return False
            model = bytes(wrapper.job(job_bytes).model_id)
            if model not in self._audit_rates:
                self._audit_rates[model] = self._registry.model(model).audit_rate_bps
            return self._audit_rates[model] > 0 and int(self.w3.eth.block_number) >= terms.delivered_block + 2

        return await asyncio.to_thread(check)

    async def draw_audit(self, market: str, job_id: str) -> str:
        return self._hash(await asyncio.to_thread(self.market(market).draw_audit, job_id_bytes(job_id)))

    async def now(self) -> int:
        block = await asyncio.to_thread(self.w3.eth.get_block, "latest")
        return int(block["timestamp"])

    async def owed(self, market: str) -> int:
        return await asyncio.to_thread(self.market(market).owed, self.address)

    async def withdraw(self, market: str) -> tuple[int, str]:
        wrapper = self.market(market)
        receipt = await asyncio.to_thread(wrapper.withdraw)
        return wrapper.withdrawn_in(receipt), self._hash(receipt)

    async def registered_models(self) -> list[tuple[str, str, str]]:
        registry = Registry(self.w3, self.deployment.registry)

        def scan() -> list[tuple[str, str, str]]:
            found = []
            for event in registry.events(self.deployment.block, names=["ModelRegistered"]):
                model_id, info = getattr(event, "model_id"), getattr(event, "info")  # noqa: B009
                found.append(
                    (
                        "0x" + bytes(model_id).hex(),
                        bytes(info.onnx_sha256).hex(),
                        bytes(info.settings_hash).hex(),
                    )
                )
            return found

        return await asyncio.to_thread(scan)


__all__ = ["ChainGateway", "JobState", "MarketGateway", "job_id_bytes", "provider_deadline"]
