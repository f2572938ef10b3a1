"""An asyncio JSON-RPC connection that cannot deadlock on cancellation.

web3 7's ``AsyncHTTPProvider`` takes a *process-wide* ``threading.Lock`` through a thread pool on
every request to find its cached aiohttp session, and releases it in a ``finally`` whether or
not it got it. A request cancelled while its pool thread waits for the lock (a daemon shutting
down, a ``wait_for`` timing out) releases someone else's lock, then its thread takes the lock
and nobody ever frees it: every later async request in the process hangs. Asyncio is
single-threaded, so no lock is needed at all: :func:`async_connect` keeps one keep-alive
aiohttp session per event loop on the provider itself.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from aiohttp import ClientSession, ClientTimeout
from eth_typing import URI
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3._utils.http_session_manager import HTTPSessionManager

__all__ = ["LoopSessions", "async_connect"]


class LoopSessions(HTTPSessionManager):
    """web3's session manager, minus the global lock: one aiohttp session per running loop."""

    def __init__(self) -> None:
        super().__init__(session_pool_max_workers=1)
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ClientSession] = (
            weakref.WeakKeyDictionary()
        )

    async def async_cache_and_return_session(
        self,
        endpoint_uri: URI,
        session: ClientSession | None = None,
        request_timeout: ClientTimeout | None = None,
    ) -> ClientSession:
        loop = asyncio.get_running_loop()
        cached = self._by_loop.get(loop)
        if session is not None and session is not cached:
            if cached is not None and not cached.closed:
                await cached.close()
            cached = None
        if cached is None or cached.closed:
            cached = session or ClientSession(raise_for_status=True)
            self._by_loop[loop] = cached
        return cached

    async def close(self) -> None:
        """Close the session of the running loop (others belong to loops that are gone)."""
        session = self._by_loop.pop(asyncio.get_running_loop(), None)
        if session is not None and not session.closed:
            await session.close()


class _Provider(AsyncHTTPProvider):
    def __init__(self, endpoint_uri: str, **kwargs: Any) -> None:
        super().__init__(endpoint_uri, **kwargs)
        self._request_session_manager = LoopSessions()

    async def disconnect(self) -> None:
        manager = self._request_session_manager
        assert isinstance(manager, LoopSessions)
        await manager.close()


def async_connect(rpc_url: str, *, timeout: float = 10.0) -> AsyncWeb3[Any]:
    """An ``AsyncWeb3`` on ``rpc_url`` whose requests time out after ``timeout`` seconds.

    Close it with ``await w3.provider.disconnect()`` when done (a daemon's teardown).
    """
    return AsyncWeb3(_Provider(rpc_url, request_kwargs={"timeout": ClientTimeout(total=timeout)}))
