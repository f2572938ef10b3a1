"""The job store: SQLite in WAL mode, one row per accepted job.

A job is written here before any work or transaction happens, and every step writes its
result before the next starts, so a node killed at any point resumes from the last step. The
node's own progress on a job is a :class:`WorkStep` (the job's state in the market is a
:class:`tender.chain.JobState`, read from the chain, never stored here)::

    accepted -> inferred -> proved -> delivered -> settled
         \\__________\\___________\\___________\\-> failed
    declined --(stake released past the provider deadline)--> failed

A job whose input does not match its commitment is declined on chain at once and stored as
``declined`` (no work is done): the node frees the stake it locked once its deadline has passed.

The store is also the :class:`tender.chain.FeedCursor` of the node's market feed (tables
``meta`` and ``blocks``): each job remembers ``chain_block``, the last block whose event about it
the feed read, so that a reorg dropping that block returns the job (:meth:`JobStore.rollback`)
to be checked against the chain again.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any


class WorkStep(StrEnum):
    """How far the node got with a job (stored as its string value)."""

    ACCEPTED = "accepted"
    INFERRED = "inferred"
    PROVED = "proved"
    DELIVERED = "delivered"
    SETTLED = "settled"
    FAILED = "failed"
    DECLINED = "declined"  # given back on chain; the locked stake is released at the deadline

    @property
    def final(self) -> bool:
        return self in (WorkStep.SETTLED, WorkStep.FAILED)


@dataclass(slots=True)
class StoredJob:
    """One job as the node knows it (plain domain type; :class:`tender.wire.JobStatus` is the wire form)."""

    job_id: str
    market: str
    model: str
    input: Any
    input_commitment: str
    deadline: int
    proof_mode: int
    price: str = "0"
    step: WorkStep = WorkStep.ACCEPTED
    output: list[float] | None = None
    output_felts: list[str] | None = None
    proof: str | None = None
    tx: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    attempts: int = 0
    seq: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0
    chain_block: int = 0


_JSON_COLUMNS = {"input", "output", "output_felts", "tx"}
_COLUMNS = [f.name for f in fields(StoredJob)]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    market TEXT NOT NULL,
    model TEXT NOT NULL,
    input TEXT NOT NULL,
    input_commitment TEXT NOT NULL,
    deadline INTEGER NOT NULL,
    proof_mode INTEGER NOT NULL,
    price TEXT NOT NULL,
    step TEXT NOT NULL,
    output TEXT,
    output_felts TEXT,
    proof TEXT,
    tx TEXT NOT NULL,
    error TEXT,
    attempts INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    chain_block INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_step ON jobs(step);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (number INTEGER PRIMARY KEY, hash TEXT NOT NULL);
"""

#: Stores written before the rename of their ``state`` column (same string values).
_MIGRATE_STATE_COLUMN = """
ALTER TABLE jobs RENAME COLUMN state TO step;
DROP INDEX IF EXISTS jobs_state;
"""


class JobStore:
    """SQLite job store (WAL mode; safe to use from the event loop and worker threads)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._lock = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
        if "state" in columns and "step" not in columns:
            self._db.executescript(_MIGRATE_STATE_COLUMN)
        self._db.executescript(_SCHEMA)
        if columns and "chain_block" not in {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}:
            self._db.execute("ALTER TABLE jobs ADD COLUMN chain_block INTEGER NOT NULL DEFAULT 0")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @staticmethod
    def _encode(name: str, value: Any) -> Any:
        if name in _JSON_COLUMNS:
            return None if value is None and name != "tx" else json.dumps(value)
        if isinstance(value, WorkStep):
            return value.value
        return value

    @staticmethod
    def _decode(row: sqlite3.Row | tuple[Any, ...]) -> StoredJob:
        values = dict(zip(_COLUMNS, row, strict=True))
        for name in _JSON_COLUMNS:
            if values[name] is not None:
                values[name] = json.loads(values[name])
        values["step"] = WorkStep(values["step"])
        return StoredJob(**values)

    def insert(self, record: StoredJob) -> bool:
        """Record a new job; False (and nothing written) if the job id is already known."""
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if self._db.execute("SELECT 1 FROM jobs WHERE job_id = ?", (record.job_id,)).fetchone():
                    self._db.execute("ROLLBACK")
                    return False
                (count,) = self._db.execute("SELECT COUNT(*) FROM jobs").fetchone()
                record.seq, record.created_at, record.updated_at = count + 1, now, now
                names = ", ".join(_COLUMNS)
                marks = ", ".join("?" for _ in _COLUMNS)
                self._db.execute(
                    f"INSERT INTO jobs ({names}) VALUES ({marks})",
                    [self._encode(n, getattr(record, n)) for n in _COLUMNS],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return True

    def update(self, job_id: str, **changes: Any) -> None:
        """Write ``changes`` (column -> value) to a job."""
        unknown = set(changes) - set(_COLUMNS)
        if unknown:
            raise ValueError(f"unknown job columns: {sorted(unknown)}")
        changes["updated_at"] = time.time()
        sets = ", ".join(f"{name} = ?" for name in changes)
        values = [self._encode(n, v) for n, v in changes.items()]
        with self._lock:
            self._db.execute(f"UPDATE jobs SET {sets} WHERE job_id = ?", [*values, job_id])

    def get(self, job_id: str) -> StoredJob | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE job_id = ?", (job_id,)
            ).fetchone()
        return self._decode(row) if row else None

    def unfinished(self) -> list[StoredJob]:
        """Jobs neither settled nor failed, oldest first."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE step NOT IN (?, ?) ORDER BY seq",
                (WorkStep.SETTLED.value, WorkStep.FAILED.value),
            ).fetchall()
        return [self._decode(r) for r in rows]

    def optimistic_rank(self, seq: int) -> int:
        """How many optimistic jobs were accepted up to and including job number ``seq``."""
        with self._lock:
            (n,) = self._db.execute(
                "SELECT COUNT(*) FROM jobs WHERE proof_mode = 1 AND seq <= ?", (seq,)
            ).fetchone()
        return int(n)

    # -- the market feed's cursor (tender.chain.FeedCursor) -----------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One batch of the feed: its job writes and :meth:`advance` together, or not at all."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @property
    def cursor(self) -> int | None:
        """The last block the market feed processed (``None``: never ran)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'cursor'").fetchone()
        return None if row is None else int(row[0])

    def block_hash(self, number: int) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT hash FROM blocks WHERE number = ?", (number,)).fetchone()
        return None if row is None else str(row[0])

    def recent_blocks(self) -> list[tuple[int, str]]:
        with self._lock:
            rows = self._db.execute("SELECT number, hash FROM blocks ORDER BY number DESC").fetchall()
        return [(int(n), str(h)) for n, h in rows]

    def advance(self, last: int, hashes: Mapping[int, str], *, keep: int) -> None:
        with self._lock:
            self._db.executemany(
                "INSERT OR REPLACE INTO blocks (number, hash) VALUES (?, ?)", sorted(hashes.items())
            )
            self._db.execute("DELETE FROM blocks WHERE number <= ?", (last - keep,))
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('cursor', ?)", (str(last),))

    def rollback(self, fork: int) -> list[str]:
        """Forget the blocks after ``fork``; the ids of the jobs an event in them concerned (the
        node checks each against the chain again)."""
        with self.transaction():
            touched = [
                str(r[0]) for r in self._db.execute("SELECT job_id FROM jobs WHERE chain_block > ?", (fork,))
            ]
            self._db.execute("UPDATE jobs SET chain_block = ? WHERE chain_block > ?", (fork, fork))
            self._db.execute("DELETE FROM blocks WHERE number > ?", (fork,))
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('cursor', ?)", (str(fork),))
        return touched

    def count(self, *, step: WorkStep | None = None) -> int:
        with self._lock:
            if step is None:
                (n,) = self._db.execute("SELECT COUNT(*) FROM jobs").fetchone()
            else:
                (n,) = self._db.execute("SELECT COUNT(*) FROM jobs WHERE step = ?", (step.value,)).fetchone()
        return int(n)
