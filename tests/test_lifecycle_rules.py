"""One home for the job lifecycle: rules that keep it so, checked on the source and the ABI.

- one ``JobState`` in Python (``tender.chain``'s), one log-polling loop (``tender/chain/_feed.py``
  is the only caller of ``eth_getLogs``);
- every event a role or the SDK subscribes to by name, and every typed event class, exists in
  the contracts' ABI (the solver once followed 16 events no contract emits).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tender.chain import EVENT_TYPES, TENDER_CONTRACTS, EventFeed, combined_abi, tender_log_decoder

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("tender", "provider", "solver", "verifier")
FEED = Path("tender/chain/_feed.py")


def modules() -> Iterator[tuple[Path, ast.Module]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield path.relative_to(ROOT), ast.parse(path.read_text(), filename=str(path))


def abi_events() -> set[str]:
    return {str(e["name"]) for e in combined_abi(TENDER_CONTRACTS) if e.get("type") == "event"}


def test_one_job_state_definition() -> None:
    found = [
        f"{path}:{node.lineno}"
        for path, tree in modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef) and node.name == "JobState"
    ]
    assert found == ["tender/chain/_jobs.py:15"] or (
        len(found) == 1 and found[0].startswith("tender/chain/_jobs.py")
    )


def test_only_the_feed_reads_logs() -> None:
    callers = sorted(
        {
            str(path)
            for path, tree in modules()
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute)
            and node.attr in {"get_logs", "get_filter_logs", "create_filter"}
        }
    )
    assert callers == [str(FEED)]


def test_typed_events_are_exactly_the_abi_events() -> None:
    assert set(EVENT_TYPES) == abi_events()


def subscribed_names() -> Iterator[tuple[str, str]]:
    """String literals passed as ``names=`` to an event read (``events``, ``EventFeed``...)."""
    readers = {"events", "EventFeed", "AsyncEventFeed"}
    for path, tree in modules():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if called not in readers:
                continue
            for keyword in node.keywords:
                if keyword.arg == "names" and isinstance(keyword.value, ast.List | ast.Tuple):
                    for element in keyword.value.elts:
                        if isinstance(element, ast.Constant) and isinstance(element.value, str):
                            yield f"{path}:{node.lineno}", element.value


def test_every_event_subscribed_by_name_is_in_the_abi() -> None:
    names = list(subscribed_names())
    assert names, "the scan found no subscription: it is broken"
    known = abi_events()
    assert [(where, name) for where, name in names if name not in known] == []


def test_a_feed_refuses_an_event_the_abi_lacks() -> None:
    from web3 import Web3

    w3 = Web3()
    with pytest.raises(ValueError, match="JobPosted"):
        EventFeed(w3, ["0x" + "11" * 20], names=["IntentPosted", "JobPosted"], decoder=tender_log_decoder())
