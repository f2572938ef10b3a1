"""Chain time without an RPC per read: the head's timestamp, refreshed in the background.

A quote's deadline check needs chain time, and asking the node for the latest block costs a
round trip (~8 ms on loopback) that a quote round cannot afford. :class:`ChainClock` reads the
head once at start-up and then every ``refresh_s`` seconds in a background task; between reads
it answers the head's timestamp plus the monotonic time since that head was first seen, which
is what the next block's timestamp will be near. A head seen again unchanged keeps its anchor,
so the estimate never steps back while the chain is idle. A failed refresh is logged and the
estimate keeps advancing from the last head.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from time import monotonic

import aiohttp
from web3.exceptions import Web3Exception

from tender.errors import TenderError
from tender.logs import log

__all__ = ["ChainClock"]

logger = logging.getLogger("provider.clock")

#: What a failed head read can raise (anything else is a bug and stops the node).
_READ_ERRORS: tuple[type[Exception], ...] = (
    TenderError,
    Web3Exception,
    OSError,
    TimeoutError,
    ValueError,
    aiohttp.ClientError,
)


class ChainClock:
    """Chain time from a cached head timestamp plus a monotonic offset.

    Args:
        head: reads the latest block's timestamp (``None``: no chain, wall-clock time).
        refresh_s: seconds between two reads of the head.

    Example::

        clock = ChainClock(chain.now, refresh_s=1.0)
        await clock.start()            # one read; the node fails to start if the chain is down
        task = asyncio.create_task(clock.run())
        clock.now()                    # no I/O
    """

    def __init__(self, head: Callable[[], Awaitable[int]] | None, *, refresh_s: float = 1.0) -> None:
        self._head = head
        self.refresh_s = refresh_s
        self._timestamp: int | None = None
        self._seen_at = 0.0
        #: reads of the head so far (start-up and refreshes)
        self.reads = 0
        #: ``monotonic()`` of the last successful read of the head (``None``: none yet)
        self.read_at: float | None = None
        #: the last failed read's error (``None`` once a read succeeds again)
        self.error: str | None = None

    @property
    def head_timestamp(self) -> int | None:
        """The timestamp of the last head read (``None``: none yet, or no chain)."""
        return self._timestamp

    def read_age_s(self) -> float | None:
        """Seconds since the head was last read successfully (``None``: no chain, or never read)."""
        if self._head is None or self.read_at is None:
            return None
        return monotonic() - self.read_at

    def now(self) -> int:
        """The estimated chain time in seconds (no I/O)."""
        if self._head is None or self._timestamp is None:
            return int(time.time())
        return self._timestamp + int(monotonic() - self._seen_at)

    async def refresh(self) -> None:
        """Read the head once; a new timestamp becomes the anchor."""
        if self._head is None:
            return
        try:
            timestamp = await self._head()
        except _READ_ERRORS as exc:
            self.error = repr(exc)
            raise
        self.reads += 1
        self.read_at, self.error = monotonic(), None
        if timestamp != self._timestamp:
            self._timestamp = timestamp
            self._seen_at = monotonic()

    async def start(self) -> None:
        """The first read (raises what the chain raises)."""
        await self.refresh()

    async def run(self) -> None:
        """Refresh every ``refresh_s`` seconds until cancelled."""
        if self._head is None:
            return
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                await self.refresh()
            except _READ_ERRORS as exc:  # keep estimating from the last head; say so
                log(logger, "clock.refresh_failed", level=logging.WARNING, error=repr(exc))
