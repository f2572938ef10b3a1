"""On-chain agents: a :class:`TenderAgent` contract buys inference and gets the result pushed.

``contracts/src/examples/TenderAgent.sol`` is a requester that is a contract: it holds the
payment tokens, posts intents with itself as requester (its owner calls ``ask``), and the market
calls its ``onTenderResult`` at settlement with the intent's ``callbackGasLimit`` gas; the
agent stores the output (``result(jobId)``) and logs ``ResultReceived``. Refunds and unspent
escrow are credited to the agent in each market (``owed``) and pay its next ``ask`` there
first; ``withdrawFrom`` brings them back into the contract (``claimFrom`` the compensation
``Staking`` credits it), and the owner takes tokens out with ``sweep``. :class:`AgentClient` drives one from
its owner's :class:`~tender.client.Client`::

    async with Client(rpc, owner_key, deployment=d, bundles=b, model_ids=ids) as client:
        agent = client.agent("0xAgent…")
        await agent.fund(10**18)                      # pull budget from the owner's balance
        result = await agent.request("mlp", pixels, max_price=10**17, deadline=60)
        print(result.callback_output, result.values)  # what the agent's callback stored
        await agent.withdraw()                        # refunds credited in the markets -> the agent

:meth:`AgentClient.request` = :meth:`~AgentClient.build_intent` (requester: the agent,
``callback_gas`` sized for the model's output) + :meth:`~AgentClient.ask` (the owner's ``ask``
transaction, then the job is followed) + :meth:`~AgentClient.follow` (the job's terminal
state, then the result the callback stored). It raises the client's typed errors
(:class:`~tender.client.RequestExpired`...: the refund was credited to the agent), plus
:class:`~tender.client.AgentRejected` when ``ask`` reverts and
:class:`~tender.client.AgentResultMissing` when the job settled but the callback did not store it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar

from hexbytes import HexBytes
from web3.types import TxReceipt

from tender.chain import ContractWrapper, RevertDecoder, Staking, Token, tender_decoder
from tender.client._errors import AgentRejected, AgentResultMissing
from tender.client._models import ModelHandle
from tender.client._result import RequestResult, Withdrawal
from tender.client._tracker import JobTracker
from tender.errors import ContractRevert, TenderError, TransactionFailed
from tender.intents import AuctionType, Intent
from tender.logs import log

if TYPE_CHECKING:
    from tender.client._client import AuctionName, Client, ProofName

__all__ = ["AgentClient", "AgentResult", "TenderAgentContract", "callback_gas_for"]

logger = logging.getLogger("tender.client")

#: ``TenderAgent.onTenderResult`` costs about this much plus :data:`CALLBACK_GAS_PER_OUTPUT`
#: per output element (a fresh storage slot each, and the event), with a safety margin.
CALLBACK_GAS_BASE = 80_000
CALLBACK_GAS_PER_OUTPUT = 25_000


def callback_gas_for(output_length: int) -> int:
    """The ``callbackGasLimit`` a TenderAgent needs to store an output of this many elements."""
    return CALLBACK_GAS_BASE + CALLBACK_GAS_PER_OUTPUT * max(0, int(output_length))


class TenderAgentContract(ContractWrapper):
    """Typed wrapper of a deployed ``TenderAgent`` (reverts decoded with its own errors too)."""

    ARTIFACT: ClassVar[str] = "TenderAgent"

    @property
    def decoder(self) -> RevertDecoder:
        return tender_decoder(("TenderAgent",))

    # -- reads --------------------------------------------------------------------------

    def token(self) -> str:
        return str(self._call(self.fn.token()))

    def owner(self) -> str:
        return str(self._call(self.fn.owner()))

    def market_for(self, auction: AuctionType) -> str | None:
        """The market ``ask`` sends intents of this auction type to (``None``: none)."""
        address = str(self._call(self.fn.marketFor(int(auction))))
        return None if int(address, 16) == 0 else address

    def answered(self, job_id: bytes) -> bool:
        return bool(self._call(self.fn.answered(job_id)))

    def result(self, job_id: bytes) -> list[int]:
        """The output the callback stored; reverts ``NoResult`` before it."""
        return [int(v) for v in self._call(self.fn.result(job_id))]

    # -- writes (owner) -----------------------------------------------------------------

    def ask(self, intent: Intent) -> TxReceipt:
        return self._send(self.fn.ask(intent.to_abi()))

    def add_market(self, market: str) -> TxReceipt:
        return self._send(self.fn.addMarket(market))

    def fund(self, amount: int) -> TxReceipt:
        """Pull ``amount`` from the sender (who approved the agent)."""
        return self._send(self.fn.fund(amount))

    def sweep(self, to: str, amount: int) -> TxReceipt:
        """Send ``amount`` of the agent's tokens to ``to`` (owner only)."""
        return self._send(self.fn.sweep(to, amount))

    def withdraw_from(self, market: str) -> TxReceipt:
        """Move what ``market`` owes the agent into the agent (``market.withdraw()``); reverts
        ``NothingOwed`` when it owes nothing, ``NotMarket`` for a market the agent does not use."""
        return self._send(self.fn.withdrawFrom(market))

    def claim_from(self, market: str) -> TxReceipt:
        """Move the slashed stake credited to the agent in ``market``'s ``Staking`` into the agent
        (``Staking.claim()``); reverts ``NothingToClaim`` when nothing is credited."""
        return self._send(self.fn.claimFrom(market))

    def result_events(self, receipt: TxReceipt) -> dict[str, list[int]]:
        """``ResultReceived`` outputs by job id (``0x``-hex) among a transaction's logs."""
        out: dict[str, list[int]] = {}
        for raw in receipt["logs"]:
            if str(raw["address"]).lower() != self.address.lower():
                continue
            decoded = self.log_decoder.decode(raw)
            if decoded is not None and decoded.name == "ResultReceived":
                out["0x" + bytes(decoded.args["job_id"]).hex()] = [int(v) for v in decoded.args["output"]]
        return out


@dataclass(frozen=True, slots=True)
class AgentResult(RequestResult):
    """A settled agent request: the :class:`RequestResult` plus what the callback stored.

    Attributes:
        agent: the agent contract. callback_output: the output the agent's ``onTenderResult``
        stored (read back with ``result(jobId)``; equal to ``output``). callback_gas_limit: the
        gas the intent gave the callback. callback_tx: the transaction that ran the callback
        (the zk delivery, the ``finalize`` or the ``prove``).
    """

    agent: str = ""
    callback_output: list[int] = field(default_factory=list)
    callback_gas_limit: int = 0
    callback_tx: str | None = None

    @classmethod
    def of(cls, result: RequestResult, **extra: Any) -> AgentResult:
        base = {f.name: getattr(result, f.name) for f in fields(RequestResult)}
        return cls(**base, **extra)

    def to_json(self) -> dict[str, Any]:
        data = RequestResult.to_json(self)
        data["callback_output"] = [str(v) for v in self.callback_output]
        return data


class AgentClient:
    """Drives a deployed TenderAgent as its owner: fund it, make it ask, follow, read results.

    Built by :meth:`Client.agent`; transactions are sent from the client's key (the agent's
    owner), jobs are followed with the client's event hub and self-help.

    Args:
        client: the owner's client. address: the agent contract.
    """

    def __init__(self, client: Client, address: str) -> None:
        self.client = client
        self.contract = TenderAgentContract(client.w3, address, sender=client.sender)
        self.address: str = self.contract.address

    def __repr__(self) -> str:
        return f"AgentClient({self.address}, owner {self.client.address})"

    # -- money --------------------------------------------------------------------------

    async def balance(self) -> int:
        """The agent's payment-token balance (its budget; :meth:`withdraw` brings refunds here)."""
        token = Token(self.client.w3, self.client.deployment.token)
        return await asyncio.to_thread(token.balance_of, self.address)

    async def owed(self) -> dict[str, int]:
        """What each market owes the agent (refunds, compensation, unspent escrow), by auction name: it pays
        the agent's next ``ask`` in that market first, or :meth:`withdraw` moves it to the agent."""
        return await self.client.owed(account=self.address)

    async def withdraw(self, auction: AuctionName | None = None) -> list[Withdrawal]:
        """Move what the markets owe the agent into the agent's balance (the owner's ``withdrawFrom``
        transaction, once per market that owes something; only ``auction``'s when given), and
        without ``auction`` the compensation ``Staking`` credits it (:meth:`claim`).

        Raises:
            AgentRejected: ``withdrawFrom`` reverted (``error``: ``NothingOwed`` when ``auction``'s
                market owes nothing, ``OwnableUnauthorizedAccount`` for another sender...).
        """
        return await self.client._pay_out(
            auction,
            self.address,
            lambda market: self._transact(self.contract.withdraw_from, market.address),
            self.claim,
        )

    async def claim(self) -> Withdrawal | None:
        """Move the slashed stake ``Staking`` credits the agent (compensation for a late or
        cheating provider) into the agent's balance; ``None`` (nothing sent) when none is credited."""
        return await self.client._claim(self.address, self._claim_from)

    def _claim_from(self, staking: Staking) -> Awaitable[TxReceipt]:
        """The owner's ``claimFrom`` through one of the agent's markets (its ``Staking`` pays)."""
        market = self.client.market("reverse" if "reverse" in self.client.deployment.markets else "dutch")
        return self._transact(self.contract.claim_from, market.address)

    async def fund(self, amount: int) -> str:
        """Move ``amount`` of the owner's tokens into the agent (approve, then ``fund``)."""
        token = Token(self.client.w3, self.client.deployment.token, sender=self.client.sender)
        await asyncio.to_thread(token.approve, self.address, amount)
        receipt = await self._transact(self.contract.fund, amount)
        return HexBytes(receipt["transactionHash"]).to_0x_hex()

    async def sweep(self, to: str, amount: int) -> str:
        """Send ``amount`` of the agent's tokens to ``to`` (the owner's ``sweep``)."""
        receipt = await self._transact(self.contract.sweep, to, amount)
        return HexBytes(receipt["transactionHash"]).to_0x_hex()

    async def ensure_markets(self) -> None:
        """Let the agent use both of the deployment's markets (``addMarket`` where missing)."""
        for auction in (AuctionType.REVERSE, AuctionType.DUTCH):
            wanted = self.client.deployment.market(auction)
            have = await asyncio.to_thread(self.contract.market_for, auction)
            if have is None or have.lower() != wanted.lower():
                await self._transact(self.contract.add_market, wanted)

    # -- one request --------------------------------------------------------------------

    async def build_intent(
        self,
        model: str | bytes,
        data: Any,
        *,
        max_price: int,
        deadline: float,
        proof: ProofName = "zk",
        auction: AuctionName = "reverse",
        callback_gas: int | None = None,
        **intent_options: Any,
    ) -> tuple[Intent, ModelHandle]:
        """The intent the agent will post: requester the agent, with callback gas.

        ``callback_gas`` defaults to :func:`callback_gas_for` the model's output length; the
        other arguments are :meth:`Client.build_intent`'s.
        """
        handle = await asyncio.to_thread(self.client.model, model)
        if callback_gas is None:
            callback_gas = callback_gas_for(int(handle.card.layout.output_length))
        return await self.client.build_intent(
            model,
            data,
            max_price=max_price,
            deadline=deadline,
            proof=proof,
            auction=auction,
            requester=self.address,
            callback_gas_limit=int(callback_gas),
            **intent_options,
        )

    async def ask(self, intent: Intent) -> JobTracker:
        """Have the agent post ``intent`` (the owner's ``ask`` transaction); follow its job.

        Raises:
            AgentRejected: ``ask`` reverted (``error`` names the agent's or the market's error).
        """
        hub = self.client._events()
        tracker = JobTracker(job_id=self.client.job_id(intent))
        hub.follow(tracker)
        try:
            receipt = await self._transact(self.contract.ask, intent, job_id=tracker.job_id)
        except BaseException:
            hub.forget(tracker.job_id)
            raise
        tracker.tx_hashes["post"] = HexBytes(receipt["transactionHash"]).to_0x_hex()
        log(
            logger,
            "agent.asked",
            job_id=tracker.job_id,
            agent=self.address,
            max_price=intent.max_price,
            callback_gas=intent.callback_gas_limit,
        )
        return tracker

    async def follow(
        self,
        tracker: JobTracker,
        intent: Intent,
        handle: ModelHandle | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a deadline on the whole request, documented
        verify: bool = True,
    ) -> AgentResult:
        """Wait for the job's terminal state, then read what the agent's callback stored.

        Raises:
            AgentResultMissing: settled, but the agent holds no result.
            RequestRefunded, RequestExpired, ProviderSlashed, ProofInvalid, RequestTimeout:
                as :meth:`Client.follow` (the refund and any compensation were credited to the
                agent in the market).
        """
        result = await self.client.follow(tracker, intent, handle, timeout=timeout, verify=verify)
        stored = await self.result(tracker.job_id)
        if tracker.callback_failed is not None or stored is None:
            raise AgentResultMissing(
                job_id=tracker.job_id,
                agent=self.address,
                reason=tracker.callback_failed or b"",
                result=result,
            )
        return AgentResult.of(
            result,
            agent=self.address,
            callback_output=stored,
            callback_gas_limit=intent.callback_gas_limit,
            callback_tx=await asyncio.to_thread(self._callback_tx, tracker),
        )

    async def request(
        self,
        model: str | bytes,
        input: Any,
        max_price: int,
        deadline: float,
        proof: ProofName = "zk",
        auction: AuctionName = "reverse",
        *,
        callback_gas: int | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - a deadline on the whole request, documented
        verify: bool = True,
        **intent_options: Any,
    ) -> AgentResult:
        """Have the agent buy one inference; the verified result and what its callback stored.

        Args: as :meth:`Client.request`, plus ``callback_gas`` (the intent's
        ``callbackGasLimit``; default sized for the model's output).

        Raises:
            AgentRejected, AgentResultMissing, RequestRefunded, RequestExpired, ProviderSlashed,
            ProofInvalid, RequestTimeout: see :mod:`tender.client`.
        """
        from tender.client._client import _as_request_error

        with _as_request_error():  # a chain, model or connection failure is a RequestFailed
            intent, handle = await self.build_intent(
                model,
                input,
                max_price=max_price,
                deadline=deadline,
                proof=proof,
                auction=auction,
                callback_gas=callback_gas,
                **intent_options,
            )
        with _as_request_error(self.client.job_id(intent)):
            tracker = await self.ask(intent)
        return await self.follow(tracker, intent, handle, timeout=timeout, verify=verify)

    async def result(self, job_id: str) -> list[int] | None:
        """What the agent stored for ``job_id`` (``None`` before its callback ran)."""
        job = bytes(HexBytes(job_id))
        if not await asyncio.to_thread(self.contract.answered, job):
            return None
        return await asyncio.to_thread(self.contract.result, job)

    # -- plumbing -----------------------------------------------------------------------

    async def _transact(self, send: Any, *args: Any, job_id: str | None = None) -> TxReceipt:
        try:
            receipt: TxReceipt = await asyncio.to_thread(send, *args)
        except ContractRevert as exc:
            raise AgentRejected(
                f"the agent {self.address} reverted: {exc}",
                agent=self.address,
                error=exc.name,
                args=exc.args_by_name,
                job_id=job_id,
            ) from exc
        except TransactionFailed as exc:
            revert = exc.revert
            name = revert.name if revert is not None else "TransactionFailed"
            raise AgentRejected(
                f"the agent {self.address} transaction failed: {revert or exc}",
                agent=self.address,
                error=name,
                args=revert.args_by_name if revert else {},
                job_id=job_id,
            ) from exc
        return receipt

    def _callback_tx(self, tracker: JobTracker) -> str | None:
        """The transaction whose logs hold the agent's ``ResultReceived`` for this job."""
        for step in ("settled", "proved", "delivered"):
            tx_hash = tracker.tx_hashes.get(step)
            if not tx_hash:
                continue
            with contextlib.suppress(TenderError, ValueError, OSError):
                receipt = self.client.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
                if tracker.job_id.lower() in self.contract.result_events(receipt):
                    return tx_hash
        return None
