"""One log poller per client, shared by every job the client follows.

Requests register a :class:`~tender.client._tracker.JobTracker`; the hub reads the markets'
(and the staking contract's) logs once per poll for all of them and feeds each event to the
tracker of the job it names. Many concurrent requests thus cost one ``eth_getLogs`` a poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from hexbytes import HexBytes
from web3 import Web3

from tender.client._tracker import JobTracker, event_step
from tender.logs import log

__all__ = ["EventHub", "job_of"]

logger = logging.getLogger("tender.client")

#: ``listener(tracker, event_name, args)`` is called after each event is fed.
Listener = Callable[[JobTracker, str, dict[str, Any]], None]


def _hex(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    return str(value).lower()


def job_of(args: dict[str, Any]) -> str | None:
    """The job id an event names, as lower-case ``0x``-hex (``None`` if it names none)."""
    for key in ("job_id", "jobid", "job", "id", "intent_hash"):
        if key in args and args[key] is not None:
            return _hex(args[key]).lower()
    return None


class EventHub:
    """Polls logs of ``addresses`` and routes them to the trackers of the jobs they name.

    Args:
        w3: a connected Web3. addresses: contracts whose events matter (markets, staking).
        decode: turns a raw log into ``(name, args)`` or ``None``.
        poll_interval: seconds between polls. from_block: first block to read.
    """

    def __init__(
        self,
        w3: Web3,
        addresses: Sequence[str],
        *,
        decode: Callable[[Any], tuple[str, dict[str, Any]] | None],
        poll_interval: float = 0.2,
        from_block: int | None = None,
    ) -> None:
        self.w3 = w3
        self.addresses = [Web3.to_checksum_address(a) for a in addresses]
        self.decode = decode
        self.poll_interval = poll_interval
        self._next_block = from_block
        self._trackers: dict[str, JobTracker] = {}
        self._waiters: dict[str, asyncio.Event] = {}
        self._orphans: dict[str, list[tuple[str, dict[str, Any], str | None, int]]] = {}
        self._task: asyncio.Task[None] | None = None
        self.listeners: list[Listener] = []
        self.error: BaseException | None = None

    def follow(self, tracker: JobTracker) -> asyncio.Event:
        """Start routing ``tracker.job_id``'s events to it; the event is set on every change."""
        key = tracker.job_id.lower()
        self._trackers[key] = tracker
        changed = self._waiters[key] = asyncio.Event()
        for name, args, tx_hash, block in self._orphans.pop(key, []):  # events seen before we knew
            tracker.feed(name, args, tx_hash=tx_hash, block=block)
            changed.set()
        self._ensure_running()
        return changed

    def forget(self, job_id: str) -> None:
        self._trackers.pop(job_id.lower(), None)
        self._waiters.pop(job_id.lower(), None)

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="tender-client-hub")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        failures = 0
        while self._trackers:
            try:
                await self.poll_once()
                failures = 0
            except Exception as exc:  # a flaky RPC must not kill every request: retry, then report
                failures += 1
                log(logger, "client.poll_failed", level=logging.WARNING, error=repr(exc), failures=failures)
                if failures >= 20:
                    self.error = exc
                    for waiter in self._waiters.values():
                        waiter.set()
                    return
            await asyncio.sleep(self.poll_interval)

    def fetch(self) -> list[tuple[str, str, dict[str, Any], str, int]]:
        """Read the logs since the last poll: ``(job, name, args, tx_hash, block)`` (blocking)."""
        head = self.w3.eth.block_number
        start = head if self._next_block is None else self._next_block
        if start > head:
            return []
        logs = self.w3.eth.get_logs({"address": self.addresses, "fromBlock": start, "toBlock": head})  # type: ignore[typeddict-item]
        out: list[tuple[str, str, dict[str, Any], str, int]] = []
        for raw in logs:
            decoded = self.decode(raw)
            if decoded is None or event_step(decoded[0]) is None:
                continue
            name, args = decoded
            job = job_of(args)
            if job is not None:
                out.append(
                    (job, name, args, HexBytes(raw["transactionHash"]).to_0x_hex(), int(raw["blockNumber"]))
                )
        self._next_block = head + 1
        return out

    def route(self, events: list[tuple[str, str, dict[str, Any], str, int]]) -> int:
        """Feed fetched events to their trackers (on the event loop); how many were routed."""
        routed = 0
        for job, name, args, tx_hash, block in events:
            tracker = self._trackers.get(job)
            if tracker is None:
                orphans = self._orphans.setdefault(job, [])
                if len(orphans) < 64:
                    orphans.append((name, args, tx_hash, block))
                continue
            tracker.feed(name, args, tx_hash=tx_hash, block=block)
            routed += 1
            for listener in self.listeners:
                listener(tracker, name, args)
            waiter = self._waiters.get(job)
            if waiter is not None:
                waiter.set()
        if len(self._orphans) > 4096:  # other requesters' jobs: keep memory bounded
            self._orphans.clear()
        return routed

    async def poll_once(self) -> int:
        """One poll: fetch in a worker thread, route here."""
        return self.route(await asyncio.to_thread(self.fetch))

    def terminal(self, job_id: str) -> bool:
        tracker = self._trackers.get(job_id.lower())
        return tracker is not None and tracker.state.terminal
