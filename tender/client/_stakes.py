"""The providers' free stake as this process last read it: the quote path's stake check from memory.

A quoted output is returned only when the quoting provider's stake covers the job
(:mod:`tender.client._rfq`). Reading it per request puts an RPC call (and, on a loaded client,
a wait for a worker thread) between the provider's answer and the result. A :class:`StakeView`
is shared by every client and round of one process on one ``Staking`` contract:

- a read of a provider is started when it first quotes and kept; a later check is answered
  from memory while the read is younger than ``max_age`` seconds, and a read older than
  ``refresh_after`` is renewed in the background (the check does not wait for it);
- the holds of awards this process sent (``openAwarded``) are subtracted from the provider's
  stake from when the award is sent until a read started after its receipt came back, so two
  rounds of one process do not both count on the same stake;
- ``max_age = 0`` reads afresh on every check (the check waits for the read).

Why a read can be kept for seconds: free stake leaves a provider only by a hold (an award, in
this process or another), a slash, or unstaking, and unstaking makes it claimable only after the
unstaking delay (days). A kept read can overstate what is free by the holds other requesters'
awards placed since: the award then reverts ``InsufficientStake`` and the requester pays
nothing (``docs/PROTOCOL.md``, "What backs a provisional result").
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

__all__ = ["STAKE_MAX_AGE_S", "StakeView", "stake_view"]

#: how long a stake read answers checks from memory (seconds)
STAKE_MAX_AGE_S = 10.0
#: a read older than this is renewed in the background when a check uses it (each award this
#: process sees mined also renews its provider's, after the result: off the path)
REFRESH_AFTER_S = 5.0
#: Stake reads run on threads of their own: in the default executor they would queue behind
#: every job's settlement polls (``asyncio.to_thread``), which on a busy client hold all its threads.
_READS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="tender-stake-read")


@dataclass(slots=True)
class _Read:
    value: int
    started: float  # time.monotonic() when the read was sent


@dataclass(slots=True)
class _Hold:
    amount: int
    #: time.monotonic() when the award's receipt came back (``None``: not yet)
    mined_at: float | None = None


@dataclass(slots=True)
class _Provider:
    read: _Read | None = None
    pending: asyncio.Future[_Read] | None = None
    holds: dict[str, _Hold] = field(default_factory=dict)


class StakeView:
    """The free stake of the providers this process deals with, read through ``read``.

    Args:
        read: ``read(provider) -> int``, blocking (an ``eth_call`` of ``Staking.availableOf``).
        max_age: seconds a read answers :meth:`backing` from memory (0: never).
        refresh_after: seconds after which a used read is renewed in the background.
        clock: a monotonic clock (tests).
    """

    def __init__(
        self,
        read: Callable[[str], int],
        *,
        max_age: float = STAKE_MAX_AGE_S,
        refresh_after: float = REFRESH_AFTER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self.max_age = max_age
        self.refresh_after = refresh_after
        self._clock = clock
        self._providers: dict[str, _Provider] = {}
        #: reads sent (how many RPC reads the view made: tests and profiles)
        self.reads = 0

    def _entry(self, provider: str) -> _Provider:
        key = provider.lower()
        found = self._providers.get(key)
        if found is None:
            found = self._providers[key] = _Provider()
        return found

    def warm(self, provider: str) -> None:
        """Start a read of ``provider`` unless a usable one is kept or on its way (when it quotes:
        the read then runs while the round does)."""
        entry = self._entry(provider)
        if entry.pending is None and not self._fresh(entry.read, min(self.refresh_after, self.max_age)):
            self._start(provider, entry)

    async def backing(self, provider: str, *, fresh: bool = False) -> int:
        """``provider``'s free stake less the holds of this process's awards not yet read back:
        from memory when a read younger than ``max_age`` is kept, else after a read (``fresh``:
        after a read sent now, or the one on its way)."""
        entry = self._entry(provider)
        read = entry.read
        if fresh:
            pending = entry.pending if entry.pending is not None else self._start(provider, entry)
            read = await asyncio.shield(pending)
        elif self._fresh(read, self.max_age) and read is not None:
            if entry.pending is None and not self._fresh(read, self.refresh_after):
                self._start(provider, entry)
        else:
            pending = entry.pending if entry.pending is not None else self._start(provider, entry)
            read = await asyncio.shield(pending)
        return read.value - sum(h.amount for h in entry.holds.values())

    def hold(self, provider: str, job_id: str, amount: int) -> None:
        """An award of ``job_id`` to ``provider`` was sent: count ``amount`` against it."""
        self._entry(provider).holds[job_id.lower()] = _Hold(amount)

    def award_done(self, provider: str, job_id: str, *, mined: bool) -> None:
        """The award's receipt came back (``mined``) or the award failed (its hold is dropped).
        A mined hold is counted until a read sent after now comes back (one is sent now)."""
        entry = self._entry(provider)
        key = job_id.lower()
        if not mined:
            entry.holds.pop(key, None)
            return
        held = entry.holds.get(key)
        if held is not None:
            held.mined_at = self._clock()
        if entry.pending is None:
            self._start(provider, entry)

    def _fresh(self, read: _Read | None, age: float) -> bool:
        return read is not None and self._clock() - read.started <= age

    def _start(self, provider: str, entry: _Provider) -> asyncio.Future[_Read]:
        started = self._clock()
        self.reads += 1
        future = asyncio.get_running_loop().run_in_executor(_READS, self._read, provider)

        async def finish() -> _Read:
            try:
                read = _Read(int(await future), started)
            finally:
                if entry.pending is task:
                    entry.pending = None
            if entry.read is None or entry.read.started <= started:
                entry.read = read
            # a hold whose award was mined before this read was sent is in the value now
            for job, held in list(entry.holds.items()):
                if held.mined_at is not None and held.mined_at <= started:
                    del entry.holds[job]
            return read

        task = asyncio.ensure_future(finish())
        task.add_done_callback(_consume)
        entry.pending = task
        return task


def _consume(future: asyncio.Future[_Read]) -> None:
    """Retrieve a read's error when nobody awaits it (a background renewal): the next check
    reads again."""
    if not future.cancelled():
        future.exception()


#: one view per event loop and (RPC URL, Staking address, max age) (a read is a future of its loop)
_VIEWS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str, float], StakeView]] = (
    weakref.WeakKeyDictionary()
)


def stake_view(rpc: str, staking: str, read: Callable[[str], int], *, max_age: float) -> StakeView:
    """This event loop's view of ``staking``'s stakes on the chain at ``rpc`` (made on first use)."""
    views = _VIEWS.setdefault(asyncio.get_running_loop(), {})
    key = (rpc, staking.lower(), max_age)
    found = views.get(key)
    if found is None:
        found = views[key] = StakeView(read, max_age=max_age)
    return found
