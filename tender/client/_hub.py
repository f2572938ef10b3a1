"""One event subscription per client, shared by every job the client follows.

Requests register a :class:`~tender.client._tracker.JobTracker`; the hub steps one
:class:`tender.chain.EventFeed` over the markets (in a worker thread: the feed is synchronous)
and feeds each typed event to the tracker of the job it names. Many concurrent requests thus
cost one ``eth_getLogs`` a poll. A reorg makes every tracker forget the dropped blocks' events
(logged as ``request.reorged``); each tracker learns the head the feed read, so a request can
wait for confirmations. A failing RPC is retried with a bounded backoff, never given up on: each
request ends at its own timeout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from web3 import Web3

from tender.chain import Event, EventFeed, LogDecoder
from tender.client._tracker import FOLLOWED, JobTracker
from tender.daemon import stop_task
from tender.errors import FeedError
from tender.logs import log

__all__ = ["EventHub", "job_of"]

logger = logging.getLogger("tender.client")

#: ``listener(tracker, event)`` is called after each event is fed.
Listener = Callable[[JobTracker, Event], None]

#: Steps of the feed in one poll before routing what was read (a client far behind catches up
#: over several polls, never holding every event in memory at once).
_STEPS_PER_POLL = 16

#: The longest pause between polls while the RPC fails (the backoff doubles up to it).
_MAX_BACKOFF_S = 5.0


def job_of(event: Event) -> str | None:
    """The job id an event names, as lower-case ``0x``-hex (``None`` if it names none)."""
    job_id = getattr(event, "job_id", None)
    return "0x" + bytes(job_id).hex() if isinstance(job_id, bytes) else None


class EventHub:
    """Follows the markets at ``addresses`` and routes their events to the trackers of the jobs
    they name.

    Args:
        w3: a connected Web3. addresses: the markets.
        decoder: the ABI to decode with (default: every Tender contract's).
        poll_interval: seconds between polls. from_block: first block to read (default: the head
            when the hub is made).
    """

    def __init__(
        self,
        w3: Web3,
        addresses: Sequence[str],
        *,
        decoder: LogDecoder | None = None,
        poll_interval: float = 0.2,
        from_block: int | None = None,
    ) -> None:
        start = w3.eth.block_number if from_block is None else from_block
        self.feed = EventFeed(
            w3, addresses, names=[kind.__name__ for kind in FOLLOWED], decoder=decoder, start_block=start
        )
        self.poll_interval = poll_interval
        self._trackers: dict[str, JobTracker] = {}
        self._waiters: dict[str, asyncio.Event] = {}
        self._orphans: dict[str, list[Event]] = {}
        #: jobs watched without a tracker (the quote path's settlement): set on each event
        self._watchers: dict[str, asyncio.Event] = {}
        self._task: asyncio.Task[None] | None = None
        self.listeners: list[Listener] = []
        #: the last poll's error (``None`` once a poll succeeds again)
        self.error: BaseException | None = None
        #: polls failed in a row (the pause between polls doubles with each, up to 5 s)
        self.failures = 0
        #: whether :attr:`error` ended the hub (a reorg deeper than the feed remembers)
        self.fatal = False

    def follow(self, tracker: JobTracker) -> asyncio.Event:
        """Start routing ``tracker.job_id``'s events to it; the event is set on every change."""
        key = tracker.job_id.lower()
        self._trackers[key] = tracker
        changed = self._waiters[key] = asyncio.Event()
        for event in self._orphans.pop(key, []):  # events seen before we knew
            tracker.feed(event)
            changed.set()
        self._ensure_running()
        return changed

    def watch(self, job_id: str) -> asyncio.Event:
        """An event set whenever the feed reads an event naming ``job_id`` (no tracker: the
        caller reads what changed itself); :meth:`forget` ends it."""
        key = job_id.lower()
        changed = self._watchers.get(key)
        if changed is None:
            changed = self._watchers[key] = asyncio.Event()
        if self._orphans.pop(key, None):
            changed.set()
        self._ensure_running()
        return changed

    def forget(self, job_id: str) -> None:
        self._trackers.pop(job_id.lower(), None)
        self._waiters.pop(job_id.lower(), None)
        self._watchers.pop(job_id.lower(), None)

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="tender-client-hub")

    async def close(self) -> None:
        await stop_task(self._task)
        self._task = None

    async def _run(self) -> None:
        while self._trackers or self._watchers:
            try:
                await self.poll_once()
                self.failures, self.error = 0, None
            except FeedError as exc:  # a reorg deeper than the feed remembers: nothing to retry
                self.error, self.fatal = exc, True
                for waiter in [*self._waiters.values(), *self._watchers.values()]:
                    waiter.set()
                return
            except Exception as exc:  # an RPC outage must not end any request:
                # retried with a bounded backoff; each request gives up at its own timeout
                self.failures += 1
                self.error = exc
                log(
                    logger,
                    "client.poll_failed",
                    level=logging.WARNING,
                    error=repr(exc),
                    failures=self.failures,
                )
            pause = self.poll_interval * 2 ** min(self.failures, 5)
            await asyncio.sleep(min(pause, max(self.poll_interval, _MAX_BACKOFF_S)))

    def fetch(self) -> tuple[list[Event], list[int]]:
        """Step the feed up to the head (blocking): the events read, and the fork block of each
        reorg met on the way."""
        events: list[Event] = []
        forks: list[int] = []

        def rolled_back(fork: int, _touched: Sequence[object]) -> None:
            events[:] = [e for e in events if e.block_number <= fork]
            forks.append(fork)

        for _ in range(_STEPS_PER_POLL):
            if self.feed.step(events.extend, rolled_back) == 0:
                break
        return events, forks

    def route(self, events: Sequence[Event], forks: Sequence[int] = ()) -> int:
        """Feed fetched events to their trackers (on the event loop); how many were routed.
        ``forks``: reorgs met while reading them; the trackers forget what came after."""
        for fork in forks:
            for key, followed in self._trackers.items():
                if followed.rollback(fork):
                    log(
                        logger,
                        "request.reorged",
                        level=logging.WARNING,
                        job_id=key,
                        fork=fork,
                        state=followed.state.name.lower(),
                    )
                if key in self._waiters:
                    self._waiters[key].set()
            for orphan, kept in list(self._orphans.items()):
                self._orphans[orphan] = [e for e in kept if e.block_number <= fork]
        routed = 0
        for event in events:
            job = job_of(event)
            if job is None:
                continue
            watcher = self._watchers.get(job)
            if watcher is not None:
                watcher.set()
            tracker = self._trackers.get(job)
            if tracker is None:
                if watcher is not None:
                    continue
                orphans = self._orphans.setdefault(job, [])
                if len(orphans) < 64:
                    orphans.append(event)
                continue
            tracker.feed(event)
            routed += 1
            for listener in self.listeners:
                listener(tracker, event)
            waiter = self._waiters.get(job)
            if waiter is not None:
                waiter.set()
        if len(self._orphans) > 4096:  # other requesters' jobs: keep memory bounded
            self._orphans.clear()
        head = self.feed.head
        for key, followed in self._trackers.items():
            if head > followed.head:
                followed.head = head
                if followed.state.final and key in self._waiters:  # one more confirmation
                    self._waiters[key].set()
        return routed

    async def poll_once(self) -> int:
        """One poll: read in a worker thread, route here."""
        events, forks = await asyncio.to_thread(self.fetch)
        return self.route(events, forks)

    def terminal(self, job_id: str) -> bool:
        tracker = self._trackers.get(job_id.lower())
        return tracker is not None and tracker.state.final
