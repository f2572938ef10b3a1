"""The base of the typed contract wrappers: calls, sends, and event reads."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Self, TypedDict, TypeVar, Unpack

from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError, Web3RPCError
from web3.types import BlockIdentifier, TxReceipt

from tender.chain._abi import LogDecoder, snake
from tender.chain._artifacts import TENDER_CONTRACTS, Artifact, combined_abi, load_artifact
from tender.chain._events import Event, to_event
from tender.chain._reverts import RevertDecoder, tender_decoder
from tender.chain._tx import TxSender, failed_call, with_retries
from tender.errors import ConfigError, ContractRevert, TransactionFailed

#: Blocks per ``eth_getLogs`` request when scanning a long range.
LOG_CHUNK = 5_000

T = TypeVar("T")


class ChainAccess(TypedDict, total=False):
    """How wrappers reach their contracts (keyword arguments of every wrapper and of
    :meth:`Contracts.load`): ``sender`` sends the writes (reads need none); ``artifacts_dir``:
    where the compiled artefacts are (default: the packaged ABIs or ``contracts/out``)."""

    sender: TxSender | None
    artifacts_dir: Path | None


class WrapperOptions(ChainAccess, total=False):
    """A wrapper's keyword arguments: :class:`ChainAccess`, and ``artifact``: the artefact
    itself (default: loaded by the wrapper's artefact name)."""

    artifact: Artifact | None


class ContractWrapper:
    """A deployed contract with a typed Python face.

    Reads need only ``w3``; writes go through ``sender`` (see :meth:`using` to act as
    another account). Every revert surfaces as :class:`~tender.errors.ContractRevert`.
    Keyword arguments: :class:`WrapperOptions`.
    """

    ARTIFACT: ClassVar[str]

    def __init__(self, w3: Web3, address: str, **options: Unpack[WrapperOptions]) -> None:
        self.w3 = w3
        self.address = Web3.to_checksum_address(address)
        self._artifacts_dir = options.get("artifacts_dir")
        self.artifact = options.get("artifact") or load_artifact(
            self._artifact_name(), artifacts_dir=self._artifacts_dir
        )
        self.contract: Contract = w3.eth.contract(address=self.address, abi=list(self.artifact.abi))
        self.sender = options.get("sender")

    def _artifact_name(self) -> str:
        """The artefact loaded when none is given (a subclass may pick it per instance)."""
        return self.ARTIFACT

    def __repr__(self) -> str:
        who = f", as {self.sender.address}" if self.sender else ""
        return f"{type(self).__name__}({self.address}{who})"

    def using(self, sender: TxSender) -> Self:
        """The same contract, sending from ``sender``'s account."""
        clone = copy.copy(self)
        clone.sender = sender
        return clone

    # -- plumbing -----------------------------------------------------------------------

    @property
    def fn(self) -> Any:
        """``contract.functions``: the raw web3 functions, for what the wrapper lacks."""
        return self.contract.functions

    @property
    def decoder(self) -> RevertDecoder:
        return self.sender.decoder if self.sender else tender_decoder()

    def _me(self) -> str:
        """The sender's address (raises :class:`ConfigError` when there is no sender)."""
        if self.sender is None:
            raise ConfigError(f"{type(self).__name__} has no sender: call .using(TxSender(w3, key)) first")
        return self.sender.address

    def _send(self, function: ContractFunction, *, value: int = 0, gas: int | None = None) -> TxReceipt:
        if self.sender is None:
            raise ConfigError(f"{type(self).__name__} has no sender: call .using(TxSender(w3, key)) first")
        try:
            return self.sender.send(function, value=value, gas=gas)
        except ContractRevert as exc:
            decoded = self._named(exc)
            if decoded is not exc:
                raise decoded from exc
            raise
        except TransactionFailed as exc:
            if exc.revert is not None:
                exc.revert = self._named(exc.revert)
            raise

    def _named(self, revert: ContractRevert) -> ContractRevert:
        """``revert`` named by this wrapper's decoder when the sender's did not know it: the
        sender knows the Tender contracts' errors, a wrapper over another contract (an example
        consumer) also its own."""
        if revert.name != "unknown" or not revert.data:
            return revert
        decoded = self.decoder.decode(revert.data)
        return revert if decoded.name == "unknown" else decoded

    def _call(self, function: ContractFunction, *, block: BlockIdentifier = "latest") -> Any:
        try:
            return with_retries(lambda: function.call(block_identifier=block), retries=3, backoff=0.25)
        except (ContractLogicError, Web3RPCError) as exc:
            raise failed_call(exc, self.decoder.from_exception(exc), f"{function.fn_name} call") from exc

    # -- events -------------------------------------------------------------------------

    @cached_property
    def log_decoder(self) -> LogDecoder:
        """Decodes this contract's events."""
        return LogDecoder(self.artifact.abi)

    def events_in(self, receipt: TxReceipt) -> list[Event]:
        """The events this contract emitted in a transaction, typed."""
        out: list[Event] = []
        for log in receipt["logs"]:
            if Web3.to_checksum_address(log["address"]) != self.address:
                continue
            decoded = self.log_decoder.decode(log)
            if decoded is not None:
                out.append(to_event(decoded))
        return out

    def events(
        self,
        from_block: int = 0,
        to_block: int | str = "latest",
        *,
        names: Sequence[str] | None = None,
        job_id: bytes | None = None,
        chunk: int = LOG_CHUNK,
    ) -> Iterator[Event]:
        """This contract's events in a block range, oldest first (scanned ``chunk`` blocks at a time).

        Args:
            from_block: first block (inclusive).
            to_block: last block (inclusive) or ``"latest"``.
            names: only events with these names (``["BidPlaced", "Awarded"]``).
            job_id: only events whose first indexed argument is this job id (market events).
            chunk: blocks per ``eth_getLogs`` request.
        """
        from tender.chain._feed import EventFeed  # the feed decodes with this module's decoder

        feed = EventFeed(self.w3, [self.address], names=names, decoder=self.log_decoder, chunk=chunk)
        last = None if to_block == "latest" else int(to_block)
        yield from feed.read(from_block, last, job_id=job_id)


def view(
    function: str, convert: Callable[[Any], T], doc: str | None = None
) -> Callable[[ContractWrapper], T]:
    """A wrapper method reading the contract's argument-less view ``function``, converted:
    ``fees_owed = view("feesOwed", int, "Fees accrued...")`` (named ``snake(function)``, so
    :func:`~tender.chain.forwarded` finds it; a view with arguments is written out)."""

    def read(self: ContractWrapper) -> T:
        return convert(self._call(getattr(self.fn, function)()))

    read.__name__ = read.__qualname__ = snake(function)
    read.__doc__ = doc
    return read


def tender_log_decoder(*, artifacts_dir: Path | None = None) -> LogDecoder:
    """A log decoder over the events of every Tender contract."""
    return LogDecoder(combined_abi(TENDER_CONTRACTS, artifacts_dir=artifacts_dir))
