"""Rebuild jobs from chain data alone: the markets' logs and the calldata of their transactions.

Every job opens with ``IntentPosted`` (which logs the whole intent), so a job's history is the
ordered list of its market's typed events, read by :meth:`tender.chain.EventFeed.read`, and its
state is their :class:`~tender.chain.JobView` fold. The output is in ``Delivered``; the proof,
which no event holds, is decoded from the calldata of the ``deliver`` or ``prove`` transaction
(found in the call trace when a contract relayed the call).

:class:`ChainSource` is where the data comes from. Tests substitute a source that alters one
transaction's calldata, which is exactly what an auditor must catch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import Web3RPCError

from tender.chain import (
    Delivered,
    Deployment,
    Event,
    EventFeed,
    IntentPosted,
    JobState,
    JobView,
    LogDecoder,
    Proved,
    Transfer,
    load_artifact,
    tender_log_decoder,
    to_event,
)
from tender.intents import Intent
from verifier._calldata import CallDecoder, DecodedCall, find_call

E = TypeVar("E", bound=Event)

#: Blocks per ``eth_getLogs`` request (of the :class:`~tender.chain.EventFeed` that reads the range).
LOG_CHUNK = 5_000

#: Market artefact by deployment name.
MARKET_ARTIFACTS = {"reverse": "ReverseAuctionMarket", "dutch": "DutchAuctionMarket"}


class ChainSource:
    """Reads logs, transactions and receipts from a node (the auditor's only input)."""

    def __init__(self, w3: Web3, *, chunk: int = LOG_CHUNK) -> None:
        self.w3 = w3
        self.chunk = chunk
        # mined transactions never change: cache what each job's checks read more than once
        self._calls: dict[tuple[bytes, str, tuple[str, ...], bytes], DecodedCall] = {}
        self._receipts: dict[bytes, list[Any]] = {}
        self._txs: dict[bytes, Mapping[str, Any]] = {}

    def events(self, addresses: Sequence[str], from_block: int, to_block: int) -> list[Event]:
        """The typed events ``addresses`` emitted in a block range, oldest first."""
        return EventFeed(self.w3, addresses, chunk=self.chunk).read(from_block, to_block)

    def find_call(
        self, tx_hash: bytes, *, to: str, names: tuple[str, ...], decoder: CallDecoder, job_id: bytes
    ) -> DecodedCall:
        key = (bytes(tx_hash), to, names, bytes(job_id))
        call = self._calls.get(key)
        if call is None:
            call = self._calls[key] = find_call(
                self.w3,
                tx_hash,
                to=to,
                names=names,
                decoder=decoder,
                job_id=job_id,
                tx=self._txs.get(bytes(tx_hash)),
            )
        return call

    def prefetch(
        self, *, receipts: Iterable[bytes] = (), transactions: Iterable[bytes] = (), batch: int = 200
    ) -> None:
        """Fetch many receipts and transactions in JSON-RPC batches (several times faster than one
        request each); a node that refuses batches is simply asked one by one later."""
        wanted = [("r", h) for h in dict.fromkeys(bytes(h) for h in receipts) if h not in self._receipts]
        wanted += [("t", h) for h in dict.fromkeys(bytes(h) for h in transactions) if h not in self._txs]
        for start in range(0, len(wanted), batch):
            chunk = wanted[start : start + batch]
            try:
                with self.w3.batch_requests() as requests:
                    for kind, tx_hash in chunk:
                        method = (
                            self.w3.eth.get_transaction_receipt
                            if kind == "r"
                            else self.w3.eth.get_transaction
                        )
                        requests.add(method(HexBytes(tx_hash)))
                    answers = requests.execute()
            except (Web3RPCError, OSError, ValueError, TypeError):
                return
            for (kind, tx_hash), answer in zip(chunk, answers, strict=False):
                if not isinstance(answer, Mapping):
                    continue
                if kind == "r":
                    self._receipts[tx_hash] = list(answer["logs"])  # type: ignore[typeddict-item]
                else:
                    self._txs[tx_hash] = answer

    def receipt_logs(self, tx_hash: bytes) -> list[Any]:
        logs = self._receipts.get(bytes(tx_hash))
        if logs is None:
            logs = self._receipts[bytes(tx_hash)] = list(
                self.w3.eth.get_transaction_receipt(HexBytes(tx_hash))["logs"]
            )
        return logs


@dataclass
class JobHistory:
    """One job as the chain tells it.

    Attributes:
        job_id: the job id (EIP-712 digest of the intent).
        market: the market's deployment name (``"reverse"``/``"dutch"``).
        market_address: the market contract.
        intent: the intent, from ``IntentPosted``.
        posted: the ``IntentPosted`` event (escrow, fee...), ``None`` before the scanned range.
        events: every market event of the job, oldest first.
    """

    job_id: bytes
    market: str
    market_address: str
    intent: Intent | None = None
    posted: IntentPosted | None = None
    events: list[Event] = field(default_factory=list)

    def named(self, kind: type[E]) -> list[E]:
        """The job's events of one class, oldest first."""
        return [event for event in self.events if isinstance(event, kind)]

    def last(self, kind: type[E]) -> E | None:
        found = self.named(kind)
        return found[-1] if found else None

    @property
    def view(self) -> JobView:
        """The job folded from its events."""
        return JobView.fold(self.job_id, self.events)

    @property
    def state(self) -> JobState:
        """The job's state as its events tell it."""
        return self.view.state


class History:
    """Builds :class:`JobHistory` records for a deployment (:meth:`scan`).

    Args:
        source: where chain data comes from.
        deployment: the addresses.
    """

    def __init__(self, source: ChainSource, deployment: Deployment) -> None:
        self.source = source
        self.deployment = deployment
        self.decoder: LogDecoder = tender_log_decoder()
        names = tuple(MARKET_ARTIFACTS)
        self.markets = {name: addr for name, addr in deployment.markets.items() if name in names}
        self._by_address = {Web3.to_checksum_address(a): n for n, a in self.markets.items()}
        abi: list[dict[str, Any]] = []
        for name in self.markets:
            abi.extend(load_artifact(MARKET_ARTIFACTS[name]).entries("function"))
        self.calls = CallDecoder(abi)
        #: the markets' events that belong to no job, from the last :meth:`scan`
        self.market_events: list[Event] = []

    def scan(
        self, from_block: int, to_block: int, *, job_ids: Iterable[bytes] | None = None
    ) -> list[JobHistory]:
        """Every job with an event in the range (only ``job_ids`` when given), in posting order."""
        wanted = None if job_ids is None else {bytes(j) for j in job_ids}
        jobs: dict[bytes, JobHistory] = {}
        self.market_events = []
        for event in self.source.events(list(self.markets.values()), from_block, to_block):
            job_id = getattr(event, "job_id", None)
            if not isinstance(job_id, bytes):
                self.market_events.append(event)  # FeesWithdrawn, ParamsUpdated...
                continue
            if wanted is not None and job_id not in wanted:
                continue
            history = jobs.get(job_id)
            if history is None:
                address = Web3.to_checksum_address(event.address)
                history = jobs[job_id] = JobHistory(job_id, self._by_address.get(address, "?"), address)
            history.events.append(event)
            if isinstance(event, IntentPosted):
                history.intent = event.intent
                history.posted = event
        for history in jobs.values():
            history.events.sort(key=lambda e: (e.block_number, e.log_index))
        return list(jobs.values())

    def receipt_events(self, tx_hash: bytes, address: str) -> list[Event]:
        """The typed events ``address`` emitted in a transaction."""
        address = Web3.to_checksum_address(address)
        out: list[Event] = []
        for raw in self.source.receipt_logs(tx_hash):
            if Web3.to_checksum_address(raw["address"]) != address:
                continue
            decoded = self.decoder.decode(raw)
            if decoded is not None:
                out.append(to_event(decoded))
        return out

    def delivery_call(self, history: JobHistory) -> DecodedCall | None:
        """The ``deliver`` call of the last delivery, decoded from its transaction."""
        return self._call_of(history, Delivered, "deliver")

    def prove_call(self, history: JobHistory) -> DecodedCall | None:
        """The ``prove`` call that answered a challenge or an audit."""
        return self._call_of(history, Proved, "prove")

    def _call_of(self, history: JobHistory, event: type[Delivered | Proved], name: str) -> DecodedCall | None:
        """The ``name`` call of the job in the transaction of its last ``event``, decoded."""
        last = history.last(event)
        if last is None:
            return None
        return self.source.find_call(
            last.tx_hash, to=history.market_address, names=(name,), decoder=self.calls, job_id=history.job_id
        )

    def transfers(self, tx_hash: bytes, token: str) -> list[tuple[str, str, int]]:
        """``(from, to, value)`` of the token's transfers in a transaction."""
        return [
            (Web3.to_checksum_address(e.from_), Web3.to_checksum_address(e.to), int(e.value))
            for e in self.receipt_events(tx_hash, token)
            if isinstance(e, Transfer)
        ]
