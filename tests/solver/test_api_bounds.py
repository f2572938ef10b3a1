"""``POST /intents`` and the other routes against bad input and against the solver's own OpenAPI
document (schemathesis), on a real loopback server.

The API runs on its own event loop in a thread so that schemathesis's synchronous client and
the tests can talk to it over real HTTP.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis

from solver._api import IntentApi
from solver._metrics import HTTP_5XX
from tender.bounds import HttpLimits
from tender.intents import Intent
from tender.wire import ErrorBody
from tests.openapi_fuzz import FUZZ_SETTINGS, fuzz_config

from .test_api import MARKET, _wire

LIMITS = HttpLimits(max_body_bytes=64 * 1024)


class Serving:
    """An :class:`IntentApi` on a loop of its own; records what it accepted."""

    def __init__(self, accept: Any = None) -> None:
        self.accepted: list[str] = []
        self._accept = accept
        self.api = IntentApi(
            chain_id=31337, markets=[MARKET], accept=self.accept, status=lambda: {"ok": True}, limits=LIMITS
        )
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="solver-api", daemon=True)

    async def accept(self, intent: Intent, signature: bytes, market: str, job: str) -> bool:
        if self._accept is not None:
            return bool(await self._accept(intent, signature, market, job))
        self.accepted.append(job)
        return True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api.port}"

    def __enter__(self) -> Serving:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.api.start("127.0.0.1:0"), self.loop).result(30)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.api.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()


@pytest.fixture(scope="module")
def served() -> Iterator[Serving]:
    with Serving() as running:
        yield running


@pytest.fixture
def http(served: Serving) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=30) as client:
        yield client


def _refused(reply: httpx.Response, status: int, code: str, field: str | None = "body") -> None:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    error = ErrorBody.model_validate(reply.json())
    assert (error.error, error.field) == (code, field)


JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"[" * 20_000 + b"]" * 20_000, "json_too_deep"),
        (
            json.dumps(
                {"intent": {"nonce": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}
            ).encode(),
            "json_too_deep",
        ),
        (b'{"chainId": 1' + b"0" * 400 + b"}", "number_too_long"),
    ],
    ids=["20000-deep", "34-deep", "10**400"],
)
def test_deep_json_and_huge_numbers_are_400(
    http: httpx.Client, served: Serving, body: bytes, code: str
) -> None:
    _refused(http.post("/intents", content=body, headers=JSON), 400, code)
    assert served.accepted == []


def test_chunked_body_over_the_limit_is_413(http: httpx.Client, served: Serving) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(50 * 16):  # 50 MiB, if anyone read it all
            yield b" " * 65_536

    _refused(http.post("/intents", content=chunks(), headers=JSON), 413, "payload_too_large")
    _refused(
        http.post("/intents", content=b"{" + b" " * LIMITS.max_body_bytes + b"}", headers=JSON),
        413,
        "payload_too_large",
    )
    assert served.accepted == []


def test_body_that_is_not_json_is_415(http: httpx.Client, served: Serving) -> None:
    body = json.dumps(_wire())
    for headers in ({"content-type": "text/plain"}, {}):
        _refused(
            http.post("/intents", content=body, headers=headers),
            415,
            "unsupported_media_type",
            "content-type",
        )
    assert served.accepted == []


def test_wrong_method_is_405_with_allow_and_unknown_path_404(http: httpx.Client) -> None:
    reply = http.put("/intents")
    _refused(reply, 405, "method_not_allowed", None)
    assert reply.headers["allow"] == "POST"
    _refused(http.get("/nope"), 404, "not_found", None)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"nonce": "0123"}, None),  # leading zeros: a valid decimal, signed for 7 -> wrong job id
        ({"expiry": False}, "intent.expiry"),
        ({"auctionType": True}, "intent.auctionType"),
        ({"expiry": 2**53}, "intent.expiry"),
        ({"inputLocation": "0xabc"}, "intent.inputLocation"),
    ],
)
def test_schema_types_are_enforced_without_500(
    http: httpx.Client, served: Serving, changes: dict[str, Any], field: str | None
) -> None:
    body = _wire()
    body["intent"].update(changes)
    reply = http.post("/intents", json=body)
    assert reply.status_code == 422, reply.text
    if field is not None:
        assert ErrorBody.model_validate(reply.json()).field == field
    assert served.accepted == []


def test_unhandled_error_is_a_json_500_without_traceback_and_counted() -> None:
    async def broken(*_: Any) -> bool:
        raise ZeroDivisionError("secret detail")

    before = HTTP_5XX._value.get()
    with Serving(accept=broken) as running, httpx.Client(base_url=running.url) as client:
        reply = client.post("/intents", json=_wire())
        assert reply.status_code == 500
        assert reply.json() == {
            "error": "internal",
            "message": "internal error: ZeroDivisionError",
            "field": None,
        }
        metrics = client.get("/metrics").text
    assert HTTP_5XX._value.get() == before + 1
    assert f"tender_http_5xx_total {before + 1}" in metrics


# -- the OpenAPI document, checked by schemathesis ------------------------------------------

#: No generated intent carries a valid signature: every schema-valid ``POST /intents`` is
#: answered 422 (wrong job id, bad signature, another chain or market); the check that matters
#: there is that schema-violating bodies are refused with a documented 4xx and nothing is a 5xx.
CONFIG = fuzz_config(refused=[400, 404, 405, 413, 415, 422], path="/intents", accepted=["2xx", 422])


@pytest.fixture(scope="module")
def solver_schema(served: Serving) -> Any:
    return schemathesis.openapi.from_url(f"{served.url}/openapi.json", config=CONFIG)


schema = schemathesis.pytest.from_fixture("solver_schema")


@schema.parametrize()
@FUZZ_SETTINGS
def test_solver_api_conforms_to_its_openapi(case: Any) -> None:
    case.call_and_validate()
