"""What a settled request returns (output, proof, money, transactions and where time went), and
what a withdrawal of the market's credit paid."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Latency", "RequestResult", "Withdrawal"]


@dataclass(frozen=True, slots=True)
class Latency:
    """Where the time of one request went, in milliseconds (wall clock, seen by the client).

    Attributes:
        auction_ms: intent sent → award (reverse) or fill (Dutch).
        inference_ms: the provider's model run, when its API reports it (else ``None``).
        proving_ms: the provider's proof, when its API reports it (else ``None``).
        delivery_ms: award → the delivery transaction (inference, proving and the send).
        settlement_ms: delivery → settlement (verification on-chain, or the challenge window).
        total_ms: intent sent → settled, as the caller saw it.
    """

    auction_ms: float
    delivery_ms: float
    settlement_ms: float
    total_ms: float
    inference_ms: float | None = None
    proving_ms: float | None = None


@dataclass(frozen=True, slots=True)
class RequestResult:
    """A settled request.

    Attributes:
        job_id: the job id (``0x``-hex).
        model: the model's name or id as requested.
        output: the delivered output as field elements (what the verifier checked).
        values: the output as numbers, dequantized with the model card's scale (if known).
        proof: the proof bytes (zk mode, or a challenged optimistic job), else ``None``.
        verified: whether the proof was verified locally (``False`` when there is none).
        proof_mode: ``"zk"`` or ``"optimistic"``. auction: ``"reverse"`` or ``"dutch"``.
        provider: the provider that was paid. price_paid: what it was paid (token base units;
        credited to the provider in the market, which it withdraws).
        max_price: the intent's max price. refund: the unspent escrow, credited to the requester
        in the market (``Client.owed``; it pays the next escrow there first, or
        ``Client.withdraw`` pays it out). market: the market that settled the job.
        tx_hashes: transaction hash by step (``post``/``submit``, ``award``, ``deliver``, ``settle``...).
        gas: gas used by step, for the transactions the client saw.
        latency: where the time went.
        bids: how many bids the job received (reverse auctions).
        confirmations: blocks mined on top of the settlement's block when it was reported
            (at least ``Client(confirmations=...)``).
        reorgs: how many reorgs took back events of this job while it was followed (a
            settlement taken back is followed until the job settles again).
    """

    job_id: str
    model: str
    output: list[int]
    proof: bytes | None
    verified: bool
    proof_mode: str
    auction: str
    provider: str
    price_paid: int
    max_price: int
    latency: Latency
    refund: int = 0
    values: list[float] | None = None
    tx_hashes: dict[str, str] = field(default_factory=dict)
    gas: dict[str, int] = field(default_factory=dict)
    bids: int = 0
    market: str = ""
    confirmations: int = 0
    reorgs: int = 0

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (big integers as decimal strings, bytes as hex)."""
        data = asdict(self)
        data["proof"] = "0x" + self.proof.hex() if self.proof is not None else None
        data["output"] = [str(v) for v in self.output]
        data["price_paid"] = str(self.price_paid)
        data["max_price"] = str(self.max_price)
        data["refund"] = str(self.refund)
        return data


@dataclass(frozen=True, slots=True)
class Withdrawal:
    """One ``withdraw``: a market paid ``account`` everything it owed it.

    Attributes:
        auction: the market's auction type (``"reverse"``/``"dutch"``). market: its address.
        account: who was paid. amount: what was paid (token base units). tx_hash: the transaction.
    """

    auction: str
    market: str
    account: str
    amount: int
    tx_hash: str

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["amount"] = str(self.amount)
        return data
