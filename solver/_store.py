"""The solver's memory: one SQLite file (WAL, ``synchronous=FULL``).

What it keeps, and why:

* ``meta``: the chain id and the feed's cursor (the last block processed), so a restarted
  solver resumes where it stopped.
* ``blocks``: the hashes of the last ``reorg_depth`` processed blocks; a hash that no longer
  matches the chain marks a reorg, and the highest block that still matches is the fork point.
* ``jobs``: every intent the solver has seen (from the chain or from ``POST /intents``), how
  far it pursued it (``pursuit``: a :class:`Pursuit`, the solver's own record, not the chain's
  :class:`tender.chain.JobState`) and what the chain said (award, provider deadline,
  settlement). Rows carry the block
  that created them so a rollback forgets exactly what the dropped blocks taught it.
* ``txs``: every transaction the solver signed, written *before* it is broadcast: after a
  crash the solver knows each nonce it used and the bytes it may have sent, and never bids
  twice for the same job.

All access happens on the event loop's thread; every write is one short transaction.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from solver._errors import StoreError

__all__ = ["JobRow", "Pursuit", "Store", "TxRow", "TxState"]

#: The schema's version (``meta.schema``); :meth:`Store._migrate` brings older files up to it.
SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (number INTEGER PRIMARY KEY, hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    market TEXT NOT NULL,
    auction TEXT NOT NULL,
    intent TEXT NOT NULL,
    signature TEXT,
    posted_block INTEGER,
    posted_at INTEGER,
    pursuit TEXT NOT NULL,
    provider TEXT,
    price TEXT,
    latency INTEGER,
    cost TEXT,
    awarded_block INTEGER,
    winner TEXT,
    award_price TEXT,
    provider_deadline INTEGER,
    input_sent INTEGER NOT NULL DEFAULT 0,
    final_block INTEGER,
    last_bidder TEXT,
    last_bid_block INTEGER,
    note TEXT,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_pursuit ON jobs (pursuit);
CREATE TABLE IF NOT EXISTS txs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sender TEXT NOT NULL,
    nonce INTEGER NOT NULL,
    purpose TEXT NOT NULL,
    job_id TEXT,
    raw TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    max_fee INTEGER NOT NULL,
    tip INTEGER NOT NULL,
    state TEXT NOT NULL,
    created REAL NOT NULL,
    sent REAL,
    block INTEGER,
    gas_used INTEGER,
    fee_paid INTEGER
);
CREATE INDEX IF NOT EXISTS txs_nonce ON txs (sender, nonce);
CREATE INDEX IF NOT EXISTS txs_job ON txs (job_id, purpose);
"""


class Pursuit(StrEnum):
    """How far this solver has pursued a job: what it decided and what came of it.

    The solver's own record; where the job stands on chain is a :class:`tender.chain.JobState`.
    """

    SEEN = "seen"  # intent known, not decided yet
    BID = "bid"  # our bid is (or was) on the market; waiting for the window's end
    FILLING = "filling"  # a Dutch fill is signed and on its way
    PASSED = "passed"  # we chose not to serve it
    LOST = "lost"  # awarded to someone else, or never awarded
    WON = "won"  # awarded to one of our providers
    SENT = "sent"  # input handed to the provider
    SETTLED = "settled"  # delivered and paid: nothing left to do
    EXPIRED = "expired"  # the provider missed its deadline and we (or anyone) expired it
    SLASHED = "slashed"  # our provider's delivery was challenged and it failed to prove it
    DROPPED = "dropped"  # its intent vanished in a reorg or expired before posting

    @property
    def open(self) -> bool:
        return self in (Pursuit.SEEN, Pursuit.BID, Pursuit.FILLING, Pursuit.WON, Pursuit.SENT)


class TxState(StrEnum):
    SIGNED = "signed"  # persisted; may or may not have reached the node
    SENT = "sent"  # the node accepted it
    MINED = "mined"  # a receipt with status 1
    FAILED = "failed"  # a receipt with status 0
    REPLACED = "replaced"  # another tx with its nonce was mined
    DROPPED = "dropped"  # given up (never broadcast, or reorged out and not needed)


@dataclass(frozen=True, slots=True)
class JobRow:
    job_id: str
    market: str
    auction: str
    intent: dict[str, Any]
    signature: str | None
    posted_block: int | None
    posted_at: int | None
    pursuit: Pursuit
    provider: str | None
    price: int | None
    latency: int | None
    cost: int | None
    awarded_block: int | None
    winner: str | None
    award_price: int | None
    provider_deadline: int | None
    input_sent: bool
    final_block: int | None
    last_bidder: str | None
    note: str | None


@dataclass(frozen=True, slots=True)
class TxRow:
    id: int
    sender: str
    nonce: int
    purpose: str
    job_id: str | None
    raw: bytes
    hash: str
    max_fee: int
    tip: int
    state: TxState
    created: float
    sent: float | None
    block: int | None
    gas_used: int | None
    fee_paid: int | None


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


Row = TypeVar("Row", JobRow, TxRow)
#: How a column is read back where it is not stored as the field's own type (default: as is).
_JOB_COLUMNS: dict[str, Callable[[Any], Any]] = {
    "intent": json.loads,
    "pursuit": Pursuit,
    "price": _int,
    "cost": _int,
    "award_price": _int,
    "input_sent": bool,
}
_TX_COLUMNS: dict[str, Callable[[Any], Any]] = {"raw": bytes.fromhex, "state": TxState}


def _from_row(cls: type[Row], row: sqlite3.Row, convert: dict[str, Callable[[Any], Any]]) -> Row:
    """A ``cls`` from a row of its table: each field the column of its name, read back by ``convert``."""
    return cls(**{f.name: convert.get(f.name, _as_is)(row[f.name]) for f in dataclass_fields(cls)})


def _as_is(value: Any) -> Any:
    return value


class Store:
    """The solver's SQLite store. ``Store(":memory:")`` works for tests.

    It is the :class:`tender.chain.FeedCursor` of the solver's event feed: the feed's position
    and the recent block hashes live in the same file, and the same transactions, as the jobs.
    """

    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._migrate()
            self._db.executescript(_SCHEMA)
            self._db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the solver store {path}: {exc}") from exc
        self._depth = 0

    def _migrate(self) -> None:
        """Bring a store written by an older solver up to :data:`SCHEMA_VERSION`, in place.

        Version 1 named the solver's record of a job ``state`` (the word the chain uses for
        its own job states) and the provider deadline ``deadline_at``.
        """
        columns = {str(r[1]) for r in self._db.execute("PRAGMA table_info(jobs)")}
        if "state" not in columns:
            return
        self._db.executescript(
            "BEGIN IMMEDIATE;"
            "DROP INDEX IF EXISTS jobs_state;"
            "ALTER TABLE jobs RENAME COLUMN state TO pursuit;"
            "ALTER TABLE jobs RENAME COLUMN deadline_at TO provider_deadline;"
            "COMMIT;"
        )

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic write (nested calls join the outer transaction)."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")
        finally:
            self._depth = 0

    # -- meta ---------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def check_chain(self, chain_id: int, genesis: str) -> None:
        """Bind the store to one chain; refuse to reuse it on another."""
        known = self.get_meta("chain")
        here = f"{chain_id}:{genesis}"
        if known is None:
            with self.transaction():
                self.set_meta("chain", here)
        elif known != here:
            raise StoreError(f"the store belongs to chain {known}, not {here}: use another store")

    @property
    def cursor(self) -> int | None:
        """The last block the feed processed (``None``: never ran)."""
        value = self.get_meta("cursor")
        return None if value is None else int(value)

    # -- blocks -------------------------------------------------------------------------

    def block_hash(self, number: int) -> str | None:
        row = self._db.execute("SELECT hash FROM blocks WHERE number = ?", (number,)).fetchone()
        return None if row is None else str(row[0])

    def recent_blocks(self) -> list[tuple[int, str]]:
        """Remembered ``(number, hash)`` pairs, newest first."""
        rows = self._db.execute("SELECT number, hash FROM blocks ORDER BY number DESC").fetchall()
        return [(int(r[0]), str(r[1])) for r in rows]

    def advance(self, last: int, hashes: Mapping[int, str], *, keep: int) -> None:
        """Record processed blocks up to ``last`` (call inside the transaction holding their events)."""
        self._db.executemany(
            "INSERT OR REPLACE INTO blocks (number, hash) VALUES (?, ?)", sorted(hashes.items())
        )
        self._db.execute("DELETE FROM blocks WHERE number <= ?", (last - keep,))
        self.set_meta("cursor", str(last))

    def rollback(self, fork: int) -> list[str]:
        """Forget everything learnt from blocks after ``fork``; return the job ids touched.

        Intents posted after the fork are dropped (unless they also came signed: then they go
        back to "known, not posted"); awards and settlements after it are undone.
        """
        with self.transaction():
            touched = [
                str(r[0])
                for r in self._db.execute(
                    "SELECT job_id FROM jobs WHERE posted_block > ? OR awarded_block > ? OR final_block > ? "
                    "OR last_bid_block > ?",
                    (fork, fork, fork, fork),
                )
            ]
            now = time.time()
            self._db.execute(
                "UPDATE jobs SET pursuit = 'dropped', note = 'reorged out', updated = ? "
                "WHERE posted_block > ? AND signature IS NULL",
                (now, fork),
            )
            self._db.execute(
                "UPDATE jobs SET posted_block = NULL, posted_at = NULL, updated = ? "
                "WHERE posted_block > ? AND signature IS NOT NULL",
                (now, fork),
            )
            # An award or settlement undone: the job is back to its pre-award state. Whether
            # we bid is in the txs table; the job task re-reads the chain and acts again.
            self._db.execute(
                "UPDATE jobs SET awarded_block = NULL, winner = NULL, award_price = NULL, provider_deadline = NULL, "
                "final_block = NULL, pursuit = CASE WHEN provider IS NULL THEN 'seen' ELSE 'bid' END, updated = ? "
                "WHERE (awarded_block > ? OR final_block > ?) AND pursuit != 'dropped'",
                (now, fork, fork),
            )
            self._db.execute(
                "UPDATE jobs SET last_bidder = NULL, last_bid_block = NULL WHERE last_bid_block > ?", (fork,)
            )
            self._db.execute("DELETE FROM blocks WHERE number > ?", (fork,))
            self.set_meta("cursor", str(fork))
        return touched

    # -- jobs ---------------------------------------------------------------------------

    def add_job(
        self,
        job_id: str,
        *,
        market: str,
        auction: str,
        intent: dict[str, Any],
        posted_block: int | None,
        posted_at: int | None = None,
        signature: str | None = None,
    ) -> bool:
        """Insert a newly seen intent; if known, record its posting. True when it is new."""
        job_id = job_id.lower()
        row = self._db.execute(
            "SELECT pursuit, posted_block FROM jobs WHERE job_id = ?", (job_id,)
        ).fetchone()
        now = time.time()
        if row is None:
            self._db.execute(
                "INSERT INTO jobs (job_id, market, auction, intent, signature, posted_block, posted_at, pursuit, updated) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 'seen', ?)",
                (job_id, market, auction, json.dumps(intent), signature, posted_block, posted_at, now),
            )
            return True
        if posted_block is not None:
            revived = "seen" if row["pursuit"] == "dropped" else row["pursuit"]
            self._db.execute(
                "UPDATE jobs SET posted_block = ?, posted_at = ?, pursuit = ?, updated = ? WHERE job_id = ?",
                (posted_block, posted_at, revived, now, job_id),
            )
            return bool(row["pursuit"] == "dropped")
        return False

    def job(self, job_id: str) -> JobRow | None:
        row = self._db.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id.lower(),)).fetchone()
        return None if row is None else self._job(row)

    def jobs(self, *pursuits: Pursuit) -> list[JobRow]:
        if pursuits:
            marks = ",".join("?" * len(pursuits))
            rows = self._db.execute(
                f"SELECT * FROM jobs WHERE pursuit IN ({marks}) ORDER BY rowid", [p.value for p in pursuits]
            ).fetchall()
        else:
            rows = self._db.execute("SELECT * FROM jobs ORDER BY rowid").fetchall()
        return [self._job(r) for r in rows]

    def open_jobs(self) -> list[JobRow]:
        return self.jobs(*(p for p in Pursuit if p.open))

    def update_job(self, job_id: str, **fields: Any) -> None:
        """Set columns of a job (``pursuit=Pursuit.WON, winner=...``); ints stored as text when big."""
        if not fields:
            return
        values: list[Any] = []
        for key, value in fields.items():
            if key in ("price", "cost", "award_price") and value is not None:
                value = str(value)
            elif key == "input_sent":
                value = int(bool(value))
            elif key == "intent":
                value = json.dumps(value)
            values.append(value)
        sets = ", ".join(f"{k} = ?" for k in fields)
        self._db.execute(
            f"UPDATE jobs SET {sets}, updated = ? WHERE job_id = ?", (*values, time.time(), job_id.lower())
        )

    def counts(self) -> dict[str, int]:
        rows = self._db.execute("SELECT pursuit, COUNT(*) FROM jobs GROUP BY pursuit").fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    @staticmethod
    def _job(row: sqlite3.Row) -> JobRow:
        return _from_row(JobRow, row, _JOB_COLUMNS)

    # -- transactions -------------------------------------------------------------------

    def add_tx(
        self,
        *,
        sender: str,
        nonce: int,
        purpose: str,
        job_id: str | None,
        raw: bytes,
        tx_hash: str,
        max_fee: int,
        tip: int,
    ) -> int:
        """Persist a signed transaction before it is broadcast; returns its row id."""
        cur = self._db.execute(
            "INSERT INTO txs (sender, nonce, purpose, job_id, raw, hash, max_fee, tip, state, created) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'signed', ?)",
            (
                sender,
                nonce,
                purpose,
                job_id and job_id.lower(),
                raw.hex(),
                tx_hash,
                max_fee,
                tip,
                time.time(),
            ),
        )
        return int(cur.lastrowid or 0)

    def update_tx(self, tx_id: int, **fields: Any) -> None:
        sets = ", ".join(f"{k} = ?" for k in fields)
        self._db.execute(f"UPDATE txs SET {sets} WHERE id = ?", (*fields.values(), tx_id))

    def txs(self, *, sender: str | None = None, states: tuple[TxState, ...] = ()) -> list[TxRow]:
        query, args = "SELECT * FROM txs WHERE 1", []
        if sender is not None:
            query += " AND sender = ?"
            args.append(sender)
        if states:
            query += f" AND state IN ({','.join('?' * len(states))})"
            args += [s.value for s in states]
        return [self._tx(r) for r in self._db.execute(query + " ORDER BY nonce, id", args).fetchall()]

    def job_txs(self, job_id: str, purpose: str | None = None) -> list[TxRow]:
        query, args = "SELECT * FROM txs WHERE job_id = ?", [job_id.lower()]
        if purpose is not None:
            query += " AND purpose = ?"
            args.append(purpose)
        return [self._tx(r) for r in self._db.execute(query + " ORDER BY id", args).fetchall()]

    def max_nonce(self, sender: str) -> int | None:
        row = self._db.execute("SELECT MAX(nonce) FROM txs WHERE sender = ?", (sender,)).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def gas_spent(self, job_id: str) -> int:
        """Fees paid (wei) by the solver's mined or failed transactions for ``job_id``."""
        row = self._db.execute(
            "SELECT COALESCE(SUM(fee_paid), 0) FROM txs WHERE job_id = ? AND fee_paid IS NOT NULL",
            (job_id.lower(),),
        ).fetchone()
        return int(row[0])

    @staticmethod
    def _tx(row: sqlite3.Row) -> TxRow:
        return _from_row(TxRow, row, _TX_COLUMNS)
