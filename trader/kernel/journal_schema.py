"""The journal's schema: the base (version 0, the first landing's tables) and ordered migrations.

``PRAGMA user_version`` is the version. Every open runs the same path -- base tables if missing,
then each migration above the stored version, each in its own ``BEGIN IMMEDIATE`` transaction
that also bumps the version -- so a fresh journal and a migrated one are built by the same code
(crash-only), several processes opening at once migrate exactly once (the version is re-read under
the write lock), and a migration that fails leaves the previous version intact.

Rules for a new migration: append (never edit or reorder one that has shipped), keep every row,
and add a test that opens a journal of the previous version.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TypeVar

from trader.kernel.errors import FlatguardError

T = TypeVar("T")

# Version 0: the schema of the first landing, verbatim (journals written by it are migrated).
SCHEMA_V0 = """
CREATE TABLE IF NOT EXISTS halt (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    halted INTEGER NOT NULL, reason TEXT, trigger TEXT, since REAL,
    verified_flat INTEGER NOT NULL DEFAULT 1, updated REAL
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, pid INTEGER, started REAL, ended REAL, clean INTEGER
);
CREATE TABLE IF NOT EXISTS killswitch_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, trigger TEXT, reason TEXT, started REAL, ended REAL,
    rounds INTEGER DEFAULT 0, result TEXT, counted INTEGER DEFAULT 1
);
CREATE TABLE IF NOT EXISTS orders (
    client_id TEXT PRIMARY KEY, symbol TEXT, side TEXT, type TEXT, amount REAL, price REAL,
    reduce_only INTEGER, created REAL, status TEXT, exchange_id TEXT, filled REAL DEFAULT 0,
    updated REAL, error TEXT
);
CREATE TABLE IF NOT EXISTS fills (
    trade_id TEXT PRIMARY KEY, client_id TEXT, order_id TEXT, symbol TEXT, side TEXT,
    amount REAL, price REAL, fee REAL, fee_currency TEXT, ts REAL
);
CREATE TABLE IF NOT EXISTS risk_day (
    id INTEGER PRIMARY KEY CHECK (id = 1), day INTEGER, start REAL, high REAL, tripped INTEGER
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL, channel TEXT, who TEXT, command TEXT,
    args TEXT, result TEXT, ok INTEGER
);
"""

# 1: fills keyed by (venue, symbol, trade_id): Binance's trade ids count per symbol, and two
# venues (or a simulator restarted in the same run dir) can reuse an id. Rows written before the
# venue was known get venue '' ("unknown"), which record_fill matches against any venue so a
# catch-up after the upgrade does not deliver an old fill twice.
_V1 = """
CREATE TABLE fills_v1 (
    venue TEXT NOT NULL, symbol TEXT NOT NULL, trade_id TEXT NOT NULL, client_id TEXT,
    order_id TEXT, side TEXT, amount REAL, price REAL, fee REAL, fee_currency TEXT, ts REAL,
    PRIMARY KEY (venue, symbol, trade_id)
);
INSERT INTO fills_v1 (venue, symbol, trade_id, client_id, order_id, side, amount, price, fee,
                      fee_currency, ts)
    SELECT '', COALESCE(symbol, ''), trade_id, client_id, order_id, side, amount, price, fee,
           fee_currency, ts FROM fills;
DROP TABLE fills;
ALTER TABLE fills_v1 RENAME TO fills;
"""

# 2: a fill whose key is known with different fields is kept as evidence (never pruned, like
# fills); settings every connection applies (the size cap is per connection in SQLite); an index
# for pruning the audit trail by age; the halt row exists from the start, so writing HALTED is an
# in-place update that still succeeds when the journal is at its size cap.
_V2 = """
CREATE TABLE fill_conflicts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, seen REAL, venue TEXT, symbol TEXT, trade_id TEXT,
    client_id TEXT, order_id TEXT, side TEXT, amount REAL, price REAL, fee REAL,
    fee_currency TEXT, ts REAL
);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
CREATE INDEX audit_ts ON audit (ts);
INSERT OR IGNORE INTO halt (id, halted, verified_flat) VALUES (1, 0, 1);
"""


def _script(sql: str) -> Callable[[sqlite3.Connection], None]:
    def run(db: sqlite3.Connection) -> None:
        for stmt in sql.split(";"):
            if stmt.strip():
                db.execute(stmt)
    return run


# MIGRATIONS[i] takes version i to version i + 1.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_script(_V1), _script(_V2)]
VERSION = len(MIGRATIONS)


class SchemaTooNew(FlatguardError):
    """The journal was written by a newer flatguard; this code must not touch it."""


def version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: sqlite3.Connection) -> list[int]:
    """Bring ``db`` (autocommit connection) to ``VERSION``; the versions applied, in order."""
    if version(db) > VERSION:
        raise SchemaTooNew(version(db))
    applied: list[int] = []
    _locked(db, lambda: _script(SCHEMA_V0)(db) if version(db) == 0 else None)
    while True:
        def step() -> int | None:
            v = version(db)  # re-read under the write lock: another process may have migrated
            if v > VERSION:
                raise SchemaTooNew(v)
            if v == VERSION:
                return None
            MIGRATIONS[v](db)
            db.execute(f"PRAGMA user_version = {v + 1}")
            return v + 1
        done = _locked(db, step)
        if done is None:
            return applied
        applied.append(done)


def _locked(db: sqlite3.Connection, fn: Callable[[], T]) -> T:
    db.execute("BEGIN IMMEDIATE")
    try:
        out = fn()
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return out
