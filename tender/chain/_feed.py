"""Following the chain's logs: the one log-polling loop, as typed events, reorg-safe, resumable.

:class:`AsyncEventFeed` (asyncio) and :class:`EventFeed` (threads) are twins over one model, the
way httpx pairs ``AsyncClient`` and ``Client``: the algorithm is written once, as a generator that
yields the RPC reads it needs (:class:`_Head`, :class:`_Headers`, :class:`_Logs`) and receives their
answers; each twin only performs those reads, awaiting or blocking. ``eth_getLogs`` is called here
and nowhere else in Tender.

A feed reads some contracts' logs block range by block range, ``confirmations`` blocks behind the
head, decodes them into :mod:`tender.chain` events and hands each batch to a handler *inside the
cursor's transaction that advances it*: the events and the new position are stored together or not
at all, so a restarted role resumes exactly after the last block it processed.

Reorgs: the cursor remembers the hashes of the last ``reorg_depth`` blocks processed. Before each
step the feed checks that its position still has the stored hash; if not, it walks back to the
highest block whose hash still matches (the fork point), calls ``cursor.rollback(fork)`` so that
what was learnt from the dropped blocks is forgotten, tells ``on_rollback``, and reads the new
chain from the fork on. Within a step it also checks that the fetched headers chain together and
that every log's ``blockHash`` is its header's; a reorg in the middle of a step retries the step
(a few times; a chain still moving after that makes the step process nothing, never an error).

RPC errors propagate to the caller, which decides whether and when to retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from hexbytes import HexBytes
from web3 import AsyncWeb3, Web3

from tender.chain._abi import LogDecoder
from tender.chain._base import tender_log_decoder
from tender.chain._events import Event, to_event
from tender.chain._tx import is_transient
from tender.errors import FeedError
from tender.logs import log

__all__ = ["AsyncEventFeed", "EventFeed", "FeedCursor", "Handler", "MemoryCursor", "RollbackHandler"]

logger = logging.getLogger("tender.feed")

#: ``handler(events)`` stores what a batch of events means (inside the cursor's transaction).
Handler = Callable[[list[Event]], None]
#: ``on_rollback(fork, touched)``: told the fork block and what ``cursor.rollback(fork)`` returned.
RollbackHandler = Callable[[int, Sequence[Any]], None]

T = TypeVar("T")


class FeedCursor(Protocol):
    """Where a feed keeps its place: a role's store implements it to make its feed resumable."""

    @property
    def cursor(self) -> int | None:
        """The last block processed (``None`` before the first)."""
        ...

    def block_hash(self, number: int) -> str | None:
        """The remembered hash (0x hex) of a processed block."""
        ...

    def recent_blocks(self) -> list[tuple[int, str]]:
        """The remembered ``(number, hash)`` pairs, newest first."""
        ...

    def advance(self, last: int, hashes: Mapping[int, str], *, keep: int) -> None:
        """Move the position to ``last`` and remember ``hashes`` (at most ``keep`` blocks in all)."""
        ...

    def rollback(self, fork: int) -> Sequence[Any]:
        """Forget everything learnt after block ``fork``; return what it touched (job ids...)."""
        ...

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """A transaction around one batch: the handler's writes and :meth:`advance` together."""
        ...


class MemoryCursor:
    """A :class:`FeedCursor` in memory (a feed that starts afresh on every run)."""

    def __init__(self) -> None:
        self._cursor: int | None = None
        self._hashes: dict[int, str] = {}

    @property
    def cursor(self) -> int | None:
        return self._cursor

    def block_hash(self, number: int) -> str | None:
        return self._hashes.get(number)

    def recent_blocks(self) -> list[tuple[int, str]]:
        return sorted(self._hashes.items(), reverse=True)

    def advance(self, last: int, hashes: Mapping[int, str], *, keep: int) -> None:
        self._hashes.update(hashes)
        for number in sorted(self._hashes)[:-keep] if keep > 0 else list(self._hashes):
            del self._hashes[number]
        self._cursor = last

    def rollback(self, fork: int) -> Sequence[Any]:
        self._hashes = {n: h for n, h in self._hashes.items() if n <= fork}
        self._cursor = fork
        return []

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        yield


# -- the reads the algorithm asks for --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Head:
    """The chain's head block number."""


@dataclass(frozen=True, slots=True)
class _Headers:
    """``(hash, parentHash)`` of each block in ``numbers`` (``("", "")`` for a missing block)."""

    numbers: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class _Logs:
    """``eth_getLogs`` with these parameters."""

    params: dict[str, Any]


_Read = _Head | _Headers | _Logs
_Plan = Generator[_Read, Any, T]


class _Retry(Exception):
    """The chain moved under one step (a reorg in flight): run the step again."""


def _hex(value: Any) -> str:
    return HexBytes(value).to_0x_hex()


def _header(block: Any) -> tuple[str, str]:
    return _hex(block["hash"]), _hex(block["parentHash"])


class _FeedModel:
    """What both twins share: the configuration and the step algorithm, free of I/O."""

    def __init__(
        self,
        addresses: Sequence[str],
        *,
        names: Sequence[str] | None = None,
        decoder: LogDecoder | None = None,
        cursor: FeedCursor | None = None,
        confirmations: int = 0,
        reorg_depth: int = 64,
        start_block: int = 0,
        chunk: int = 2_000,
    ) -> None:
        if chunk < 1 or reorg_depth < 1 or confirmations < 0 or start_block < 0:
            raise ValueError("chunk and reorg_depth must be >= 1, confirmations and start_block >= 0")
        self.addresses = [Web3.to_checksum_address(a) for a in addresses]
        self.decoder = decoder if decoder is not None else tender_log_decoder()
        unknown = [n for n in names or () if n not in self.decoder.names]
        if unknown:
            raise ValueError(f"no event named {', '.join(unknown)} in the ABI the feed decodes with")
        self.topics = [_hex(self.decoder.topic(n)) for n in names] if names else None
        self.store: FeedCursor = cursor if cursor is not None else MemoryCursor()
        self.confirmations = confirmations
        self.reorg_depth = reorg_depth
        self.start_block = start_block
        self.chunk = chunk
        #: The chain head seen at the last step.
        self.head = 0

    @property
    def position(self) -> int:
        """The last block processed (``start_block - 1`` before the first)."""
        cursor = self.store.cursor
        return self.start_block - 1 if cursor is None else cursor

    def decode(self, logs: Sequence[Any]) -> list[Event]:
        """Typed events of ``logs`` (oldest first); logs of unknown events are left out."""
        ordered = sorted(logs, key=lambda e: (int(e["blockNumber"]), int(e["logIndex"])))
        out: list[Event] = []
        for entry in ordered:
            decoded = self.decoder.decode(entry)
            if decoded is not None:
                out.append(to_event(decoded))
        return out

    def _params(self, first: int, last: int, job_id: bytes | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"fromBlock": first, "toBlock": last, "address": self.addresses}
        topics: list[Any] = [self.topics] if self.topics else []
        if job_id is not None:
            topics = [topics[0] if topics else None, _hex(job_id)]
        if topics:
            params["topics"] = topics
        return params

    def _read_plan(self, first: int, last: int | None, job_id: bytes | None) -> _Plan[list[Event]]:
        if last is None:
            last = int((yield _Head()))
        out: list[Event] = []
        start = first
        while start <= last:
            end = min(start + self.chunk - 1, last)
            out.extend(self.decode((yield _Logs(self._params(start, end, job_id)))))
            start = end + 1
        return out

    def _rollback_plan(self, on_rollback: RollbackHandler | None) -> _Plan[None]:
        position = self.position
        stored = self.store.block_hash(position)
        if stored is None:
            return
        (current, _), *_ = yield _Headers((position,))
        if current == stored:
            return
        fork = yield from self._fork_plan()
        touched = self.store.rollback(fork)
        log(logger, "feed.reorg", level=logging.WARNING, fork=fork, from_block=position, touched=len(touched))
        if on_rollback is not None:
            on_rollback(fork, touched)

    def _fork_plan(self) -> _Plan[int]:
        remembered = self.store.recent_blocks()
        if remembered:
            current = yield _Headers(tuple(n for n, _ in remembered))
            for (number, stored), (now, _) in zip(remembered, current, strict=True):
                if now == stored:
                    return number
        if remembered and remembered[-1][0] <= self.start_block:
            return self.start_block - 1
        raise FeedError(
            f"a reorg deeper than the {len(remembered)} remembered blocks: raise reorg_depth or confirmations"
        )

    def _step_plan(self, handler: Handler, on_rollback: RollbackHandler | None) -> _Plan[int]:
        yield from self._rollback_plan(on_rollback)
        self.head = int((yield _Head()))
        target = self.head - self.confirmations
        first = self.position + 1
        if target < first:
            return 0
        last = min(target, first + self.chunk - 1)
        # headers of the blocks recent enough to be reorged; older ones are final for us
        low = max(first, target - self.reorg_depth + 1)
        numbers = tuple(range(low, last + 1))
        headers: list[tuple[str, str]] = (yield _Headers(numbers)) if numbers else []
        hashes = {n: h for n, (h, _) in zip(numbers, headers, strict=True)}
        if any(not h for h in hashes.values()):
            raise _Retry
        previous = self.store.block_hash(low - 1)
        for n, (_, parent) in zip(numbers, headers, strict=True):
            expected = hashes.get(n - 1, previous if n == low else None)
            if expected is not None and parent != expected:
                raise _Retry
        logs = yield _Logs(self._params(first, last))
        for entry in logs:
            known = hashes.get(int(entry["blockNumber"]))
            if known is not None and _hex(entry["blockHash"]) != known:
                raise _Retry
        events = self.decode(logs)
        with self.store.transaction():
            handler(events)
            self.store.advance(last, hashes, keep=self.reorg_depth)
        return last - first + 1


#: Attempts of one step while the chain reorganises under it.
_STEP_ATTEMPTS = 5


def _unsettled() -> int:
    """A step whose every attempt found the chain moving under it (a reorg still being mined, a
    loaded node): nothing was processed and nothing is wrong, so it is not an error (a role must
    not stop for it); the caller polls again. Only a reorg deeper than the remembered blocks is
    a :class:`~tender.errors.FeedError`."""
    log(logger, "feed.unsettled", level=logging.WARNING, attempts=_STEP_ATTEMPTS)
    return 0


class AsyncEventFeed(_FeedModel):
    """Follows ``addresses``' events with asyncio (an ``AsyncWeb3`` from :func:`tender.chain.async_connect`).

    Args:
        w3: an async web3.
        addresses: contracts to follow.
        names: only these events (``["IntentPosted", "Awarded"]``); ``None``: all.
        decoder: the ABI to decode with (default: every Tender contract's).
        cursor: where the position and recent block hashes are kept (default: in memory).
        confirmations: blocks behind the head to stay.
        reorg_depth: block hashes remembered.
        start_block: where a fresh cursor starts.
        chunk: blocks per ``eth_getLogs``.
    """

    def __init__(self, w3: AsyncWeb3[Any], addresses: Sequence[str], **options: Any) -> None:
        super().__init__(addresses, **options)
        self.w3 = w3

    async def _perform(self, read: _Read) -> Any:
        if isinstance(read, _Head):
            return await self.w3.eth.block_number
        if isinstance(read, _Headers):
            return await asyncio.gather(*(self._header(n) for n in read.numbers))
        return await self.w3.eth.get_logs(read.params)  # type: ignore[arg-type]

    async def _header(self, number: int) -> tuple[str, str]:
        try:
            return _header(await self.w3.eth.get_block(number))
        except Exception as exc:  # a block the node no longer has (reorged away, pruned)
            if is_transient(exc):
                raise  # the node unreachable (an outage): the step fails and is retried, not a reorg
            log(logger, "feed.block_missing", level=logging.DEBUG, block=number, error=repr(exc))
            return "", ""

    async def _drive(self, plan: _Plan[T]) -> T:
        try:
            read = next(plan)
            while True:
                read = plan.send(await self._perform(read))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def step(self, handler: Handler, on_rollback: RollbackHandler | None = None) -> int:
        """Process the next range of blocks; returns how many blocks were processed (0 also when
        the chain kept reorganising under the step: the caller's next poll tries again)."""
        for _ in range(_STEP_ATTEMPTS):
            try:
                return await self._drive(self._step_plan(handler, on_rollback))
            except _Retry:
                await asyncio.sleep(0.05)
        return _unsettled()

    async def run(
        self,
        handler: Handler,
        *,
        poll_interval: float,
        stopping: asyncio.Event,
        on_rollback: RollbackHandler | None = None,
    ) -> None:
        """Step until ``stopping`` is set, sleeping ``poll_interval`` when caught up."""
        while not stopping.is_set():
            if await self.step(handler, on_rollback) == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), poll_interval)

    async def read(
        self, from_block: int, to_block: int | None = None, *, job_id: bytes | None = None
    ) -> list[Event]:
        """The events in ``[from_block, to_block]`` (default: to the head), oldest first; the cursor
        is neither read nor moved. ``job_id``: only events whose first indexed argument is it."""
        return await self._drive(self._read_plan(from_block, to_block, job_id))


class EventFeed(_FeedModel):
    """The synchronous twin of :class:`AsyncEventFeed` (same arguments, a ``Web3``)."""

    def __init__(self, w3: Web3, addresses: Sequence[str], **options: Any) -> None:
        super().__init__(addresses, **options)
        self.w3 = w3

    def _perform(self, read: _Read) -> Any:
        if isinstance(read, _Head):
            return self.w3.eth.block_number
        if isinstance(read, _Headers):
            return [self._header(n) for n in read.numbers]
        return self.w3.eth.get_logs(read.params)  # type: ignore[arg-type]

    def _header(self, number: int) -> tuple[str, str]:
        try:
            return _header(self.w3.eth.get_block(number))
        except Exception as exc:  # a block the node no longer has (reorged away, pruned)
            if is_transient(exc):
                raise  # the node unreachable (an outage): the step fails and is retried, not a reorg
            log(logger, "feed.block_missing", level=logging.DEBUG, block=number, error=repr(exc))
            return "", ""

    def _drive(self, plan: _Plan[T]) -> T:
        try:
            read = next(plan)
            while True:
                read = plan.send(self._perform(read))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    def step(self, handler: Handler, on_rollback: RollbackHandler | None = None) -> int:
        """Process the next range of blocks; returns how many blocks were processed (0 also when
        the chain kept reorganising under the step: the caller's next poll tries again)."""
        for _ in range(_STEP_ATTEMPTS):
            try:
                return self._drive(self._step_plan(handler, on_rollback))
            except _Retry:
                threading.Event().wait(0.05)
        return _unsettled()

    def run(
        self,
        handler: Handler,
        *,
        poll_interval: float,
        stopping: threading.Event,
        on_rollback: RollbackHandler | None = None,
    ) -> None:
        """Step until ``stopping`` is set, sleeping ``poll_interval`` when caught up."""
        while not stopping.is_set():
            if self.step(handler, on_rollback) == 0:
                stopping.wait(poll_interval)

    def read(
        self, from_block: int, to_block: int | None = None, *, job_id: bytes | None = None
    ) -> list[Event]:
        """The events in ``[from_block, to_block]`` (default: to the head), oldest first; the cursor
        is neither read nor moved. ``job_id``: only events whose first indexed argument is it."""
        return self._drive(self._read_plan(from_block, to_block, job_id))
