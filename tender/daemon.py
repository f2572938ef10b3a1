"""One lifecycle for every Tender daemon (provider, solver, verifier agent).

A daemon subclasses :class:`Daemon` and implements ``setup`` (open stores, connect, check
config), ``run`` (returns the coroutines that make up the service; each runs as its own task)
and ``stop`` (release resources). :func:`serve` runs it: SIGTERM/SIGINT stop it cleanly, the
first task that fails stops all the others, and the exit code says how it ended::

    class Agent(Daemon):
        name = "verifier"
        async def setup(self) -> None: ...
        def tasks(self) -> list[Coroutine[Any, Any, None]]: return [self.follow_chain()]
        async def stop(self) -> None: ...

    sys.exit(serve(Agent(config)))
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from abc import ABC, abstractmethod
from collections.abc import Coroutine
from typing import Any

from tender.logs import log

logger = logging.getLogger("tender.daemon")

EXIT_OK = 0
EXIT_FAILED = 1


class Daemon(ABC):
    """Base class of every long-running Tender process."""

    name: str = "daemon"

    def __init__(self) -> None:
        self.stopping = asyncio.Event()

    @abstractmethod
    async def setup(self) -> None:
        """Prepare everything ``tasks`` needs; raise to refuse to start."""

    @abstractmethod
    def tasks(self) -> list[Coroutine[Any, Any, None]]:
        """The coroutines that make up the running service."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Release resources; called once, whatever way the daemon ends."""

    def request_stop(self) -> None:
        """Ask the daemon to stop (signal handlers and tests call this)."""
        self.stopping.set()


class _SetupFailed(Exception):
    """Carries the exception ``setup`` raised through the supervisor's clean-up."""


async def supervise(daemon: Daemon, *, raise_setup_errors: bool = False) -> int:
    """Run ``daemon`` until it is asked to stop or one of its tasks fails.

    With ``raise_setup_errors`` a daemon that refuses to start (``setup`` raised: a busy port,
    an unreachable chain, a bad config) is stopped and the error raised as it is, unlogged, so
    that the ``tender`` command shows it as its one error line (exit code 2); otherwise every
    failure is logged and gives :data:`EXIT_FAILED`.
    """
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, daemon.request_stop)
    code = EXIT_OK
    refused: Exception | None = None
    try:
        try:
            await daemon.setup()
        except Exception as refusal:
            if not raise_setup_errors:
                raise
            refused = refusal
            raise _SetupFailed from refusal
        log(logger, "daemon.started", daemon=daemon.name)
        tasks = [asyncio.create_task(c) for c in daemon.tasks()]
        stopper = asyncio.create_task(daemon.stopping.wait())
        done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not stopper and not task.cancelled() and task.exception() is not None:
                exc = task.exception()
                log(logger, "daemon.task_failed", level=logging.ERROR, daemon=daemon.name, error=repr(exc))
                code = EXIT_FAILED
        for task in [*tasks, stopper]:
            task.cancel()
        await asyncio.gather(*tasks, stopper, return_exceptions=True)
    except _SetupFailed:
        code = EXIT_FAILED
    except Exception as exc:  # the supervisor's job: report any failure as a non-zero exit
        log(logger, "daemon.failed", level=logging.ERROR, daemon=daemon.name, error=repr(exc))
        logger.debug("daemon failure", exc_info=True)
        code = EXIT_FAILED
    finally:
        try:
            await daemon.stop()
        except Exception as exc:  # stop must not hide the original outcome
            log(logger, "daemon.stop_failed", level=logging.ERROR, daemon=daemon.name, error=repr(exc))
            code = EXIT_FAILED
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    if refused is not None:
        raise refused
    log(logger, "daemon.stopped", daemon=daemon.name, exit_code=code)
    return code


def serve(daemon: Daemon) -> int:
    """Run ``daemon`` in a fresh event loop and return its exit code; a daemon that refuses to
    start raises what its ``setup`` raised (the ``tender`` command's one error line)."""
    return asyncio.run(supervise(daemon, raise_setup_errors=True))


async def stop_task(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` (if any) and wait until it has stopped."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
