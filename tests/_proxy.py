"""An RPC outage proxy: a TCP proxy in front of a JSON-RPC node that can go away and come back.

Tests and ``benchmarks/faults.py`` point roles at :attr:`OutageProxy.url` instead of the node's
URL; :meth:`OutageProxy.outage` then makes the node unreachable for N seconds the way a real
outage does: the listening socket closes (new connections are refused: ``ECONNREFUSED``) and
open connections are reset, and after N seconds it listens again on the same port::

    with OutageProxy(anvil.rpc_url) as proxy:
        w3 = Web3(Web3.HTTPProvider(proxy.url))
        proxy.outage(20)  # returns at once; the node is back 20 s later

:meth:`OutageProxy.lose_replies` makes the next requests reach the node but their connection
reset before the reply comes back: the broadcast a client thinks failed went through.

The proxy runs its own event loop in a daemon thread, so synchronous code can drive it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from types import TracebackType
from urllib.parse import urlsplit

from tender.anvil import free_port

__all__ = ["OutageProxy"]


class OutageProxy:
    """A TCP proxy on 127.0.0.1 in front of ``upstream`` (``http://host:port``).

    Attributes:
        connections: connections accepted so far.
        reset: connections reset by an outage or by :meth:`lose_replies`.
        outages: how many outages began.
    """

    def __init__(self, upstream: str, *, port: int | None = None) -> None:
        parts = urlsplit(upstream)
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"upstream must be http://host:port, not {upstream!r}")
        self.upstream_host, self.upstream_port = parts.hostname, parts.port
        self.port = port or free_port()
        self.connections = 0
        self.reset = 0
        self.outages = 0
        self._lose = 0
        self._containing: bytes | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="outage-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self._back_at: float | None = None  # time.monotonic() when the current outage ends
        self._timer: asyncio.TimerHandle | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def down(self) -> bool:
        """Whether an outage is under way."""
        return self._server is None

    def _call(self, coro_fn: object) -> None:
        future = asyncio.run_coroutine_threadsafe(coro_fn, self._loop)  # type: ignore[arg-type]
        future.result(timeout=30)

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> OutageProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> OutageProxy:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- faults -------------------------------------------------------------------------

    def outage(self, seconds: float) -> None:
        """Refuse new connections and reset open ones now; listen again after ``seconds``."""
        self._call(self._outage(seconds))

    def go_down(self) -> None:
        """Start an outage that lasts until :meth:`come_back`."""
        self._call(self._outage(None))

    def come_back(self) -> None:
        """End the outage now."""
        self._call(self._recover())

    def wait_up(self, timeout: float = 120.0) -> None:
        """Block until the current outage is over."""
        end = time.monotonic() + timeout
        while self.down:
            if time.monotonic() > end:
                raise TimeoutError("the proxy is still down")
            time.sleep(0.05)

    def lose_replies(self, count: int, *, containing: bytes | None = None) -> None:
        """The next ``count`` requests (holding ``containing``, when given) reach the node, but
        their connection is reset before the reply comes back."""
        self._containing = containing
        self._lose = count

    # -- the event loop's side ----------------------------------------------------------

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

    async def _close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._server is not None:
            self._server.close()
            self._server = None
        self._reset_all()

    def _reset_all(self) -> None:
        for writer in list(self._open):
            transport = writer.transport
            if not transport.is_closing():
                transport.abort()
                self.reset += 1
        self._open.clear()

    async def _outage(self, seconds: float | None) -> None:
        self.outages += 1
        await self._close()
        if seconds is not None:
            self._timer = self._loop.call_later(seconds, lambda: self._loop.create_task(self._recover()))

    async def _recover(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._server is None:
            await self._listen()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(self.upstream_host, self.upstream_port)
        except OSError:
            writer.transport.abort()
            return
        self._open.update((writer, up_writer))
        lose = asyncio.Event()  # set: the request just forwarded gets no reply
        try:
            await asyncio.gather(
                self._pipe(reader, up_writer, mark=lose), self._pipe(up_reader, writer, lose=lose)
            )
        finally:
            for w in (writer, up_writer):
                self._open.discard(w)
                if not w.transport.is_closing():
                    w.transport.abort()

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        mark: asyncio.Event | None = None,
        lose: asyncio.Event | None = None,
    ) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65_536):
                if (
                    mark is not None
                    and self._lose > 0
                    and (self._containing is None or self._containing in data)
                ):
                    self._lose -= 1
                    mark.set()
                if lose is not None and lose.is_set():  # the node answered; the client never hears it
                    self.reset += 1
                    writer.transport.abort()
                    return
                writer.write(data)
                await writer.drain()
        if not writer.transport.is_closing():
            with contextlib.suppress(OSError):
                writer.write_eof()
