"""The node's HTTP API over real HTTP, with real onnxruntime and real EZKL proofs.

The market is the in-memory ``LedgerChain`` here; ``test_provider_market.py`` runs the same
flow against the contracts on Anvil.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from provider_testing import MARKET, OTHER, LedgerChain, job_record, running, wait_state

from provider import BatchingSection, ModelEntry, ProviderNode, ProviderSection
from tender.anvil import DEV_KEYS, free_port
from tender.errors import ChainError
from tender.models import input_commitment
from tender.wire import ErrorBody, Quote, QuoteRefusal, quote_digest

KEY = DEV_KEYS[3]
ADDRESS = Account.from_key(KEY).address
MLP_ID = "0x" + "a1" * 32
CNN_ID = "0x" + "c2" * 32  # registered on the (fake) chain, not served by this node


def config(tmp_path: Path, mlp_bundle: Any, **changes: Any) -> ProviderSection:
    base: dict[str, Any] = {
        "listen": f"127.0.0.1:{free_port()}",
        "models": [ModelEntry(name="mlp", onnx=mlp_bundle.onnx, bundle=mlp_bundle.path)],
        "store": tmp_path / "jobs.db",
        "max_payload_bytes": 4096,
        "proving_workers": 1,
        "proving_warmup": False,  # most tests here never prove; the pool starts on the first proof
        "poll_interval_s": 0.05,
        "batching": BatchingSection(max_batch=8, max_wait_ms=1),
    }
    base.update(changes)
    return ProviderSection(**base)


@pytest.fixture
def chain(mlp_bundle: Any) -> LedgerChain:
    card = mlp_bundle.card
    return LedgerChain(KEY, model_ids=[(MLP_ID, card.onnx_sha256, card.settings_sha256)])


@pytest.fixture
def node(tmp_path: Path, mlp_bundle: Any, chain: LedgerChain) -> ProviderNode:
    return ProviderNode(config(tmp_path, mlp_bundle), chain=chain, key=KEY)


@pytest.fixture
async def client(node: ProviderNode) -> AsyncIterator[httpx.AsyncClient]:
    async with running(node) as c:
        yield c


def award(chain: LedgerChain, job_id: str, data: Any, mlp_bundle: Any, **kw: Any) -> None:
    commitment = input_commitment(mlp_bundle, data)
    kw.setdefault("provider", ADDRESS)
    kw.setdefault("model_id", MLP_ID)
    chain.ledger.jobs[job_id] = job_record(job_id, commitment=commitment, **kw)


def intent(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "requester": OTHER,
        "modelId": MLP_ID,
        "inputCommitment": "1",
        "maxPrice": str(10**18),
        "auctionType": 0,
        "auctionWindow": 30,
        "deadline": 2_000_000_000,
        "proofMode": 0,
        "priceWeightBps": 5000,
        "nonce": "1",
        "expiry": 2_000_000_000,
    }
    body.update(changes)
    return body


def quote_request(**changes: Any) -> dict[str, Any]:
    return {"jobId": "0x" + "01" * 32, "market": MARKET, "chainId": 31337, "intent": intent(**changes)}


# -- schema, health, metrics --------------------------------------------------------------


async def test_node_warms_its_quote_path_once_per_model_before_it_is_ready(
    node: ProviderNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At start the node computes one input commitment and one witness per model and keeps the
    loaded bundle, before ``/health`` says it is ready: the first quote-market round pays none
    of it."""
    import provider._rfq
    from provider._proving import WitnessWorker

    calls: list[str] = []
    commit, witness = provider._rfq.input_commitment, WitnessWorker.felts

    def counted_commit(info: Any, data: Any) -> int:
        calls.append("commitment")
        return commit(info, data)

    async def counted_witness(self: WitnessWorker, bundle_dir: str, data: Any) -> list[int]:
        calls.append("witness")
        return await witness(self, bundle_dir, data)

    monkeypatch.setattr(provider._rfq, "input_commitment", counted_commit)
    monkeypatch.setattr(WitnessWorker, "felts", counted_witness)
    async with running(node) as client:  # it yields once /health answers 200
        assert sorted(calls) == ["commitment", "witness"]  # one model served: once each
        assert set(node.rfq._bundles) == {"mlp"}
        assert node.warming == set()
        assert (await client.get("/health")).json()["status"] == "ok"


@pytest.mark.parametrize("proving_warmup", [False, True])
async def test_health_says_warming_until_the_warm_up_is_done(
    tmp_path: Path, mlp_bundle: Any, chain: LedgerChain, monkeypatch: pytest.MonkeyPatch, proving_warmup: bool
) -> None:
    """``/health`` is 503, ``status`` "warming", while the quote path (and, with
    ``proving_warmup``, the proving pool's timed proofs) warm up; the node serves meanwhile
    and turns 200 once every part is done."""
    from tender.daemon import supervise

    node = ProviderNode(config(tmp_path, mlp_bundle, proving_warmup=proving_warmup), chain=chain, key=KEY)
    gates = {"quote path": asyncio.Event(), "proving": asyncio.Event()}

    async def gated(name: str) -> None:
        await gates[name].wait()

    monkeypatch.setattr(node.rfq, "warm", lambda: gated("quote path"))
    monkeypatch.setattr(node, "_warm_pool", lambda: gated("proving"))
    parts = ["proving", "quote path"] if proving_warmup else ["quote path"]
    task = asyncio.create_task(supervise(node))
    async with httpx.AsyncClient(base_url=f"http://{node.config.listen}", timeout=10) as http:

        async def health() -> httpx.Response:
            while True:
                assert not task.done(), f"node exited with {task.result()}"
                with contextlib.suppress(httpx.TransportError):
                    return await http.get("/health")
                await asyncio.sleep(0.05)

        warming = await health()
        assert warming.status_code == 503
        assert warming.json()["status"] == "warming"
        assert warming.json()["reasons"] == ["warming up: " + ", ".join(parts)]
        assert (await http.post("/quote", json=quote_request())).status_code == 200  # it serves
        for name in reversed(parts):
            gates[name].set()
            reply = await health()
            while reply.status_code == 503 and name in reply.json()["reasons"][0]:
                await asyncio.sleep(0.05)
                reply = await health()
            if name != parts[0]:  # one part left: still warming
                assert reply.status_code == 503
                assert reply.json()["reasons"] == [f"warming up: {parts[0]}"]
        assert reply.status_code == 200
        assert reply.json()["status"] == "ok"
        assert reply.json()["reasons"] == []
        # the 503s were answers to a readiness probe, not failures: no 5xx counted
        assert "tender_http_5xx_total 0.0" in (await http.get("/metrics")).text
        node.request_stop()
        assert await task == 0


async def test_openapi_schema_names_every_route(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    assert {"/health", "/quote", "/jobs", "/jobs/{job_id}", "/metrics"} <= set(schema["paths"])
    assert "JobInput" in schema["components"]["schemas"]
    assert "ErrorBody" in schema["components"]["schemas"]


async def test_health_is_503_while_a_transaction_is_stuck_and_200_after(
    client: httpx.AsyncClient, chain: LedgerChain
) -> None:
    from tender.chain import InFlight

    chain.stuck_now = [InFlight(nonce=7, tx_hash="0x" + "ab" * 32, versions=2, age_s=75.0)]
    unhealthy = await client.get("/health")
    while unhealthy.status_code == 200:  # the node asks its sender in the background
        await asyncio.sleep(0.05)
        unhealthy = await client.get("/health")
    assert unhealthy.status_code == 503
    body = unhealthy.json()
    assert body["status"] == "unhealthy"
    assert body["reasons"] == ["1 transaction(s) stuck: nonce 7 unmined for 75s"]
    assert body["stuck_txs"][0]["nonce"] == 7
    assert body["provider"] == ADDRESS  # the usual keys stay
    chain.stuck_now = []
    healthy = await client.get("/health")
    while healthy.status_code == 503:
        await asyncio.sleep(0.05)
        healthy = await client.get("/health")
    assert healthy.status_code == 200
    assert healthy.json()["reasons"] == []
    assert healthy.json()["proof_queue"]["length"] == 0


async def test_health_and_metrics(client: httpx.AsyncClient) -> None:
    health = (await client.get("/health")).json()
    assert health["status"] == "ok"
    assert health["provider"] == ADDRESS
    assert health["models"]["mlp"] in ("CPUExecutionProvider", "CUDAExecutionProvider")
    metrics = (await client.get("/metrics")).text
    assert "provider_quotes_total" in metrics
    assert "provider_proving_queue" in metrics


# -- quotes -------------------------------------------------------------------------------


async def test_quote_is_signed_by_the_provider_and_within_max_price(client: httpx.AsyncClient) -> None:
    reply = await client.post("/quote", json=quote_request())
    assert reply.status_code == 200
    quote = Quote.model_validate(reply.json())
    assert quote.provider == ADDRESS
    assert 0 < int(quote.price) <= 10**18
    signer = Account.recover_message(
        encode_defunct(primitive=quote_digest(quote)), signature=bytes.fromhex(quote.signature[2:])
    )
    assert signer == ADDRESS


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"modelId": CNN_ID}, "unknown model"),
        ({"maxPrice": "1"}, "below cost"),
        ({"deadline": 1}, "deadline too tight"),
    ],
)
async def test_quote_refuses_with_reason(
    client: httpx.AsyncClient, changes: dict[str, Any], reason: str
) -> None:
    reply = await client.post("/quote", json=quote_request(**changes))
    assert reply.status_code == 200
    refusal = QuoteRefusal.model_validate(reply.json())
    assert refusal.reason.startswith(reason)


async def test_quote_uses_cached_chain_time_and_reads_no_head(
    tmp_path: Path, mlp_bundle: Any, chain: LedgerChain
) -> None:
    node = ProviderNode(config(tmp_path, mlp_bundle), chain=chain, key=KEY)
    node.clock.refresh_s = 3600  # no background refresh while the test runs
    async with running(node) as client:
        assert chain.head_reads == 1  # once, at start-up
        ask = quote_request(deadline=int(time.time()) + 3600)
        for _ in range(5):
            assert Quote.model_validate((await client.post("/quote", json=ask)).json())
        assert chain.head_reads == 1  # no RPC per quote
        chain.ahead_s = 7200  # the chain moves two hours on: quotes see it only once the head is read
        assert Quote.model_validate((await client.post("/quote", json=ask)).json())
        await node.clock.refresh()
        refusal = QuoteRefusal.model_validate((await client.post("/quote", json=ask)).json())
        assert refusal.reason.startswith("deadline too tight")
        assert chain.head_reads == 2


async def test_quote_answers_503_when_the_node_fails(
    client: httpx.AsyncClient, node: ProviderNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def failing(_: Any) -> Quote:
        raise ChainError("rpc down")

    monkeypatch.setattr(node, "quote", failing)
    reply = await client.post("/quote", json=quote_request())
    assert reply.status_code == 503
    assert ErrorBody.model_validate(reply.json()).error == "unavailable"
    assert "tender_http_5xx_total 1.0" in (await client.get("/metrics")).text


async def test_quote_refuses_without_capacity(
    client: httpx.AsyncClient, node: ProviderNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(node, "_active", lambda: node.config.max_jobs)
    refusal = QuoteRefusal.model_validate((await client.post("/quote", json=quote_request())).json())
    assert refusal.reason.startswith("no capacity")


async def test_quote_refuses_unknown_market(client: httpx.AsyncClient) -> None:
    body = quote_request()
    body["market"] = OTHER
    refusal = QuoteRefusal.model_validate((await client.post("/quote", json=body)).json())
    assert refusal.reason.startswith("unknown market")


# -- bad input: 4xx ErrorBody naming the problem, and no job row ---------------------------

JOB = "0x" + "77" * 32


async def _refused(
    client: httpx.AsyncClient,
    node: ProviderNode,
    status: int,
    code: str,
    field: str | None,
    *,
    json_body: Any = None,
    content: bytes | None = None,
) -> ErrorBody:
    if content is not None:
        reply = await client.post("/jobs", content=content, headers={"content-type": "application/json"})
    else:
        reply = await client.post("/jobs", json=json_body)
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    error = ErrorBody.model_validate(reply.json())
    assert error.error == code, error
    assert error.field == field, error
    assert error.message
    assert node.store is not None
    assert node.store.count() == 0
    return error


async def test_jobs_refuses_wrong_shape(
    client: httpx.AsyncClient,
    node: ProviderNode,
    chain: LedgerChain,
    mlp_bundle: Any,
    mlp_samples: list[list[float]],
) -> None:
    award(chain, JOB, mlp_samples[0], mlp_bundle)
    error = await _refused(
        client,
        node,
        422,
        "wrong_shape",
        "input",
        json_body={"jobId": JOB, "market": MARKET, "input": mlp_samples[0][:60]},
    )
    assert "[60]" in error.message
    assert "[1, 64]" in error.message


async def test_jobs_refuses_wrong_dtype(
    client: httpx.AsyncClient,
    node: ProviderNode,
    chain: LedgerChain,
    mlp_bundle: Any,
    mlp_samples: list[list[float]],
) -> None:
    award(chain, JOB, mlp_samples[0], mlp_bundle)
    bad = [*mlp_samples[0][:7], "0.5", *mlp_samples[0][8:]]
    await _refused(
        client, node, 422, "wrong_dtype", "input[7]", json_body={"jobId": JOB, "market": MARKET, "input": bad}
    )


async def test_jobs_refuses_too_large_payload(client: httpx.AsyncClient, node: ProviderNode) -> None:
    big = {"jobId": JOB, "market": MARKET, "input": [0.123456789] * 2000}
    await _refused(client, node, 413, "payload_too_large", "body", json_body=big)


async def test_jobs_refuses_too_large_payload_without_content_length(
    client: httpx.AsyncClient, node: ProviderNode
) -> None:
    chunks = [b'{"jobId": "' + JOB.encode() + b'", "input": [', *[b"0.123456789," * 100] * 10, b"0]}"]

    async def stream() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    reply = await client.post("/jobs", content=stream(), headers={"content-type": "application/json"})
    assert reply.status_code == 413
    assert ErrorBody.model_validate(reply.json()).error == "payload_too_large"
    assert node.store is not None
    assert node.store.count() == 0


async def test_jobs_refuses_commitment_mismatch(
    client: httpx.AsyncClient,
    node: ProviderNode,
    chain: LedgerChain,
    mlp_bundle: Any,
    mlp_samples: list[list[float]],
) -> None:
    award(chain, JOB, mlp_samples[0], mlp_bundle)
    error = await _refused(
        client,
        node,
        422,
        "commitment_mismatch",
        "input",
        json_body={"jobId": JOB, "market": MARKET, "input": mlp_samples[1]},
    )
    assert "committed" in error.message


async def test_jobs_refuses_unknown_model(
    client: httpx.AsyncClient,
    node: ProviderNode,
    chain: LedgerChain,
    mlp_bundle: Any,
    mlp_samples: list[list[float]],
) -> None:
    award(chain, JOB, mlp_samples[0], mlp_bundle, model_id=CNN_ID)
    error = await _refused(
        client,
        node,
        404,
        "unknown_model",
        "modelId",
        json_body={"jobId": JOB, "market": MARKET, "input": mlp_samples[0]},
    )
    assert CNN_ID in error.message


@pytest.mark.parametrize("garbage", [b"{not json", b"", b"\xff\xfe", b"[1, 2, 3]", b'"input"'])
async def test_jobs_refuses_garbage_json(
    client: httpx.AsyncClient, node: ProviderNode, garbage: bytes
) -> None:
    reply = await client.post("/jobs", content=garbage, headers={"content-type": "application/json"})
    assert reply.status_code == 400
    error = ErrorBody.model_validate(reply.json())
    assert error.error in ("invalid_json", "invalid_body")
    assert error.field == "body"
    assert node.store is not None
    assert node.store.count() == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"market": MARKET, "input": [0.0]}, "jobId"),
        ({"jobId": "0x12", "market": MARKET, "input": [0.0]}, "jobId"),
        ({"jobId": JOB, "market": "nope", "input": [0.0]}, "market"),
        ({"jobId": JOB, "market": MARKET, "input": [0.0], "extra": 1}, "extra"),
    ],
)
async def test_jobs_refuses_malformed_envelope(
    client: httpx.AsyncClient, node: ProviderNode, body: dict[str, Any], field: str
) -> None:
    await _refused(client, node, 400, "invalid_body", field, json_body=body)


async def test_jobs_refuses_never_awarded_job(
    client: httpx.AsyncClient, node: ProviderNode, mlp_samples: list[list[float]]
) -> None:
    error = await _refused(
        client,
        node,
        403,
        "not_awarded",
        "jobId",
        json_body={"jobId": JOB, "market": MARKET, "input": mlp_samples[0]},
    )
    assert "does not exist" in error.message


async def test_jobs_refuses_job_awarded_to_another_provider(
    client: httpx.AsyncClient,
    node: ProviderNode,
    chain: LedgerChain,
    mlp_bundle: Any,
    mlp_samples: list[list[float]],
) -> None:
    award(chain, JOB, mlp_samples[0], mlp_bundle, provider=OTHER)
    await _refused(
        client,
        node,
        403,
        "not_awarded",
        "jobId",
        json_body={"jobId": JOB, "market": MARKET, "input": mlp_samples[0]},
    )


async def test_jobs_refuses_unknown_market(
    client: httpx.AsyncClient, node: ProviderNode, mlp_samples: list[list[float]]
) -> None:
    await _refused(
        client,
        node,
        403,
        "not_awarded",
        "market",
        json_body={"jobId": JOB, "market": OTHER, "input": mlp_samples[0]},
    )


async def test_unknown_job_status_is_404_error_body(client: httpx.AsyncClient) -> None:
    reply = await client.get(f"/jobs/{JOB}")
    assert reply.status_code == 404
    assert ErrorBody.model_validate(reply.json()).error == "job_not_found"


# -- bounded input: every route, before any parser (tender.bounds) --------------------------


def _rss_mib() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.parametrize("path", ["/quote", "/jobs"])
@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"[" * 2_000 + b"]" * 2_000, "json_too_deep"),  # within the test node's 4 KiB
        (b'{"jobId": ' + b"[" * 32 + b"]" * 32 + b"}", "json_too_deep"),  # 33 deep with the object
        (b'{"jobId": "0x01", "chainId": 1' + b"0" * 400 + b"}", "number_too_long"),  # 10**400
    ],
    ids=["2000-deep", "33-deep", "10**400"],
)
async def test_json_too_deep_or_with_huge_numbers_is_400(
    client: httpx.AsyncClient, node: ProviderNode, path: str, body: bytes, code: str
) -> None:
    reply = await client.post(path, content=body, headers={"content-type": "application/json"})
    assert reply.status_code == 400, reply.text
    error = ErrorBody.model_validate(reply.json())
    assert (error.error, error.field) == (code, "body")
    assert node.store is not None
    assert node.store.count() == 0
    assert node.metrics.rejected.labels(code)._value.get() == 1


async def test_brackets_and_digits_inside_strings_do_not_count(client: httpx.AsyncClient) -> None:
    body = quote_request()
    body["intent"]["requester"] = "[" * 100 + "1" * 100  # not an address: 422, but not refused as JSON
    reply = await client.post("/quote", json=body)
    assert reply.status_code == 422
    assert ErrorBody.model_validate(reply.json()).field == "intent.requester"


async def test_chunked_body_is_cut_at_the_limit_while_it_streams(
    client: httpx.AsyncClient, node: ProviderNode
) -> None:
    sent = 0

    async def fifty_mib() -> AsyncIterator[bytes]:
        nonlocal sent
        chunk = b"[" + b"0.5," * 16_383 + b"0],"
        for _ in range(50 * 2**20 // len(chunk)):
            sent += len(chunk)
            yield chunk

    before = _rss_mib()
    for path in ("/quote", "/jobs"):
        reply = await client.post(path, content=fifty_mib(), headers={"content-type": "application/json"})
        assert reply.status_code == 413, reply.text
        assert ErrorBody.model_validate(reply.json()).error == "payload_too_large"
    # the node (in this process) never held the body: it stopped reading at 4 KiB
    assert _rss_mib() - before < 100
    assert node.store is not None
    assert node.store.count() == 0


@pytest.mark.parametrize("path", ["/quote", "/jobs"])
async def test_body_that_is_not_json_is_415(client: httpx.AsyncClient, node: ProviderNode, path: str) -> None:
    body = json.dumps({"jobId": JOB, "market": MARKET, "input": [0.0]})
    reply = await client.post(path, content=body, headers={"content-type": "text/plain"})
    assert reply.status_code == 415
    error = ErrorBody.model_validate(reply.json())
    assert (error.error, error.field) == ("unsupported_media_type", "content-type")
    assert node.store is not None
    assert node.store.count() == 0


async def test_wrong_method_is_405_with_allow(client: httpx.AsyncClient) -> None:
    reply = await client.put("/quote")
    assert reply.status_code == 405
    assert reply.headers["allow"] == "POST"
    assert ErrorBody.model_validate(reply.json()).error == "method_not_allowed"


async def test_quote_refuses_json_types_the_schema_refuses(client: httpx.AsyncClient) -> None:
    for changes in ({"expiry": False}, {"proofMode": True}, {"deadline": "2000000000"}, {"expiry": 2**53}):
        reply = await client.post("/quote", json=quote_request(**changes))
        assert reply.status_code == 422, changes
        (field,) = changes
        assert ErrorBody.model_validate(reply.json()).field == f"intent.{field}"
    # an integral float is an integer to JSON Schema
    assert (await client.post("/quote", json=quote_request(expiry=2.0e9))).status_code == 200


async def test_unhandled_error_is_a_json_500_without_traceback_and_counted(
    client: httpx.AsyncClient, node: ProviderNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(job_id: str) -> None:
        raise ZeroDivisionError("secret detail")

    monkeypatch.setattr(node, "status", broken)
    reply = await client.get(f"/jobs/{JOB}")
    assert reply.status_code == 500
    assert reply.json() == {
        "error": "internal",
        "message": "internal error: ZeroDivisionError",
        "field": None,
    }
    metrics = (await client.get("/metrics")).text
    assert "tender_http_5xx_total 1.0" in metrics


async def test_other_input_for_an_accepted_job_is_409(
    client: httpx.AsyncClient,
    node: ProviderNode,
    chain: LedgerChain,
    mlp_bundle: Any,
    mlp_samples: list[list[float]],
) -> None:
    award(chain, JOB, mlp_samples[6], mlp_bundle)
    first = await client.post("/jobs", json={"jobId": JOB, "market": MARKET, "input": mlp_samples[6]})
    assert first.status_code == 202
    other = await client.post("/jobs", json={"jobId": JOB, "market": MARKET, "input": mlp_samples[7]})
    assert other.status_code == 409
    error = ErrorBody.model_validate(other.json())
    assert (error.error, error.field) == ("input_conflict", "input")
    assert node.store is not None
    record = node.store.get(JOB)
    assert record is not None
    assert record.input == mlp_samples[6]
    same = await client.post("/jobs", json={"jobId": JOB, "market": MARKET, "input": mlp_samples[6]})
    assert same.status_code == 200


# -- the happy path -------------------------------------------------------------------------


async def test_job_is_inferred_proved_delivered_and_settled(
    client: httpx.AsyncClient,
    node: ProviderNode,
    chain: LedgerChain,
    mlp_bundle: Any,
    mlp_samples: list[list[float]],
) -> None:
    award(chain, JOB, mlp_samples[2], mlp_bundle)
    reply = await client.post("/jobs", json={"jobId": JOB, "market": MARKET, "input": mlp_samples[2]})
    assert reply.status_code == 202, reply.text
    assert reply.json()["state"] == "accepted"
    again = await client.post("/jobs", json={"jobId": JOB, "market": MARKET, "input": mlp_samples[2]})
    assert again.status_code == 200
    assert node.store is not None
    assert node.store.count() == 1

    # /health answers while the proof is being made.
    seen_proving = False
    while not seen_proving:
        health = await client.get("/health")
        assert health.status_code == 200
        seen_proving = health.json()["proving_in_flight"] >= 1
        if not seen_proving:
            state = (await client.get(f"/jobs/{JOB}")).json()["state"]
            assert state in ("accepted", "inferred"), f"proof finished before /health saw it: {state}"
            await asyncio.sleep(0.01)

    done = await wait_state(client, JOB, {"settled"})
    output, proof = chain.ledger.delivered[JOB]
    assert [str(x) for x in output] == done["outputFelts"]
    assert proof.hex() == done["proof"][2:]
    assert done["txHashes"]["deliver"] == "0x" + "aa" * 32
    assert len(done["output"]) == 10
    # the circuit's argmax is the model's argmax
    from tender.models import dequantize

    floats = [dequantize(int(x), mlp_bundle.card.output_scale) for x in output]
    assert max(range(10), key=lambda i: floats[i]) == max(range(10), key=lambda i: done["output"][i])


async def test_optimistic_job_answers_a_challenge_with_the_proof(
    client: httpx.AsyncClient,
    node: ProviderNode,
    chain: LedgerChain,
    mlp_bundle: Any,
    mlp_samples: list[list[float]],
) -> None:
    from dataclasses import replace

    from tender.chain import JobState

    award(chain, JOB, mlp_samples[3], mlp_bundle, proof_mode=1)
    reply = await client.post("/jobs", json={"jobId": JOB, "market": MARKET, "input": mlp_samples[3]})
    assert reply.status_code == 202
    delivered = await wait_state(client, JOB, {"delivered"})
    output, proof = chain.ledger.delivered[JOB]
    assert proof == b""  # optimistic: no proof sent...
    assert delivered["proof"] is None  # ...and none made: the delivery waited for no proof
    assert node.metrics.proof.labels("mlp")._sum.get() == 0  # type: ignore[attr-defined]
    chain.ledger.jobs[JOB] = replace(chain.ledger.jobs[JOB], state=JobState.CHALLENGED)
    done = await wait_state(client, JOB, {"settled"})  # challenged: proved now, and answered
    assert chain.ledger.proved[JOB].hex() == done["proof"][2:]
    assert "prove" in done["txHashes"]
    assert [str(x) for x in output] == done["outputFelts"]


async def test_restart_resumes_unfinished_job(
    tmp_path: Path, mlp_bundle: Any, chain: LedgerChain, mlp_samples: list[list[float]]
) -> None:
    from provider import JobStore, StoredJob, WorkStep

    award(chain, JOB, mlp_samples[4], mlp_bundle)
    cfg = config(tmp_path, mlp_bundle)
    store = JobStore(cfg.store_path())
    job = chain.ledger.jobs[JOB]
    store.insert(
        StoredJob(
            job_id=JOB,
            market=MARKET,
            model="mlp",
            input=mlp_samples[4],
            input_commitment=str(job.input_commitment),
            deadline=job.deadline,
            proof_mode=0,
        )
    )
    store.update(JOB, step=WorkStep.INFERRED, output=[0.0] * 10)
    store.close()
    async with running(ProviderNode(cfg, chain=chain, key=KEY)) as client:
        done = await wait_state(client, JOB, {"settled"})
    assert JOB in chain.ledger.delivered
    assert done["proof"]


async def test_silent_misbehaviour_accepts_and_never_delivers(
    tmp_path: Path, mlp_bundle: Any, chain: LedgerChain, mlp_samples: list[list[float]]
) -> None:
    from provider import MisbehaveSection

    award(chain, JOB, mlp_samples[5], mlp_bundle)
    cfg = config(tmp_path, mlp_bundle, misbehave=MisbehaveSection(silent_on_job=1))
    async with running(ProviderNode(cfg, chain=chain, key=KEY)) as client:
        reply = await client.post("/jobs", json={"jobId": JOB, "market": MARKET, "input": mlp_samples[5]})
        assert reply.status_code == 202
        await asyncio.sleep(0.5)
        assert (await client.get(f"/jobs/{JOB}")).json()["state"] == "accepted"
    assert JOB not in chain.ledger.delivered


# -- getting paid ----------------------------------------------------------------------------


async def test_earnings_are_withdrawn_past_the_threshold(
    tmp_path: Path, mlp_bundle: Any, chain: LedgerChain, caplog: pytest.LogCaptureFixture
) -> None:
    node = ProviderNode(config(tmp_path, mlp_bundle, withdraw_threshold=10**18), chain=chain, key=KEY)
    caplog.set_level("INFO", logger="provider.node")
    chain.ledger.credit = 6 * 10**17
    assert await node.withdraw(MARKET) == 0  # below the threshold: it stays credited
    assert chain.ledger.withdrawals == []
    chain.ledger.credit += 5 * 10**17
    assert await node.withdraw(MARKET) == 11 * 10**17
    assert chain.ledger.withdrawals == [11 * 10**17]
    assert chain.ledger.credit == 0
    (done,) = [r for r in caplog.records if r.getMessage() == "payment.withdrawn"]
    assert done.fields == {
        "market": MARKET,
        "amount": 11 * 10**17,
        "owed": 11 * 10**17,  # type: ignore[attr-defined]
        "threshold": 10**18,
        "tx": "0x" + "dd" * 32,
    }
    assert node.metrics.withdrawals.labels("ok")._value.get() == 1
    # a refused withdrawal (withdrawn by hand meanwhile: NothingOwed) is logged, never raised
    chain.ledger.credit, chain.ledger.refuse_withdraw = 2 * 10**18, True
    assert await node.withdraw(MARKET) == 0
    assert node.metrics.withdrawals.labels("failed")._value.get() == 1
    (failed,) = [r for r in caplog.records if r.getMessage() == "payment.withdraw_failed"]
    assert "NothingOwed" in failed.fields["error"]  # type: ignore[attr-defined]


async def test_withdraw_threshold_zero_never_withdraws(
    tmp_path: Path, mlp_bundle: Any, chain: LedgerChain
) -> None:
    node = ProviderNode(config(tmp_path, mlp_bundle, withdraw_threshold=0), chain=chain, key=KEY)
    chain.ledger.credit = 10**24
    assert await node.withdraw(MARKET) == 0
    assert chain.ledger.withdrawals == []


async def test_a_settled_job_triggers_the_withdrawal(
    tmp_path: Path, mlp_bundle: Any, chain: LedgerChain, mlp_samples: list[list[float]]
) -> None:
    award(chain, JOB, mlp_samples[6], mlp_bundle)
    price = chain.ledger.jobs[JOB].price
    cfg = config(tmp_path, mlp_bundle, withdraw_threshold=price)
    async with running(ProviderNode(cfg, chain=chain, key=KEY)) as client:
        reply = await client.post("/jobs", json={"jobId": JOB, "market": MARKET, "input": mlp_samples[6]})
        assert reply.status_code == 202
        await wait_state(client, JOB, {"settled"})
        for _ in range(100):  # the withdrawal follows the settlement in the job's task
            if chain.ledger.withdrawals:
                break
            await asyncio.sleep(0.05)
    assert chain.ledger.withdrawals == [price]


def test_error_body_is_json_everywhere() -> None:
    body = ErrorBody(error="x", message="y", field="z")
    assert json.loads(body.model_dump_json()) == {"error": "x", "message": "y", "field": "z"}


async def test_kserve_backend_node_infers_remotely_and_proves_locally(
    tmp_path: Path, mlp_bundle: Any, chain: LedgerChain, mlp_samples: list[list[float]]
) -> None:
    from provider import BackendSection
    from provider._oip_server import ServerThread, oip_app

    award(chain, JOB, mlp_samples[6], mlp_bundle)
    with ServerThread(oip_app({"mlp": mlp_bundle.onnx})) as server:
        cfg = config(tmp_path, mlp_bundle, backend=BackendSection(kind="kserve", url=server.url))
        async with running(ProviderNode(cfg, chain=chain, key=KEY)) as client:
            health = (await client.get("/health")).json()
            assert health["backend"] == "kserve"
            assert health["models"]["mlp"] == f"kserve:{server.url}"
            reply = await client.post("/jobs", json={"jobId": JOB, "market": MARKET, "input": mlp_samples[6]})
            assert reply.status_code == 202
            done = await wait_state(client, JOB, {"settled"})
    assert len(done["output"]) == 10
    assert chain.ledger.delivered[JOB][1].hex() == done["proof"][2:]


# -- stopping ----------------------------------------------------------------------------------


async def test_a_stopped_node_closes_its_port_and_never_answers_500(
    tmp_path: Path, mlp_bundle: Any, chain: LedgerChain
) -> None:
    """SIGTERM (``request_stop``): the HTTP server drains and closes first, so a client sees
    answers and then a refused connection, never a 500 from a node whose store is closed."""
    from provider._node import bind
    from tender.daemon import supervise

    node = ProviderNode(config(tmp_path, mlp_bundle), chain=chain, key=KEY)
    task = asyncio.create_task(supervise(node))
    statuses: list[int] = []
    async with httpx.AsyncClient(base_url=f"http://{node.config.listen}", timeout=10) as http:
        while not statuses or statuses[-1] != 200:
            assert not task.done(), f"node exited with {task.result()}"
            with contextlib.suppress(httpx.TransportError):
                statuses.append((await http.get("/health")).status_code)
            await asyncio.sleep(0.05)
        node.request_stop()
        while not task.done():
            with contextlib.suppress(httpx.TransportError):
                statuses.append((await http.get(f"/jobs/{JOB}")).status_code)
            await asyncio.sleep(0.01)
        assert await task == 0
        with pytest.raises(httpx.TransportError):  # the port is closed once the node is stopped
            await http.get("/health")
    assert 500 not in statuses
    bind(node.config.listen).close()  # and released


def test_a_busy_port_is_one_config_error(tmp_path: Path, mlp_bundle: Any) -> None:
    from provider._node import bind
    from tender.errors import ConfigError

    listen = config(tmp_path, mlp_bundle).listen
    taken = bind(listen)
    try:
        with pytest.raises(ConfigError, match=r"^provider\.listen: .*in use"):
            bind(listen)
    finally:
        taken.close()


@pytest.mark.parametrize(("model_id", "warned"), [(MLP_ID, False), ("0x" + "ee" * 32, True)])
async def test_a_model_id_not_in_the_registry_is_warned_about(
    tmp_path: Path,
    mlp_bundle: Any,
    chain: LedgerChain,
    caplog: pytest.LogCaptureFixture,
    model_id: str,
    warned: bool,
) -> None:
    entry = ModelEntry(name="mlp", onnx=mlp_bundle.onnx, bundle=mlp_bundle.path, model_id=model_id)
    node = ProviderNode(config(tmp_path, mlp_bundle, models=[entry]), chain=chain, key=KEY)
    caplog.set_level("INFO", logger="provider.node")
    async with running(node):
        pass
    found = [r for r in caplog.records if r.getMessage() == "model.unregistered"]
    assert bool(found) is warned
    if warned:
        assert found[0].levelname == "WARNING"
        assert found[0].fields["model_id"] == model_id  # type: ignore[attr-defined]


async def test_start_up_is_the_nodes_own_not_its_host_process_age(
    client: httpx.AsyncClient, node: ProviderNode
) -> None:
    """A node made inside a process that ran before it (a test suite, an embedding app) counts
    its restart headroom from its own creation: the host's age would inflate every latency
    promise (a suite 10 minutes in refused quotes as "deadline too tight: need 635s")."""
    from provider._node import process_age_s

    age = process_age_s()
    assert age is not None  # Linux
    assert 0 <= node.pricer.startup_s < age
    assert node.pricer.startup_s <= time.time() - node.started_at
