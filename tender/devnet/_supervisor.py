"""Child processes of the devnet: started in their own process groups, always stopped.

Each role runs as ``tender <role> run --config <file>`` in a new session (its own process
group), with its key in the environment and its output in a log file. :class:`Supervisor`
notices a child that dies early, and :meth:`Supervisor.stop_all` stops every group it started
(SIGTERM, then SIGKILL after a grace period), whatever way the devnet ends::

    with Supervisor(logs=run_dir / "logs") as sup:
        sup.start("provider-a", ["provider", "run", "--config", str(toml)], env={"TENDER_PRIVATE_KEY": key})
        sup.wait_http("provider-a", "http://127.0.0.1:7001/health")
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tender.errors import TenderError

__all__ = ["Child", "ChildFailed", "Supervisor", "tender_command"]


class ChildFailed(TenderError):
    """A devnet process exited early or never became ready; the message shows its log tail."""


def tender_command() -> list[str]:
    """How to run the ``tender`` CLI of this interpreter, as an argv prefix."""
    script = Path(sys.executable).with_name("tender")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from tender.cli import main; main()"]


@dataclass
class Child:
    """One supervised process."""

    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = 20) -> str:
        """The last lines of the child's log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class Supervisor:
    """Starts the devnet's processes and stops them all.

    Args:
        logs: folder for one ``<name>.log`` per child.
        grace_s: how long a child gets between SIGTERM and SIGKILL.
    """

    def __init__(self, *, logs: Path, grace_s: float = 5.0) -> None:
        self.logs = logs
        self.grace_s = grace_s
        self.children: dict[str, Child] = {}
        logs.mkdir(parents=True, exist_ok=True)

    def start(
        self,
        name: str,
        args: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        tender: bool = True,
    ) -> Child:
        """Start ``tender <args>`` (or ``args`` itself when ``tender`` is false) in a new group."""
        if name in self.children and self.children[name].alive:
            raise ChildFailed(f"{name} is already running (pid {self.children[name].pid})")
        argv = [*tender_command(), *args] if tender else list(args)
        log_path = self.logs / f"{name}.log"
        child_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        with open(log_path, "ab") as out:
            process = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=child_env,
                cwd=str(cwd) if cwd else None,
                start_new_session=True,  # its own process group: a terminal's Ctrl-C does not reach it
            )
        child = Child(name=name, argv=argv, log_path=log_path, process=process)
        self.children[name] = child
        return child

    def check(self) -> None:
        """Raise :class:`ChildFailed` if a child has exited (the devnet's processes never should)."""
        for child in self.children.values():
            code = child.process.poll()
            if code is not None:
                raise ChildFailed(f"{child.name} exited with code {code}; last log lines:\n{child.tail()}")

    def wait_http(self, name: str, url: str, *, timeout: float = 60.0, ok: bool = False) -> None:
        """Wait until ``url`` answers (any HTTP status; with ``ok``, a 2xx: a provider's
        ``/health`` answers 503 while it warms up) while the child is alive."""

        def answers() -> bool:
            try:
                with urllib.request.urlopen(url, timeout=1.0):
                    return True
            except urllib.error.HTTPError:
                return not ok  # it answered: ready enough, unless a 2xx is asked for
            except (OSError, urllib.error.URLError):
                return False

        self._wait(name, answers, f"did not answer {'2xx ' if ok else ''}on {url}", timeout)

    def wait_log(self, name: str, text: str, *, timeout: float = 60.0) -> None:
        """Wait until the child's log contains ``text`` (for processes without HTTP)."""
        log_path = self.children[name].log_path

        def logged() -> bool:
            with contextlib.suppress(OSError):
                return text in log_path.read_text(errors="replace")
            return False

        self._wait(name, logged, f"did not log {text!r}", timeout)

    def _wait(self, name: str, ready: Callable[[], bool], not_ready: str, timeout: float) -> None:
        """Poll ``ready`` until it holds; :class:`ChildFailed` when the child exits first or
        ``timeout`` seconds pass (``not_ready`` says what it did not do)."""
        child = self.children[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not child.alive:
                raise ChildFailed(
                    f"{name} exited with code {child.process.returncode} before it was ready:\n{child.tail()}"
                )
            if ready():
                return
            time.sleep(0.1)
        raise ChildFailed(f"{name} {not_ready} within {timeout:.0f}s:\n{child.tail()}")

    def stop(self, name: str) -> int | None:
        """Stop one child's process group; its exit code (``None`` if it had to be killed)."""
        child = self.children.get(name)
        if child is None:
            return None
        return _stop_group(child.process, self.grace_s)

    def stop_all(self) -> dict[str, int | None]:
        """Stop every child, newest first: SIGTERM to every group, then SIGKILL the stragglers."""
        children = list(reversed(self.children.values()))
        for child in children:
            if child.alive:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        codes: dict[str, int | None] = {}
        for child in children:
            remaining = max(0.0, deadline - time.monotonic())
            try:
                codes[child.name] = child.process.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                codes[child.name] = None
            # Whatever the leader did, nothing of its group may outlive the devnet.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(timeout=2)
        return codes

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def _stop_group(process: subprocess.Popen[bytes], grace_s: float) -> int | None:
    if process.poll() is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        return process.returncode
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        return process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=2)
        return None
