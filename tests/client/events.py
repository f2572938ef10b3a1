"""Typed market events for the client's unit tests: every field not given takes an empty value."""

from __future__ import annotations

import itertools
from dataclasses import fields
from typing import Any

from tender.chain import Event, JobState
from tender.intents import Intent

_EMPTY: dict[str, Any] = {
    "int": 0,
    "str": "",
    "bytes": b"",
    "bool": False,
    "tuple[int, ...]": (),
    "JobState": JobState.NONE,
    "Intent": Intent(
        requester="0x" + "22" * 20,
        model_id=bytes(32),
        input_commitment=1,
        max_price=100,
        deadline=2_000_000_000,
    ),
}

_LOG_INDEX = itertools.count()


def event(kind: type[Event], job: str, *, tx: str | None = None, block: int = 1, **values: Any) -> Event:
    """A ``kind`` event of job ``job`` (``0x``-hex), from transaction ``tx`` (``0x``-hex)."""
    given = {"job_id": bytes.fromhex(job.removeprefix("0x")), **values}
    args: dict[str, Any] = {
        f.name: given.get(f.name, _EMPTY.get(str(f.type))) for f in fields(kind) if f.init
    }
    args.update(
        tx_hash=bytes.fromhex(tx.removeprefix("0x")) if tx else b"",
        block_number=block,
        log_index=next(_LOG_INDEX),
    )
    return kind(**args)
