"""The one durable record: halt state, runs, kill-switch runs, order intents, fills, commands.

SQLite in WAL mode so several processes can write (each opens its own connection) while readers
never block writers. The halt state is written with ``synchronous=FULL``: it must be on disk
before the first exchange call of a kill. Order intents and fills use ``NORMAL`` (durable across
a process crash, which is the failure that matters; an fsync per order would cost the hot path).

Fail closed: a journal that is corrupt or unreadable, or missing where a previous run left one,
is reported as ``JournalUnusable``; the supervisor treats that as HALTED.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
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

MARKER = ".journal-created"


class JournalUnusable(RuntimeError):
    """The journal cannot be trusted. Policy: fail closed (HALTED) and tell the person how to fix it."""


@dataclass(frozen=True)
class HaltState:
    halted: bool
    reason: str = ""
    trigger: str = ""
    since: float = 0.0
    verified_flat: bool = True


class Journal:
    def __init__(self, path: Path, create: bool = True) -> None:
        self.path = path
        marker = path.parent / MARKER
        if not path.exists() and marker.exists():
            raise JournalUnusable(
                f"journal {path} is missing but a previous run created one "
                f"({marker} exists); restore it, or if the account is verified flat on the "
                f"exchange, delete {marker} to start fresh"
            )
        if not path.exists() and not create:
            raise JournalUnusable(f"journal {path} does not exist")
        try:
            self.db = sqlite3.connect(path, timeout=10.0, isolation_level=None,
                                      check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA busy_timeout=10000")
            ok = self.db.execute("PRAGMA quick_check").fetchone()[0]
            if ok != "ok":
                raise sqlite3.DatabaseError(ok)
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as e:
            raise JournalUnusable(
                f"journal {path} is unreadable or corrupt ({e}); inspect it with "
                f"`sqlite3 {path} .dump`, then move it aside (mv {path} {path}.bad) once the "
                "account is verified flat on the exchange"
            ) from None
        marker.touch(exist_ok=True)

    def close(self) -> None:
        self.db.close()

    # --- halt state -------------------------------------------------------------------------

    def halt_state(self) -> HaltState:
        row = self.db.execute(
            "SELECT halted, reason, trigger, since, verified_flat FROM halt WHERE id = 1"
        ).fetchone()
        if row is None:
            return HaltState(False)
        return HaltState(bool(row[0]), row[1] or "", row[2] or "", row[3] or 0.0, bool(row[4]))

    def set_halt(self, state: HaltState) -> None:
        """Durable before return (fsync): the kill switch calls this before any exchange call."""
        self.db.execute("PRAGMA synchronous=FULL")
        try:
            self.db.execute(
                "INSERT INTO halt (id, halted, reason, trigger, since, verified_flat, updated) "
                "VALUES (1, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET halted=excluded.halted,"
                " reason=excluded.reason, trigger=excluded.trigger, since=excluded.since,"
                " verified_flat=excluded.verified_flat, updated=excluded.updated",
                (int(state.halted), state.reason, state.trigger, state.since,
                 int(state.verified_flat), time.time()),
            )
        finally:
            self.db.execute("PRAGMA synchronous=NORMAL")

    # --- runs -------------------------------------------------------------------------------

    def last_run_unclean(self) -> bool:
        row = self.db.execute("SELECT clean FROM runs ORDER BY id DESC LIMIT 1").fetchone()
        return row is not None and not row[0]

    def start_run(self, pid: int) -> int:
        cur = self.db.execute("INSERT INTO runs (pid, started, clean) VALUES (?, ?, 0)",
                              (pid, time.time()))
        return int(cur.lastrowid or 0)

    def end_run(self, run_id: int) -> None:
        self.db.execute("UPDATE runs SET ended = ?, clean = 1 WHERE id = ?", (time.time(), run_id))

    # --- kill switch ------------------------------------------------------------------------

    def start_killswitch(self, trigger: str, reason: str, counted: bool = True) -> int:
        cur = self.db.execute(
            "INSERT INTO killswitch_runs (trigger, reason, started, counted) VALUES (?, ?, ?, ?)",
            (trigger, reason, time.time(), int(counted)),
        )
        return int(cur.lastrowid or 0)

    def killswitch_round(self, run_id: int) -> None:
        self.db.execute("UPDATE killswitch_runs SET rounds = rounds + 1 WHERE id = ?", (run_id,))

    def end_killswitch(self, run_id: int, result: str) -> None:
        self.db.execute("UPDATE killswitch_runs SET ended = ?, result = ? WHERE id = ?",
                        (time.time(), result, run_id))

    # --- orders and fills -------------------------------------------------------------------

    def record_intent(self, client_id: str, symbol: str, side: str, type_: str, amount: float,
                      price: float | None, reduce_only: bool) -> None:
        self.db.execute(
            "INSERT OR IGNORE INTO orders (client_id, symbol, side, type, amount, price, reduce_only,"
            " created, status, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'intent', ?)",
            (client_id, symbol, side, type_, amount, price, int(reduce_only), time.time(), time.time()),
        )

    def update_order(self, client_id: str, status: str, exchange_id: str | None = None,
                     filled: float | None = None, error: str | None = None) -> None:
        self.db.execute(
            "UPDATE orders SET status = ?, exchange_id = COALESCE(?, exchange_id),"
            " filled = COALESCE(?, filled), error = COALESCE(?, error), updated = ?"
            " WHERE client_id = ?",
            (status, exchange_id, filled, error, time.time(), client_id),
        )

    def order(self, client_id: str) -> dict[str, Any] | None:
        cur = self.db.execute("SELECT * FROM orders WHERE client_id = ?", (client_id,))
        row = cur.fetchone()
        return dict(zip([d[0] for d in cur.description], row, strict=True)) if row else None

    def record_fill(self, trade_id: str, client_id: str | None, order_id: str | None, symbol: str,
                    side: str, amount: float, price: float, fee: float, fee_currency: str,
                    ts: float) -> bool:
        cur = self.db.execute(
            "INSERT OR IGNORE INTO fills VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (trade_id, client_id, order_id, symbol, side, amount, price, fee, fee_currency, ts),
        )
        return cur.rowcount > 0

    def count(self, table: str) -> int:
        assert table in {"orders", "fills", "audit", "killswitch_runs", "runs"}
        return int(self.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    # --- the loss breaker's day (survives a trader restart) ----------------------------------

    def risk_day(self) -> tuple[int, float, float, bool] | None:
        row = self.db.execute("SELECT day, start, high, tripped FROM risk_day WHERE id = 1").fetchone()
        return None if row is None else (int(row[0]), float(row[1]), float(row[2]), bool(row[3]))

    def set_risk_day(self, day: int, start: float, high: float, tripped: bool) -> None:
        self.db.execute(
            "INSERT INTO risk_day (id, day, start, high, tripped) VALUES (1, ?, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET day=excluded.day, start=excluded.start,"
            " high=excluded.high, tripped=excluded.tripped", (day, start, high, int(tripped)))

    # --- audit ------------------------------------------------------------------------------

    def audit(self, channel: str, who: str, command: str, args: Any, result: str, ok: bool) -> None:
        self.db.execute(
            "INSERT INTO audit (ts, channel, who, command, args, result, ok) VALUES (?,?,?,?,?,?,?)",
            (time.time(), channel, who, command, json.dumps(args, default=str), result, int(ok)),
        )

    def recent_audit(self, n: int) -> list[dict[str, Any]]:
        cur = self.db.execute(
            "SELECT ts, channel, who, command, args, result, ok FROM audit ORDER BY id DESC LIMIT ?",
            (n,),
        )
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()][::-1]
