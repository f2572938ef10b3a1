"""Start and stop a local Anvil chain.

Tests and the devnet start their own chain with :class:`Anvil`; it picks a free port, waits
until the JSON-RPC answers, and always stops the process (context manager, ``atexit``)::

    with Anvil() as chain:
        w3 = Web3(Web3.HTTPProvider(chain.rpc_url))

Set ``ANVIL_RPC_URL`` to use an external chain instead: :func:`local_chain` then yields an
:class:`ExternalChain` pointing at it and starts nothing.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tender.errors import DevChainError
from tender.paths import node_bin

#: Anvil's well-known development mnemonic; its first accounts are funded with 10,000 ETH.
DEV_MNEMONIC = "test test test test test test test test test test test junk"

#: Private keys of Anvil's first ten development accounts (public knowledge: devnet only).
DEV_KEYS: tuple[str, ...] = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
    "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
    "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
    "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
)


def dev_key(index: int) -> str:
    """The private key of Anvil's development account ``index`` (``m/44'/60'/0'/0/<index>`` of
    :data:`DEV_MNEMONIC`; public knowledge: devnet only). Anvil funds as many as its ``--accounts``."""
    if index < len(DEV_KEYS):
        return DEV_KEYS[index]
    from eth_account import Account

    Account.enable_unaudited_hdwallet_features()
    account = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
    return "0x" + bytes(account.key).hex()


#: Chain ids treated as local development chains (dev SRS allowed, fast defaults).
LOCAL_CHAIN_IDS = frozenset({31337, 1337})


def free_port() -> int:
    """A TCP port on the loopback interface that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def rpc_call(url: str, method: str, params: list[Any] | None = None, *, timeout: float = 2.0) -> Any:
    """One JSON-RPC call with the standard library (no web3 needed to probe a node)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        reply = json.loads(response.read())
    if "error" in reply:
        raise DevChainError(f"{method} failed: {reply['error']}")
    return reply["result"]


@dataclass
class ExternalChain:
    """A chain somebody else runs (``ANVIL_RPC_URL``); nothing is started or stopped."""

    rpc_url: str

    @property
    def chain_id(self) -> int:
        return int(rpc_call(self.rpc_url, "eth_chainId"), 16)

    def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        return rpc_call(self.rpc_url, method, params)


@dataclass
class Anvil:
    """A local Anvil process.

    Args:
        port: TCP port; a free one is picked when ``None``.
        chain_id: the chain id Anvil reports.
        block_time: seconds between blocks; ``None`` mines one block per transaction.
        accounts: how many funded development accounts to create.
        extra_args: more command-line arguments for anvil.
        startup_timeout: seconds to wait for the RPC to answer.
        log_path: where Anvil's output goes (``None``: discarded).
    """

    port: int | None = None
    chain_id: int = 31337
    block_time: float | None = None
    accounts: int = 10
    extra_args: list[str] = field(default_factory=list)
    startup_timeout: float = 30.0
    log_path: Path | None = None
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def rpc_url(self) -> str:
        if self.port is None:
            raise DevChainError("Anvil has not been started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> Anvil:
        """Start Anvil and wait until ``eth_chainId`` answers."""
        if self.running:
            return self
        binary = node_bin("anvil")
        if not binary.exists():
            found = shutil.which("anvil")
            if not found:
                raise DevChainError("anvil not found: run `make setup` (it installs Foundry from npm)")
            binary = Path(found)
        if self.port is None:
            self.port = free_port()
        elif not _port_free(self.port):
            raise DevChainError(f"port {self.port} is already in use (another chain?): choose another port")
        args = [
            str(binary),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--chain-id",
            str(self.chain_id),
            "--accounts",
            str(self.accounts),
            "--mnemonic",
            DEV_MNEMONIC,
            "--hardfork",
            "cancun",
            "--silent",
        ]
        if self.block_time is not None:
            args += ["--block-time", str(self.block_time)]
        args += self.extra_args
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self._process = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        finally:
            if self.log_path and out is not subprocess.DEVNULL:
                out.close()  # type: ignore[union-attr]
        atexit.register(self.stop)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise DevChainError(f"anvil exited with code {self._process.returncode} on port {self.port}")
            try:
                if int(rpc_call(self.rpc_url, "eth_chainId", timeout=1.0), 16) == self.chain_id:
                    return
            except (OSError, urllib.error.URLError, ValueError, DevChainError) as exc:
                last_error = exc
            time.sleep(0.05)
        self.stop()
        raise DevChainError(
            f"anvil did not answer on {self.rpc_url} within {self.startup_timeout}s: {last_error}"
        )

    def stop(self) -> None:
        """Stop Anvil (SIGTERM, then SIGKILL) and reap the process; safe to call twice."""
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
        with contextlib.suppress(ValueError):
            atexit.unregister(self.stop)

    def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        """Call a JSON-RPC method on this node (``evm_mine``, ``anvil_reorg``...)."""
        return rpc_call(self.rpc_url, method, params)

    def __enter__(self) -> Anvil:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def local_chain(**anvil_options: Any) -> Iterator[Anvil | ExternalChain]:
    """Yield a chain to work on: ``ANVIL_RPC_URL`` if set, else a fresh Anvil stopped on exit."""
    external = os.environ.get("ANVIL_RPC_URL")
    if external:
        yield ExternalChain(external)
        return
    with Anvil(**anvil_options) as chain:
        yield chain
