"""Rebuild jobs from chain data alone: the markets' logs and the calldata of their transactions.

Every job opens with ``IntentPosted`` (which logs the whole intent), so a job's history is the
ordered list of its market's events; the output is in ``Delivered``, and the proof, which no
event holds, is decoded from the calldata of the ``deliver`` or ``prove`` transaction (found
in the call trace when a contract relayed the call).

:class:`ChainSource` is where the data comes from. Tests substitute a source that alters one
transaction's calldata, which is exactly what an auditor must catch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import Web3RPCError
from web3.types import FilterParams

from tender.chain import DecodedLog, Deployment, LogDecoder, load_artifact, tender_log_decoder
from tender.intents import Intent
from verifier._calldata import CallDecoder, DecodedCall, find_call

#: Blocks per ``eth_getLogs`` request.
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

    def logs(self, addresses: Sequence[str], from_block: int, to_block: int) -> list[Any]:
        out: list[Any] = []
        start = from_block
        while start <= to_block:
            end = min(start + self.chunk - 1, to_block)
            params: FilterParams = {"address": list(addresses), "fromBlock": start, "toBlock": end}  # type: ignore[typeddict-item]
            out.extend(self.w3.eth.get_logs(params))
            start = end + 1
        return out

    def find_call(self, tx_hash: bytes, *, to: str, names: tuple[str, ...], decoder: CallDecoder,
                  job_id: bytes) -> DecodedCall:  # fmt: skip
        key = (bytes(tx_hash), to, names, bytes(job_id))
        call = self._calls.get(key)
        if call is None:
            call = self._calls[key] = find_call(self.w3, tx_hash, to=to, names=names, decoder=decoder,
                                                job_id=job_id, tx=self._txs.get(bytes(tx_hash)))  # fmt: skip
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
        posted: the ``IntentPosted`` arguments (escrow, feeBps...).
        events: every market event of the job, oldest first.
    """

    job_id: bytes
    market: str
    market_address: str
    intent: Intent | None = None
    posted: dict[str, Any] = field(default_factory=dict)
    events: list[DecodedLog] = field(default_factory=list)

    def named(self, name: str) -> list[DecodedLog]:
        return [event for event in self.events if event.name == name]

    def last(self, name: str) -> DecodedLog | None:
        found = self.named(name)
        return found[-1] if found else None

    @property
    def terminal(self) -> DecodedLog | None:
        """The event that ended the job (``Settled``, ``Slashed``, ``Refunded`` or a final ``Expired``)."""
        for event in reversed(self.events):
            if event.name in ("Settled", "Slashed", "Refunded"):
                return event
            if event.name == "Expired" and not any(
                later.name == "FailedOver" and later.tx_hash == event.tx_hash for later in self.events
            ):
                return event
        return None

    @property
    def state(self) -> str:
        """The job's state as its events tell it."""
        names = {"IntentPosted": "open", "Awarded": "awarded", "Challenged": "challenged",
                 "AuditRequired": "proof_required", "Proved": "settled", "Settled": "settled",
                 "Refunded": "refunded", "Slashed": "slashed", "FailedOver": "awarded"}  # fmt: skip
        state = "none"
        for event in self.events:
            if event.name == "Delivered":
                state = {6: "settled", 3: "delivered", 5: "proof_required"}.get(
                    int(event.args["state"]), "delivered"
                )
            elif event.name == "Expired":
                state = "expired"
            elif event.name == "Refunded" and state not in ("none", "open"):
                continue  # the escrow refund that follows an expiry or a slash
            elif event.name in names:
                state = names[event.name]
        return state


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
        self.market_events: list[DecodedLog] = []

    def scan(
        self, from_block: int, to_block: int, *, job_ids: Iterable[bytes] | None = None
    ) -> list[JobHistory]:
        """Every job with an event in the range (only ``job_ids`` when given), in posting order."""
        wanted = None if job_ids is None else {bytes(j) for j in job_ids}
        jobs: dict[bytes, JobHistory] = {}
        self.market_events = []
        for raw in self.source.logs(list(self.markets.values()), from_block, to_block):
            event = self.decoder.decode(raw)
            if event is None:
                continue
            if "job_id" not in event.args:
                self.market_events.append(event)  # FeesWithdrawn, ParamsUpdated...
                continue
            job_id = bytes(event.args["job_id"])
            if wanted is not None and job_id not in wanted:
                continue
            history = jobs.get(job_id)
            if history is None:
                address = Web3.to_checksum_address(event.address)
                history = jobs[job_id] = JobHistory(job_id, self._by_address.get(address, "?"), address)
            history.events.append(event)
            if event.name == "IntentPosted":
                history.intent = Intent.from_abi(event.args["intent"])
                history.posted = dict(event.args)
        for history in jobs.values():
            history.events.sort(key=lambda e: (e.block_number, e.log_index))
        return list(jobs.values())

    def delivery_call(self, history: JobHistory) -> DecodedCall | None:
        """The ``deliver`` call of the last delivery, decoded from its transaction."""
        event = history.last("Delivered")
        if event is None:
            return None
        return self.source.find_call(event.tx_hash, to=history.market_address, names=("deliver",),
                                     decoder=self.calls, job_id=history.job_id)  # fmt: skip

    def prove_call(self, history: JobHistory) -> DecodedCall | None:
        """The ``prove`` call that answered a challenge or an audit."""
        event = history.last("Proved")
        if event is None:
            return None
        return self.source.find_call(event.tx_hash, to=history.market_address, names=("prove",),
                                     decoder=self.calls, job_id=history.job_id)  # fmt: skip

    def transfers(self, tx_hash: bytes, token: str) -> list[tuple[str, str, int]]:
        """``(from, to, value)`` of the token's transfers in a transaction."""
        out: list[tuple[str, str, int]] = []
        token = Web3.to_checksum_address(token)
        for raw in self.source.receipt_logs(tx_hash):
            if Web3.to_checksum_address(raw["address"]) != token:
                continue
            event = self.decoder.decode(raw)
            if event is not None and event.name == "Transfer":
                args = event.args
                out.append((Web3.to_checksum_address(args["from_"]), Web3.to_checksum_address(args["to"]),
                            int(args["value"])))  # fmt: skip
        return out
