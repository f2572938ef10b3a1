"""The RPC outage proxy (tests/_proxy.py) in front of a real Anvil."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import urllib.request
from collections.abc import Iterator

import pytest

from tender.anvil import Anvil
from tests._proxy import OutageProxy


@pytest.fixture(scope="module")
def anvil() -> Iterator[Anvil]:
    with Anvil() as chain:
        yield chain


def _chain_id(url: str) -> int:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        return int(json.loads(reply.read())["result"], 16)


def _keepalive_request() -> bytes:
    body = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}'
    return (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: keep-alive\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


def test_the_proxy_forwards_json_rpc(anvil: Anvil) -> None:
    with OutageProxy(anvil.rpc_url) as proxy:
        assert _chain_id(proxy.url) == 31337
        assert proxy.connections == 1


def test_an_outage_refuses_new_connections_drops_open_ones_and_recovers(anvil: Anvil) -> None:
    with OutageProxy(anvil.rpc_url) as proxy:
        held = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        held.sendall(_keepalive_request())
        assert b"200 OK" in held.recv(4_096)
        proxy.go_down()
        assert proxy.down
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        # the open connection was reset: reading gives a reset or end of stream, never a reply
        with contextlib.suppress(ConnectionResetError):
            assert held.recv(4_096) == b""
        held.close()
        assert proxy.reset >= 1
        proxy.come_back()
        assert not proxy.down
        assert _chain_id(proxy.url) == 31337


def test_a_timed_outage_ends_by_itself(anvil: Anvil) -> None:
    with OutageProxy(anvil.rpc_url) as proxy:
        proxy.outage(0.5)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        proxy.wait_up(timeout=60)
        assert _chain_id(proxy.url) == 31337
        assert proxy.outages == 1


def test_lost_replies_reach_the_node_but_not_the_client(anvil: Anvil) -> None:
    with OutageProxy(anvil.rpc_url) as proxy:
        before = int(anvil.rpc("eth_blockNumber"), 16)
        proxy.lose_replies(1, containing=b"evm_mine")
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "evm_mine", "params": []}).encode()
        request = urllib.request.Request(proxy.url, data=body, headers={"Content-Type": "application/json"})
        with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected)):
            urllib.request.urlopen(request, timeout=10)
        assert int(anvil.rpc("eth_blockNumber"), 16) == before + 1  # the request did reach the node
        assert _chain_id(proxy.url) == 31337  # and the next one is answered
