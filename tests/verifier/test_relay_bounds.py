"""The proof relay's HTTP routes against bad input, on a real loopback server (no chain: the
relay handler must never be reached by a refused body)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tender.anvil import free_port
from tender.wire import ErrorBody
from verifier._relay import HTTP_5XX, make_app, start_site

MAX_PROOF = 1024
JOB = {"jobId": "0x" + "11" * 32, "market": "0x" + "22" * 20, "proof": "0x" + "ab" * 16}
Ask = tuple[str, str, Any, str]  # method, path, body (or a callable making an async stream), content type


async def _exchange(asks: list[Ask], calls: list[bytes], *, fail: bool = False) -> list[httpx.Response]:
    async def relay(job_id: bytes, market: str, proof: bytes) -> tuple[str, str | None]:
        calls.append(job_id)
        if fail:
            raise ZeroDivisionError("secret detail")
        return "mined", "0x" + "cc" * 32

    app = make_app(relay=relay, health=lambda: {"ok": True}, rewards=dict, max_proof_bytes=MAX_PROOF)
    port = free_port()
    runner = await start_site(app, f"127.0.0.1:{port}")
    replies = []
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for method, path, body, content_type in asks:
                content = body() if callable(body) else body
                headers = {"content-type": content_type} if content_type else {}
                replies.append(await client.request(method, path, content=content, headers=headers))
    finally:
        await runner.cleanup()
    return replies


async def _chunks() -> AsyncIterator[bytes]:
    for _ in range(1_000):  # 64 MB if anyone read it all
        yield b" " * 65_536


def _post(content: Any, content_type: str = "application/json") -> Ask:
    return ("POST", "/v1/prove", content, content_type)


@pytest.mark.parametrize(
    ("ask", "status", "code"),
    [
        (_post(b"[" * 3_000 + b"]" * 3_000), 400, "json_too_deep"),
        (_post(b'{"jobId": 1' + b"0" * 400 + b"}"), 400, "number_too_long"),
        (_post(b"{}", "text/plain"), 415, "unsupported_media_type"),
        (_post(_chunks), 413, "payload_too_large"),
        (("PUT", "/v1/prove", b"", ""), 405, "method_not_allowed"),
    ],
    ids=["deep", "10**400", "text/plain", "chunked", "PUT"],
)
def test_relay_refuses_bad_input_before_the_handler(ask: Ask, status: int, code: str) -> None:
    calls: list[bytes] = []
    (reply,) = asyncio.run(_exchange([ask], calls))
    assert reply.status_code == status, reply.text
    assert ErrorBody.model_validate(reply.json()).error == code
    assert calls == []


def test_relay_error_is_a_json_500_counted_in_metrics() -> None:
    before = HTTP_5XX._value.get()
    calls: list[bytes] = []
    failed, metrics = asyncio.run(
        _exchange([_post(json.dumps(JOB).encode()), ("GET", "/metrics", b"", "")], calls, fail=True)
    )
    assert failed.status_code == 500
    assert failed.json() == {
        "error": "internal",
        "message": "internal error: ZeroDivisionError",
        "field": None,
    }
    assert f"tender_http_5xx_total {before + 1}" in metrics.text
    assert len(calls) == 1


async def test_health_answers_503_with_the_reasons_while_the_agent_cannot_work() -> None:
    async def relay(job_id: bytes, market: str, proof: bytes) -> tuple[str, str | None]:
        raise AssertionError("not called")

    state: dict[str, Any] = {"ok": False, "reasons": ["chain unreachable: ConnectionRefusedError()"]}
    app = make_app(relay=relay, health=lambda: dict(state), rewards=dict, max_proof_bytes=MAX_PROOF)
    port = free_port()
    runner = await start_site(app, f"127.0.0.1:{port}")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            down = await client.get("/v1/health")
            state.update(ok=True, reasons=[])
            up = await client.get("/v1/health")
    finally:
        await runner.cleanup()
    assert (down.status_code, down.json()["reasons"]) == (
        503,
        ["chain unreachable: ConnectionRefusedError()"],
    )
    assert (up.status_code, up.json()["ok"]) == (200, True)
