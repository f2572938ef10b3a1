"""The Anvil helper: starts on a free port, answers eth_chainId, leaves no process behind."""

from __future__ import annotations

import os

import pytest

from tender.anvil import DEV_KEYS, Anvil, ExternalChain, free_port, local_chain
from tender.errors import DevChainError


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); check its state
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"


def test_start_answers_chain_id_and_stop_leaves_no_process() -> None:
    anvil = Anvil(chain_id=31337).start()
    pid = anvil.pid
    assert pid is not None
    assert int(anvil.rpc("eth_chainId"), 16) == 31337
    anvil.stop()
    assert not anvil.running
    assert not _alive(pid)


def test_context_manager_stops_even_when_the_body_raises() -> None:
    anvil = Anvil(chain_id=1337)

    def body() -> None:
        with anvil:
            assert int(anvil.rpc("eth_chainId"), 16) == 1337
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        body()
    assert not anvil.running


def test_two_chains_get_different_ports() -> None:
    with Anvil() as a, Anvil() as b:
        assert a.port != b.port
        assert a.rpc("eth_blockNumber") == "0x0"
        b.rpc("evm_mine")
        assert b.rpc("eth_blockNumber") == "0x1"
        assert a.rpc("eth_blockNumber") == "0x0"


def test_dev_keys_are_the_funded_accounts() -> None:
    from eth_account import Account

    with Anvil(accounts=3) as anvil:
        accounts = [a.lower() for a in anvil.rpc("eth_accounts")]
    assert accounts == [Account.from_key(k).address.lower() for k in DEV_KEYS[:3]]


def test_stop_twice_is_harmless() -> None:
    anvil = Anvil().start()
    anvil.stop()
    anvil.stop()


def test_port_in_use_is_a_clear_error() -> None:
    with Anvil() as first, pytest.raises(DevChainError):
        Anvil(port=first.port, startup_timeout=5).start()


def test_local_chain_uses_anvil_rpc_url_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    with Anvil() as anvil:
        monkeypatch.setenv("ANVIL_RPC_URL", anvil.rpc_url)
        with local_chain() as chain:
            assert isinstance(chain, ExternalChain)
            assert chain.chain_id == 31337
        assert anvil.running  # an external chain is never stopped by us


def test_free_port_is_bindable() -> None:
    import socket

    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
