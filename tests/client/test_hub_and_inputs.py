"""The event hub routes logs to the right jobs; inputs travel inline; instances are laid out."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from tender.client._hub import EventHub, job_of
from tender.client._models import decode_input_uri, encode_input_uri, instances
from tender.client._tracker import JobState, JobTracker
from tender.errors import ModelError

A, B = "0x" + "aa" * 32, "0x" + "bb" * 32


def test_job_of_reads_bytes_and_hex() -> None:
    assert job_of({"job_id": bytes.fromhex(A[2:])}) == A
    assert job_of({"job_id": A.upper().replace("0X", "0x")}) == A
    assert job_of({"provider": "0x1"}) is None


async def test_route_feeds_trackers_and_keeps_early_events() -> None:
    hub = EventHub(w3=None, addresses=[], decode=lambda raw: None)  # type: ignore[arg-type]
    hub._ensure_running = lambda: None  # type: ignore[method-assign]  # no polling in this test
    seen: list[str] = []
    hub.listeners.append(lambda tracker, name, args: seen.append(name))
    tracker_a = JobTracker(A)
    changed = hub.follow(tracker_a)
    # B's events arrive before anyone follows B: kept, then replayed on follow.
    routed = hub.route([
        (A, "IntentPosted", {"job_id": A}, "0x01", 1),
        (B, "IntentPosted", {"job_id": B}, "0x02", 1),
        (A, "Awarded", {"job_id": A, "provider": "0x" + "11" * 20, "price": 3}, "0x03", 2),
    ])  # fmt: skip
    assert routed == 2
    assert changed.is_set()
    assert tracker_a.state is JobState.AWARDED
    assert seen == ["IntentPosted", "Awarded"]
    tracker_b = JobTracker(B)
    hub.follow(tracker_b)
    assert tracker_b.state is JobState.OPEN
    hub.forget(A)
    assert hub.route([(A, "Settled", {"job_id": A}, "0x04", 3)]) == 0
    await asyncio.sleep(0)


def test_fetch_decodes_and_filters_logs() -> None:
    logs = [
        {"transactionHash": b"\x01" * 32, "blockNumber": 5, "name": "Awarded", "args": {"job_id": A}},
        {"transactionHash": b"\x02" * 32, "blockNumber": 5, "name": "Transfer", "args": {"from_": "x"}},
        {"transactionHash": b"\x03" * 32, "blockNumber": 6, "name": "Nope", "args": None},
    ]

    class Eth:
        block_number = 6

        def get_logs(self, params: dict[str, Any]) -> list[dict[str, Any]]:
            assert params["fromBlock"] == 3
            return logs

    def decode(raw: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        return None if raw["args"] is None else (raw["name"], raw["args"])

    hub = EventHub(SimpleNamespace(eth=Eth()), [], decode=decode, from_block=3)  # type: ignore[arg-type]
    events = hub.fetch()
    assert [(e[0], e[1]) for e in events] == [(A, "Awarded")]
    assert hub.fetch() == []  # the cursor moved past the head


def test_inputs_travel_inline_as_compact_json() -> None:
    data = [[0.0, 0.5], [1.0, 0.25]]
    location = encode_input_uri(data)
    assert location == b"[[0.0,0.5],[1.0,0.25]]"
    assert decode_input_uri(location) == data
    assert decode_input_uri(b"data:application/json,[1,2]") == [1, 2]
    assert decode_input_uri(b"ipfs://bafy") is None


def test_instances_follow_the_layout() -> None:
    card = SimpleNamespace(
        layout=SimpleNamespace(commitment_index=0, output_offset=1, output_length=3, instance_count=4)
    )
    assert instances(card, 42, [7, 8, 9]) == [42, 7, 8, 9]
    with pytest.raises(ModelError):
        instances(card, 42, [7, 8])
    # polycommit: no input instance, the proof's first point binds the input instead
    polycommit = SimpleNamespace(
        input_visibility="polycommit",
        layout=SimpleNamespace(commitment_index=-1, output_offset=0, output_length=3, instance_count=3),
    )
    assert instances(polycommit, 42, [7, 8, 9]) == [7, 8, 9]
