"""The one durable record: halt state, runs, kill-switch runs, order intents, fills, commands.

SQLite in WAL mode so several processes can write (each opens its own connection) while readers
never block writers. The halt state is written with ``synchronous=FULL``: it must be on disk
before the first exchange call of a kill. Order intents and fills use ``NORMAL`` (durable across
a process crash, which is the failure that matters; an fsync per order would cost the hot path).

Fail closed: a journal that is corrupt or unreadable, or missing where a previous run left one,
is reported as ``JournalUnusable``; one written by a newer flatguard as ``JournalTooNew`` (a
``JournalUnusable``); the supervisor treats both as HALTED. Schema and migrations:
``trader.kernel.journal_schema``; the size cap and pruning: ``trader.kernel.journal_space``.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trader.kernel import journal_schema, journal_space
from trader.kernel.errors import FlatguardError
from trader.kernel.journal_space import PruneReport

MARKER = ".journal-created"
MAX_REASON = 2000  # chars: HALTED is an in-place update of the halt row, kept small enough to fit


class JournalUnusable(FlatguardError, RuntimeError):
    """The journal cannot be trusted. Policy: fail closed (HALTED) and tell the person how to fix it."""


class JournalTooNew(JournalUnusable):
    """The journal's schema is newer than this code knows (a downgrade). Policy: fail closed;
    never write to it (an older schema's writes could lose what the newer one keeps)."""


class FillConflict(FlatguardError):
    """The journal holds this fill's key (venue, symbol, trade id) with different fields: the
    venue reused a trade id (e.g. a simulator restarted in the same run dir) or reported a trade
    two ways. Policy: never silent -- log at ERROR, count ``flatguard_fill_conflicts_total``, and
    still deliver the fill (it came from the exchange; inventory is reconciled against REST).
    The journal keeps the first row and the new one in ``fill_conflicts``."""

    def __init__(self, key: tuple[str, str, str], differences: dict[str, tuple[Any, Any]]) -> None:
        diff = ", ".join(f"{k}: journal {a!r} vs new {b!r}" for k, (a, b) in differences.items())
        super().__init__(f"fill {key} conflicts with the journal ({diff})")
        self.key = key
        self.differences = differences


@dataclass(frozen=True)
class HaltState:
    halted: bool
    reason: str = ""
    trigger: str = ""
    since: float = 0.0
    verified_flat: bool = True


# Compared when a fill's key is already in the journal. Ids compare only when both sides know
# them (a REST catch-up may lack the client id the WebSocket gave); numbers up to float noise.
_FILL_COLS = ("client_id", "order_id", "side", "amount", "price", "fee", "fee_currency", "ts")
_IDS, _NUMS = ("order_id", "client_id"), ("amount", "price")


def _differences(stored: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    out: dict[str, tuple[Any, Any]] = {}
    if stored["side"] != new["side"]:
        out["side"] = (stored["side"], new["side"])
    for k in _NUMS:
        a, b = stored[k], new[k]
        if a is None or b is None or not math.isclose(float(a), float(b), rel_tol=1e-9,
                                                      abs_tol=1e-12):
            out[k] = (a, b)
    for k in _IDS:
        if stored[k] and new[k] and str(stored[k]) != str(new[k]):
            out[k] = (stored[k], new[k])
    return out


class Journal:
    """``max_bytes``/``keep_days`` (``[journal]``) are stored in the journal, so every process's
    connection applies the same cap even when opened without them; the default is the config's
    default. ``journal_errors`` counts writes that failed on this connection."""

    def __init__(self, path: Path, create: bool = True, *, max_bytes: int | None = None,
                 keep_days: float | None = None) -> None:
        self.path = path
        self.journal_errors = 0
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
            # migrations run before the cap: rebuilding a table needs room for a second copy
            journal_schema.migrate(self.db)
        except journal_schema.SchemaTooNew as e:
            self.db.close()
            raise JournalTooNew(
                f"journal {path} has schema version {e.args[0]}, newer than this flatguard knows "
                f"({journal_schema.VERSION}): run the flatguard that wrote it (upgrade), or, once "
                f"the account is verified flat on the exchange, move it aside "
                f"(mv {path} {path}.newer)") from None
        except sqlite3.DatabaseError as e:
            raise JournalUnusable(
                f"journal {path} is unreadable or corrupt ({e}); inspect it with "
                f"`sqlite3 {path} .dump`, then move it aside (mv {path} {path}.bad) once the "
                "account is verified flat on the exchange"
            ) from None
        self.max_bytes = self._setting("max_bytes", max_bytes, journal_space.DEFAULT_MAX_BYTES)
        self.keep_days = self._setting("keep_days", keep_days, journal_space.DEFAULT_KEEP_DAYS)
        self.cap_bytes = journal_space.apply_cap(self.db, int(self.max_bytes))
        self._legacy_fills = self.db.execute(
            "SELECT 1 FROM fills WHERE venue = '' LIMIT 1").fetchone() is not None
        marker.touch(exist_ok=True)

    def _setting(self, key: str, given: float | None, default: float) -> float:
        if given is not None:
            try:
                self._write("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO "
                            "UPDATE SET value = excluded.value", (key, repr(given)))
            except sqlite3.Error:
                pass  # counted; this connection still uses the given value
            return given
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return float(row[0]) if row else default

    def _write(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        try:
            return self.db.execute(sql, params)
        except sqlite3.Error:
            self.journal_errors += 1
            raise

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
            self._write(
                "INSERT INTO halt (id, halted, reason, trigger, since, verified_flat, updated) "
                "VALUES (1, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET halted=excluded.halted,"
                " reason=excluded.reason, trigger=excluded.trigger, since=excluded.since,"
                " verified_flat=excluded.verified_flat, updated=excluded.updated",
                (int(state.halted), state.reason[:MAX_REASON], state.trigger[:200], state.since,
                 int(state.verified_flat), time.time()),
            )
        finally:
            self.db.execute("PRAGMA synchronous=NORMAL")

    # --- runs -------------------------------------------------------------------------------

    def last_run_unclean(self) -> bool:
        row = self.db.execute("SELECT clean FROM runs ORDER BY id DESC LIMIT 1").fetchone()
        return row is not None and not row[0]

    def start_run(self, pid: int) -> int:
        cur = self._write("INSERT INTO runs (pid, started, clean) VALUES (?, ?, 0)",
                          (pid, time.time()))
        return int(cur.lastrowid or 0)

    def end_run(self, run_id: int) -> None:
        self._write("UPDATE runs SET ended = ?, clean = 1 WHERE id = ?", (time.time(), run_id))

    # --- kill switch ------------------------------------------------------------------------

    def start_killswitch(self, trigger: str, reason: str, counted: bool = True) -> int:
        cur = self._write(
            "INSERT INTO killswitch_runs (trigger, reason, started, counted) VALUES (?, ?, ?, ?)",
            (trigger, reason, time.time(), int(counted)),
        )
        return int(cur.lastrowid or 0)

    def killswitch_round(self, run_id: int) -> None:
        self._write("UPDATE killswitch_runs SET rounds = rounds + 1 WHERE id = ?", (run_id,))

    def end_killswitch(self, run_id: int, result: str) -> None:
        self._write("UPDATE killswitch_runs SET ended = ?, result = ? WHERE id = ?",
                        (time.time(), result, run_id))

    # --- orders and fills -------------------------------------------------------------------

    def record_intent(self, client_id: str, symbol: str, side: str, type_: str, amount: float,
                      price: float | None, reduce_only: bool) -> None:
        self._write(
            "INSERT OR IGNORE INTO orders (client_id, symbol, side, type, amount, price, reduce_only,"
            " created, status, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'intent', ?)",
            (client_id, symbol, side, type_, amount, price, int(reduce_only), time.time(), time.time()),
        )

    def update_order(self, client_id: str, status: str, exchange_id: str | None = None,
                     filled: float | None = None, error: str | None = None) -> None:
        self._write(
            "UPDATE orders SET status = ?, exchange_id = COALESCE(?, exchange_id),"
            " filled = COALESCE(?, filled), error = COALESCE(?, error), updated = ?"
            " WHERE client_id = ?",
            (status, exchange_id, filled, error, time.time(), client_id),
        )

    def order(self, client_id: str) -> dict[str, Any] | None:
        cur = self.db.execute("SELECT * FROM orders WHERE client_id = ?", (client_id,))
        row = cur.fetchone()
        return dict(zip([d[0] for d in cur.description], row, strict=True)) if row else None

    def client_id_of(self, exchange_id: str) -> str | None:
        """The client id of the order the exchange knows as ``exchange_id``, if journaled."""
        row = self.db.execute("SELECT client_id FROM orders WHERE exchange_id = ?",
                              (exchange_id,)).fetchone()
        return row[0] if row else None

    def record_fill(self, trade_id: str, client_id: str | None, order_id: str | None, symbol: str,
                    side: str, amount: float, price: float, fee: float, fee_currency: str,
                    ts: float, *, venue: str) -> bool:
        """True if the fill is new; False for a genuine duplicate (same fields: a reconnect or a
        catch-up saw it again). Raises ``FillConflict`` when the key is known with different
        fields. ``venue`` is ``exchange.id``; '' (unknown) is what rows from before schema 1
        have, and such a row matches a fill of any venue with the same symbol and trade id."""
        new = {"client_id": client_id, "order_id": order_id, "side": side, "amount": amount,
               "price": price, "fee": fee, "fee_currency": fee_currency, "ts": ts}
        key = (venue, str(symbol), str(trade_id))
        stored = self._fill(("", key[1], key[2])) if self._legacy_fills and venue else None
        if stored is None:
            cur = self._write(
                "INSERT INTO fills (venue, symbol, trade_id, client_id, order_id, side, amount,"
                " price, fee, fee_currency, ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (venue, symbol, trade_id) DO NOTHING",
                (*key, client_id, order_id, side, amount, price, fee, fee_currency, ts))
            if cur.rowcount > 0:
                return True
            stored = self._fill(key)
            assert stored is not None, key
        diff = _differences(stored, new)
        if not diff:
            return False
        try:  # the evidence; a full journal must not turn a conflict into a different error
            self._write(
                "INSERT INTO fill_conflicts (seen, venue, symbol, trade_id, client_id, order_id,"
                " side, amount, price, fee, fee_currency, ts) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (time.time(), *key, *(new[c] for c in _FILL_COLS)))
        except sqlite3.Error:
            pass  # counted in journal_errors
        raise FillConflict(key, diff)

    def _fill(self, key: tuple[str, str, str]) -> dict[str, Any] | None:
        row = self.db.execute(f"SELECT {', '.join(_FILL_COLS)} FROM fills WHERE venue = ? AND"
                              " symbol = ? AND trade_id = ?", key).fetchone()
        return None if row is None else dict(zip(_FILL_COLS, row, strict=True))

    def count(self, table: str) -> int:
        assert table in {"orders", "fills", "audit", "killswitch_runs", "runs", "fill_conflicts"}
        return int(self.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    # --- the loss breaker's day (survives a trader restart) ----------------------------------

    def risk_day(self) -> tuple[int, float, float, bool] | None:
        row = self.db.execute("SELECT day, start, high, tripped FROM risk_day WHERE id = 1").fetchone()
        return None if row is None else (int(row[0]), float(row[1]), float(row[2]), bool(row[3]))

    def set_risk_day(self, day: int, start: float, high: float, tripped: bool) -> None:
        self._write(
            "INSERT INTO risk_day (id, day, start, high, tripped) VALUES (1, ?, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET day=excluded.day, start=excluded.start,"
            " high=excluded.high, tripped=excluded.tripped", (day, start, high, int(tripped)))

    # --- audit ------------------------------------------------------------------------------

    def audit(self, channel: str, who: str, command: str, args: Any, result: str, ok: bool) -> None:
        self._write(
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

    # --- disk budget ------------------------------------------------------------------------

    def prune(self, now: float | None = None) -> PruneReport:
        """Delete audit rows, finished kill-switch runs and old run rows older than keep_days,
        then the oldest of them while the journal is above 80 % of max_bytes (down to 70 %).
        Never orders, fills or the halt row. Cheap when there is nothing to do: call it at
        start-up and periodically (e.g. hourly) from one process."""
        try:
            return journal_space.prune(self.db, int(self.max_bytes), self.keep_days, now)
        except sqlite3.Error:
            self.journal_errors += 1
            raise

    def used_bytes(self) -> int:
        return journal_space.used_bytes(self.db)

    def schema_version(self) -> int:
        return journal_schema.version(self.db)
