"""The event hub routes typed events to the right jobs; inputs travel inline; instances are laid out."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from tender.chain import Awarded, IntentPosted, JobState, Settled, Staked
from tender.client._hub import EventHub, job_of
from tender.client._models import decode_input_uri, encode_input_uri, instances
from tender.client._tracker import JobTracker
from tender.errors import ModelError
from tests.client.events import event

A, B = "0x" + "aa" * 32, "0x" + "bb" * 32


def test_job_of_reads_the_typed_events_job_id() -> None:
    assert job_of(event(Awarded, A)) == A
    assert job_of(event(Staked, A)) is None  # names no job


def _hub() -> EventHub:
    hub = EventHub(SimpleNamespace(eth=SimpleNamespace(block_number=0)), [])  # type: ignore[arg-type]  # route() only
    hub._ensure_running = lambda: None  # type: ignore[method-assign]  # no polling in this test
    return hub


async def test_route_feeds_trackers_and_keeps_early_events() -> None:
    hub = _hub()
    seen: list[str] = []
    hub.listeners.append(lambda tracker, e: seen.append(e.name))
    tracker_a = JobTracker(A)
    changed = hub.follow(tracker_a)
    # B's events arrive before anyone follows B: kept, then replayed on follow.
    routed = hub.route(
        [
            event(IntentPosted, A, tx="0x01"),
            event(IntentPosted, B, tx="0x02"),
            event(Awarded, A, tx="0x03", block=2, provider="0x" + "11" * 20, price=3),
        ]
    )
    assert routed == 2
    assert changed.is_set()
    assert tracker_a.state is JobState.AWARDED
    assert seen == ["IntentPosted", "Awarded"]
    tracker_b = JobTracker(B)
    hub.follow(tracker_b)
    assert tracker_b.state is JobState.OPEN
    hub.forget(A)
    assert hub.route([event(Settled, A, tx="0x04", block=3)]) == 0
    await asyncio.sleep(0)


async def test_a_reorg_rolls_the_followed_jobs_back() -> None:
    hub = _hub()
    tracker = JobTracker(A)
    changed = hub.follow(tracker)
    hub.route([event(IntentPosted, A, tx="0x01", block=1), event(Awarded, A, tx="0x02", block=3)])
    assert tracker.state is JobState.AWARDED
    changed.clear()
    assert hub.route([], forks=[2]) == 0
    assert tracker.state is JobState.OPEN
    assert changed.is_set()  # the request sees its job moved back


async def test_a_watched_job_is_woken_by_its_events_without_a_tracker() -> None:
    """The quote path's settlement watches its job on the client's one feed: each event naming
    the job wakes it (one seen before the watch too), nobody else's does, and none is kept."""
    hub = _hub()
    hub.route([event(Settled, B, tx="0x01")])  # B settled before it was watched
    early = hub.watch(B)
    assert early.is_set()
    changed = hub.watch(A)
    assert not changed.is_set()
    assert hub.route([event(IntentPosted, B, tx="0x02")]) == 0  # nobody's tracker: routed to none
    assert not changed.is_set()
    hub.route([event(Settled, A, tx="0x03", block=2)])
    assert changed.is_set()
    assert A not in hub._orphans
    hub.forget(A)
    changed.clear()
    hub.route([event(Settled, A, tx="0x04", block=3)])
    assert not changed.is_set()


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
