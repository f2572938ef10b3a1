"""The agent's persistent state: one SQLite file, safe to reopen after a crash.

Tables:

* ``meta``     the chain id and market addresses it belongs to, the scan cursor.
* ``jobs``     what the agent knows of each job it saw (its :class:`~tender.chain.JobState`, stored by
  name, deadlines, its verdict).
* ``actions``  every transaction the agent decides to send, one row per (job, kind). A row is
  written with the *signed* transaction before it is broadcast, so a restarted agent
  rebroadcasts the very same transaction (same nonce, same hash) instead of signing a second
  challenge: the unique key makes a duplicate impossible.
* ``rewards``  what the agent earned (challenger rewards, keeper fees), from the chain's events.
* ``blocks``   the hashes of the last blocks scanned, and ``touched`` the jobs each of them changed:
  the store is the :class:`~tender.chain.FeedCursor` of the agent's event feed, so a reorg forgets
  what the dropped blocks said (:meth:`Store.rollback`).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tender.chain import JobState
from verifier._errors import StoreError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    market TEXT NOT NULL,
    state TEXT NOT NULL,
    proof_mode INTEGER,
    provider TEXT,
    deadline INTEGER,
    challenge_deadline INTEGER,
    verdict TEXT,
    detail TEXT,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
CREATE TABLE IF NOT EXISTS actions (
    job_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    tx_hash TEXT,
    raw_tx TEXT,
    nonce INTEGER,
    detail TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (job_id, kind)
);
CREATE TABLE IF NOT EXISTS blocks (number INTEGER PRIMARY KEY, hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS touched (
    block INTEGER NOT NULL,
    job_id TEXT NOT NULL,
    PRIMARY KEY (block, job_id)
);
CREATE TABLE IF NOT EXISTS rewards (
    tx_hash TEXT NOT NULL,
    log_index INTEGER NOT NULL,
    job_id TEXT,
    kind TEXT NOT NULL,
    amount TEXT NOT NULL,
    block INTEGER NOT NULL,
    PRIMARY KEY (tx_hash, log_index)
);
"""

#: Action statuses: ``signed`` (persisted, maybe broadcast), ``mined``, ``failed`` (reverted or
#: refused; not retried), ``skipped`` (decided against, e.g. the window had closed).
PENDING_STATUSES = ("signed",)


@dataclass(frozen=True, slots=True)
class Action:
    """One transaction the agent decided to send for a job."""

    job_id: str
    kind: str
    status: str
    tx_hash: str | None
    raw_tx: str | None
    nonce: int | None
    detail: str | None


@dataclass(frozen=True, slots=True)
class JobRow:
    """What the agent knows of one job."""

    job_id: str
    market: str
    state: JobState
    proof_mode: int | None
    provider: str | None
    deadline: int | None
    challenge_deadline: int | None
    verdict: str | None
    detail: dict[str, Any]


class Store:
    """The agent's SQLite state (thread-safe: the agent sends transactions from worker threads).

    Args:
        path: the database file (created with its folder when missing).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open verifier store {self.path}: {exc}") from exc
        self._lock = threading.RLock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        with self._lock:
            try:
                return self._db.execute(sql, args)
            except sqlite3.Error as exc:
                raise StoreError(f"verifier store {self.path}: {exc}") from exc

    # -- meta ---------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self._exec("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._exec(
            "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def bind(self, *, chain_id: int, markets: dict[str, str]) -> None:
        """Tie the file to a chain and markets; refuse a file written for another deployment."""
        identity = json.dumps(
            {"chainId": chain_id, "markets": {k: v.lower() for k, v in sorted(markets.items())}}
        )
        known = self.get_meta("identity")
        if known is None:
            self.set_meta("identity", identity)
        elif known != identity:
            raise StoreError(
                f"{self.path} belongs to another deployment ({known}); point verifier.store elsewhere"
            )

    @property
    def cursor(self) -> int | None:
        """The last block whose events were fully processed."""
        value = self.get_meta("cursor")
        return None if value is None else int(value)

    @cursor.setter
    def cursor(self, block: int) -> None:
        self.set_meta("cursor", str(block))

    # -- feed cursor (tender.chain.FeedCursor) --------------------------------------------

    def block_hash(self, number: int) -> str | None:
        row = self._exec("SELECT hash FROM blocks WHERE number = ?", (number,)).fetchone()
        return None if row is None else str(row[0])

    def recent_blocks(self) -> list[tuple[int, str]]:
        return [
            (int(n), str(h)) for n, h in self._exec("SELECT number, hash FROM blocks ORDER BY number DESC")
        ]

    def advance(self, last: int, hashes: Mapping[int, str], *, keep: int) -> None:
        """Move the cursor to ``last`` and remember ``hashes``, at most ``keep`` blocks in all."""
        with self._lock:
            self._db.executemany(
                "INSERT OR REPLACE INTO blocks(number, hash) VALUES(?, ?)", sorted(hashes.items())
            )
            row = self._exec(
                "SELECT number FROM blocks ORDER BY number DESC LIMIT 1 OFFSET ?", (keep,)
            ).fetchone()
            if row is not None:  # older blocks can no longer be reorged (for the feed)
                self._exec("DELETE FROM blocks WHERE number <= ?", (row[0],))
                self._exec("DELETE FROM touched WHERE block <= ?", (row[0],))
            self.cursor = last

    def touch(self, job_id: str, block: int) -> None:
        """Note that an event of ``block`` changed ``job_id`` (what :meth:`rollback` returns)."""
        self._exec("INSERT OR IGNORE INTO touched(block, job_id) VALUES(?, ?)", (block, job_id))

    def rollback(self, fork: int) -> list[str]:
        """Forget the blocks after ``fork`` and the rewards their events booked; returns the jobs
        their events changed (whose rows the caller rebuilds)."""
        with self.transaction():
            jobs = [
                str(r[0]) for r in self._exec("SELECT DISTINCT job_id FROM touched WHERE block > ?", (fork,))
            ]
            self._exec("DELETE FROM touched WHERE block > ?", (fork,))
            self._exec("DELETE FROM blocks WHERE number > ?", (fork,))
            self._exec("DELETE FROM rewards WHERE block > ? AND log_index >= 0", (fork,))
            self.cursor = fork
        return jobs

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One SQLite transaction (re-entrant: an inner one joins the outer one)."""
        with self._lock:
            if self._db.in_transaction:
                yield
                return
            self._exec("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.rollback()
                raise
            self._exec("COMMIT")

    # -- jobs ---------------------------------------------------------------------------

    def upsert_job(self, job_id: str, market: str, **fields: Any) -> None:
        """Insert a job or update the given fields (``detail`` is merged, not replaced; ``state`` is
        a :class:`JobState`)."""
        now = time.time()
        with self._lock:
            current = self.job(job_id)
            detail = dict(current.detail) if current else {}
            detail.update(fields.pop("detail", {}) or {})
            state = JobState(fields.pop("state", current.state if current else JobState.NONE))
            columns = {"state": state.name.lower(), **fields}
            if current is None:
                self._exec(
                    "INSERT INTO jobs(job_id, market, state, proof_mode, provider, deadline, challenge_deadline,"
                    " verdict, detail, updated) VALUES(?,?,?,?,?,?,?,?,?,?)",
                    (
                        job_id,
                        market,
                        columns["state"],
                        columns.get("proof_mode"),
                        columns.get("provider"),
                        columns.get("deadline"),
                        columns.get("challenge_deadline"),
                        columns.get("verdict"),
                        json.dumps(detail),
                        now,
                    ),
                )
                return
            sets = ", ".join(f"{key} = ?" for key in columns)
            self._exec(
                f"UPDATE jobs SET {sets}, detail = ?, updated = ? WHERE job_id = ?",
                (*columns.values(), json.dumps(detail), now, job_id),
            )

    def forget_job(self, job_id: str) -> None:
        """Delete what the agent knew of a job (to fold it again from its events)."""
        self._exec("DELETE FROM jobs WHERE job_id = ?", (job_id,))

    def job(self, job_id: str) -> JobRow | None:
        row = self._exec(
            "SELECT job_id, market, state, proof_mode, provider, deadline, challenge_deadline, verdict, detail"
            " FROM jobs WHERE job_id = ?",
            (job_id,),
        ).fetchone()
        return None if row is None else _job(row)

    def jobs(self, *states: JobState) -> list[JobRow]:
        """Jobs in any of ``states`` (all jobs when none is given), oldest first."""
        sql = "SELECT job_id, market, state, proof_mode, provider, deadline, challenge_deadline, verdict, detail FROM jobs"
        args: tuple[Any, ...] = ()
        if states:
            sql += f" WHERE state IN ({','.join('?' * len(states))})"
            args = tuple(state.name.lower() for state in states)
        return [_job(row) for row in self._exec(sql + " ORDER BY rowid", args).fetchall()]

    # -- actions ------------------------------------------------------------------------

    def action(self, job_id: str, kind: str) -> Action | None:
        row = self._exec(
            "SELECT job_id, kind, status, tx_hash, raw_tx, nonce, detail FROM actions WHERE job_id = ? AND kind = ?",
            (job_id, kind),
        ).fetchone()
        return None if row is None else Action(*row)

    def record_signed(self, job_id: str, kind: str, *, tx_hash: str, raw_tx: str, nonce: int) -> bool:
        """Persist a signed transaction before it is broadcast.

        Returns ``False`` (and writes nothing) if an action of this kind already exists for
        the job: the caller must then not broadcast its new transaction.
        """
        now = time.time()
        cursor = self._exec(
            "INSERT OR IGNORE INTO actions(job_id, kind, status, tx_hash, raw_tx, nonce, created, updated)"
            " VALUES(?, ?, 'signed', ?, ?, ?, ?, ?)",
            (job_id, kind, tx_hash, raw_tx, nonce, now, now),
        )
        return cursor.rowcount == 1

    def record_skipped(self, job_id: str, kind: str, reason: str) -> bool:
        now = time.time()
        cursor = self._exec(
            "INSERT OR IGNORE INTO actions(job_id, kind, status, detail, created, updated) VALUES(?, ?, 'skipped', ?, ?, ?)",
            (job_id, kind, reason, now, now),
        )
        return cursor.rowcount == 1

    def finish_action(self, job_id: str, kind: str, status: str, detail: str | None = None) -> None:
        self._exec(
            "UPDATE actions SET status = ?, detail = ?, updated = ? WHERE job_id = ? AND kind = ?",
            (status, detail, time.time(), job_id, kind),
        )

    def pending_actions(self) -> list[Action]:
        """Actions persisted but not known to be mined: to rebroadcast after a restart."""
        rows = self._exec(
            "SELECT job_id, kind, status, tx_hash, raw_tx, nonce, detail FROM actions WHERE status = 'signed'"
            " ORDER BY nonce"
        ).fetchall()
        return [Action(*row) for row in rows]

    def actions(self, *, job_id: str | None = None) -> Iterator[Action]:
        """Every action (or ``job_id``'s), oldest first."""
        sql = "SELECT job_id, kind, status, tx_hash, raw_tx, nonce, detail FROM actions"
        args: tuple[Any, ...] = ()
        if job_id is not None:
            sql, args = sql + " WHERE job_id = ?", (job_id,)
        yield from (Action(*row) for row in self._exec(sql + " ORDER BY created", args).fetchall())

    def forget_action(self, job_id: str, kind: str) -> None:
        """Delete an action (its transaction is gone from the chain: a reorg took it back)."""
        self._exec("DELETE FROM actions WHERE job_id = ? AND kind = ?", (job_id, kind))

    # -- rewards ------------------------------------------------------------------------

    def add_reward(
        self, *, tx_hash: str, log_index: int, job_id: str | None, kind: str, amount: int, block: int
    ) -> None:
        self._exec(
            "INSERT OR IGNORE INTO rewards(tx_hash, log_index, job_id, kind, amount, block) VALUES(?,?,?,?,?,?)",
            (tx_hash, log_index, job_id, kind, str(amount), block),
        )

    def rewards(self) -> dict[str, int]:
        """Total earned by kind (``{"challenge": 5000, ...}``)."""
        totals: dict[str, int] = {}
        for kind, amount in self._exec("SELECT kind, amount FROM rewards").fetchall():
            totals[kind] = totals.get(kind, 0) + int(amount)
        return totals


def _job(row: tuple[Any, ...]) -> JobRow:
    job_id, market, name, proof_mode, provider, deadline, challenge_deadline, verdict, detail = row
    state = JobState.__members__.get(str(name).upper(), JobState.NONE)
    return JobRow(
        job_id,
        market,
        state,
        proof_mode,
        provider,
        deadline,
        challenge_deadline,
        verdict,
        json.loads(detail or "{}"),
    )
