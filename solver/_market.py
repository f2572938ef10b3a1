"""What the solver needs from a market contract, over async web3 and the compiled ABI.

Everything that depends on the Solidity names lives here: the transactions the solver sends
(``bid``, ``award``, ``fill``, ``expire``, ``submitSigned``), the views it reads (``job``,
``currentPrice``), and how it reads events (by name, through ``tender.chain``'s log decoder,
with the aliases ``tender.client`` also accepts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from hexbytes import HexBytes
from web3 import AsyncWeb3
from web3.types import TxParams

from tender.chain import DecodedLog, LogDecoder, load_artifact, snake
from tender.intents import AuctionType, Intent

__all__ = ["CHAIN_STATES", "FINAL_STATES", "STEPS", "ChainJob", "MarketGateway", "step_of"]

_ARTIFACTS = {AuctionType.REVERSE: "ReverseAuctionMarket", AuctionType.DUTCH: "DutchAuctionMarket"}

#: Event names (and aliases) -> the step of a job they mark.
STEPS: dict[str, str] = {
    "IntentPosted": "posted", "IntentSubmitted": "posted", "JobPosted": "posted", "JobOpened": "posted",
    "BidPlaced": "bid", "BidSubmitted": "bid",
    "JobAwarded": "awarded", "Awarded": "awarded", "JobFilled": "awarded", "Filled": "awarded",
    "JobDelivered": "delivered", "Delivered": "delivered",
    "JobSettled": "settled", "Settled": "settled", "JobFinalized": "settled", "Finalized": "settled",
    "JobRefunded": "refunded", "Refunded": "refunded", "IntentRefunded": "refunded",
    "JobExpired": "expired", "Expired": "expired", "JobSlashed": "expired", "ChallengeUpheld": "expired", "Slashed": "expired",
    "FailedOver": "awarded",
}  # fmt: skip

#: The on-chain ``JobState`` names, by value (``MarketStructs.JobState``).
CHAIN_STATES = ("none", "open", "awarded", "delivered", "challenged", "proof_required", "settled", "refunded",
                "expired", "slashed")  # fmt: skip
#: States after which nothing happens to a job any more.
FINAL_STATES = frozenset({"settled", "refunded", "expired", "slashed"})


def step_of(name: str) -> str | None:
    return STEPS.get(name)


@dataclass(frozen=True, slots=True)
class ChainJob:
    """The market's record of a job, by field name (snake_case), plus its state name."""

    state: str
    fields: Mapping[str, Any]

    def get(self, *names: str, default: Any = None) -> Any:
        for name in names:
            if name in self.fields:
                return self.fields[name]
        return default

    @property
    def provider(self) -> str | None:
        value = self.get("provider")
        return None if not value or int(str(value), 16) == 0 else str(value)

    @property
    def price(self) -> int:
        return int(self.get("price", default=0))

    @property
    def deadline(self) -> int:
        return int(self.get("deadline", default=0))


def _flatten(abi_outputs: Sequence[Mapping[str, Any]], value: Any) -> dict[str, Any]:
    """A decoded (possibly nested) struct as one flat dict of snake_case names."""
    out: dict[str, Any] = {}
    if len(abi_outputs) == 1 and abi_outputs[0].get("components") is not None:
        abi_outputs, value = abi_outputs[0]["components"], value
    values = value if isinstance(value, list | tuple) else [value]
    for item, v in zip(abi_outputs, values, strict=False):
        name = snake(str(item.get("name", "")))
        if item.get("components") is not None and isinstance(v, list | tuple):
            out.update(_flatten(item["components"], v))
        elif name:
            out[name] = bytes(v) if isinstance(v, HexBytes | bytes) else v
    return out


class MarketGateway:
    """One market, as the solver uses it."""

    def __init__(self, w3: AsyncWeb3[Any], address: str, auction: AuctionType) -> None:
        self.auction = AuctionType(auction)
        self.name = self.auction.name.lower()
        self.address = AsyncWeb3.to_checksum_address(address)
        self.abi = list(load_artifact(_ARTIFACTS[self.auction]).abi)
        self.contract = w3.eth.contract(address=self.address, abi=self.abi)
        self.decoder = LogDecoder(self.abi)
        self._function_abi = {e["name"]: e for e in self.abi if e.get("type") == "function"}

    # -- transactions -------------------------------------------------------------------

    def _tx(self, name: str, *args: Any) -> TxParams:
        data = getattr(self.contract.functions, name)(*args)._encode_transaction_data()
        return cast(TxParams, {"to": self.address, "data": data, "value": 0})

    def bid_tx(self, job_id: bytes, provider: str, price: int, latency: int) -> TxParams:
        return self._tx("bid", job_id, (AsyncWeb3.to_checksum_address(provider), price, latency))

    def award_tx(self, job_id: bytes) -> TxParams:
        return self._tx("award", job_id)

    def fill_tx(self, job_id: bytes, provider: str, latency: int) -> TxParams:
        return self._tx("fill", job_id, AsyncWeb3.to_checksum_address(provider), latency)

    def expire_tx(self, job_id: bytes) -> TxParams:
        return self._tx("expire", job_id)

    def finalize_tx(self, job_id: bytes) -> TxParams:
        return self._tx("finalize", job_id)

    def submit_signed_tx(self, intent: Intent, signature: bytes) -> TxParams:
        return self._tx("submitSigned", intent.to_abi(), signature)

    def has(self, function: str) -> bool:
        return function in self._function_abi

    # -- views --------------------------------------------------------------------------

    async def job(self, job_id: bytes) -> ChainJob:
        value = await self.contract.functions.job(job_id).call()
        fields = _flatten(self._function_abi["job"]["outputs"], value)
        raw_state = fields.get("state", 0)
        state = CHAIN_STATES[int(raw_state)] if int(raw_state) < len(CHAIN_STATES) else str(raw_state)
        return ChainJob(state=state, fields=fields)

    async def view(self, function: str, *args: Any) -> dict[str, Any]:
        """Any view, its result flattened by output names (``bestBid``, ``auctionEnd``...)."""
        value = await getattr(self.contract.functions, function)(*args).call()
        return _flatten(self._function_abi[function]["outputs"], value)

    async def current_price(self, job_id: bytes) -> int:
        return int(await self.contract.functions.currentPrice(job_id).call())

    # -- events -------------------------------------------------------------------------

    def decode(self, log: Any) -> DecodedLog | None:
        return self.decoder.decode(log)

    @property
    def topics(self) -> list[bytes]:
        return self.decoder.topics
