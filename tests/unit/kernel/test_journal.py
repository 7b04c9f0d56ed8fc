"""The journal: schema versions and in-place migration, fill identity, the disk cap and pruning."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from trader.connector.feedsink import FeedSink
from trader.kernel import journal_schema, journal_space
from trader.kernel.journal import FillConflict, HaltState, Journal, JournalTooNew, JournalUnusable
from trader.kernel.metrics import METRICS

# The first landing's schema, verbatim (trader/journal.py at ca35551): journals written by it are
# version 0 and must open with every row kept. Never edit this string.
SCHEMA_V0_FIXTURE = """
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

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
FILL = {"client_id": "c1", "order_id": "42", "symbol": BTC, "side": "buy", "amount": 0.01,
        "price": 100.0, "fee": 0.01, "fee_currency": "USDT", "ts": 1.0}


def old_journal(path: Path) -> None:
    """A journal as the first landing left it, with a row in every table."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(SCHEMA_V0_FIXTURE)
    db.execute("INSERT INTO halt VALUES (1, 1, 'kill from phone', 'command', 5.0, 0, 6.0)")
    db.execute("INSERT INTO runs (pid, started, ended, clean) VALUES (11, 1.0, 2.0, 1)")
    db.execute("INSERT INTO killswitch_runs (trigger, reason, started, ended, rounds, result)"
               " VALUES ('command', 'kill', 5.0, 9.0, 3, 'verified')")
    db.execute("INSERT INTO orders (client_id, symbol, side, type, amount, price, reduce_only,"
               " created, status, exchange_id, filled, updated) VALUES"
               " ('c1', ?, 'buy', 'limit', 0.01, 100.0, 0, 1.0, 'closed', '42', 0.01, 2.0)", (BTC,))
    db.executemany("INSERT INTO fills VALUES (?, 'c1', '42', ?, 'buy', 0.01, 100.0, 0.01, 'USDT', ?)",
                   [("t1", BTC, 1.5), ("t2", BTC, 1.6), ("t3", ETH, 1.7)])
    db.execute("INSERT INTO risk_day VALUES (1, 20415, 10000.0, 10300.0, 1)")
    db.execute("INSERT INTO audit (ts, channel, who, command, args, result, ok)"
               " VALUES (3.0, 'ctl', 'me', 'kill', '[]', 'ok', 1)")
    db.commit()
    db.close()


def tables(path: Path) -> dict[str, str]:
    with sqlite3.connect(path) as db:
        return dict(db.execute("SELECT name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"))


# --- schema version and migration ---------------------------------------------------------------


def test_journal_of_todays_schema_is_migrated_in_place(tmp_path: Path) -> None:
    p = tmp_path / "journal.db"
    old_journal(p)
    j = Journal(p)
    assert j.schema_version() == journal_schema.VERSION
    h = j.halt_state()
    assert (h.halted, h.reason, h.trigger, h.since, h.verified_flat) == (
        True, "kill from phone", "command", 5.0, False)
    assert j.order("c1")["filled"] == 0.01
    assert j.risk_day() == (20415, 10_000.0, 10_300.0, True)
    assert j.recent_audit(5)[0]["command"] == "kill"
    assert j.count("runs") == 1 and j.count("killswitch_runs") == 1 and j.count("fills") == 3
    assert j.db.execute("SELECT venue, symbol, trade_id, ts FROM fills ORDER BY trade_id").fetchall() \
        == [("", BTC, "t1", 1.5), ("", BTC, "t2", 1.6), ("", ETH, "t3", 1.7)]
    # the new schema applies: fills keyed by venue too, and everything else works
    assert j.record_fill("t1", "c9", "43", ETH, "sell", 1.0, 2.0, 0.0, "USDT", 9.0, venue="binanceusdm")
    assert not j.record_fill("t1", **{**FILL, "ts": 7.0}, venue="binanceusdm")  # the old row, seen again
    with pytest.raises(FillConflict):
        j.record_fill("t2", **{**FILL, "amount": 0.02}, venue="binanceusdm")
    j.audit("ctl", "me", "info", [], "ok", True)
    j.close()
    assert tables(p) == tables(_fresh(tmp_path))  # migrated == created by this code


def _fresh(tmp_path: Path) -> Path:
    d = tmp_path / "fresh"
    d.mkdir()
    Journal(d / "journal.db").close()
    return d / "journal.db"


def test_migration_runs_once_and_reopening_changes_nothing(tmp_path: Path) -> None:
    p = tmp_path / "journal.db"
    old_journal(p)
    with sqlite3.connect(p) as db:
        assert journal_schema.migrate(db) == list(range(1, journal_schema.VERSION + 1))
        assert journal_schema.migrate(db) == []
    j = Journal(p)
    assert j.count("fills") == 3 and j.schema_version() == journal_schema.VERSION


def test_failed_migration_keeps_the_previous_version_and_rows(tmp_path: Path, monkeypatch) -> None:
    p = tmp_path / "journal.db"
    old_journal(p)

    def broken(db: sqlite3.Connection) -> None:
        db.execute("DELETE FROM fills")
        db.execute("SELECT * FROM no_such_table")

    monkeypatch.setattr(journal_schema, "MIGRATIONS", [journal_schema.MIGRATIONS[0], broken])
    monkeypatch.setattr(journal_schema, "VERSION", 2)
    with pytest.raises(JournalUnusable):
        Journal(p)
    with sqlite3.connect(p) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1
        assert db.execute("SELECT COUNT(*) FROM fills").fetchone()[0] == 3


def test_journal_from_a_newer_flatguard_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "journal.db"
    Journal(p).close()
    with sqlite3.connect(p) as db:
        db.execute(f"PRAGMA user_version = {journal_schema.VERSION + 1}")
    with pytest.raises(JournalTooNew, match=r"newer than this flatguard knows") as e:
        Journal(p)
    assert isinstance(e.value, JournalUnusable)  # the supervisor's fail-closed path applies


# --- fills: (venue, symbol, trade id), duplicates compared field by field ---------------------------


def test_fills_are_keyed_by_venue_symbol_and_trade_id(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal.db")
    assert j.record_fill("7", **FILL, venue="binanceusdm")
    assert j.record_fill("7", **{**FILL, "symbol": ETH}, venue="binanceusdm")  # ids count per symbol
    assert j.record_fill("7", **FILL, venue="sim")
    assert j.count("fills") == 3


def test_genuine_duplicate_is_quiet_and_float_noise_is_tolerated(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal.db")
    assert j.record_fill("7", **FILL, venue="sim")
    assert not j.record_fill("7", **FILL, venue="sim")
    noisy = {**FILL, "amount": 0.1 + 0.2 - 0.29, "price": 100.00000000000001, "ts": 2.0, "fee": 0.0}
    assert j.record_fill("8", **{**FILL, "amount": 0.01}, venue="sim")
    assert not j.record_fill("8", **{**noisy, "amount": 0.010000000000000009}, venue="sim")
    # a REST catch-up may not know the client id the WebSocket gave
    assert not j.record_fill("7", **{**FILL, "client_id": None}, venue="sim")
    assert j.count("fill_conflicts") == 0


@pytest.mark.parametrize("field,value", [("side", "sell"), ("amount", 0.02), ("price", 101.0),
                                         ("order_id", "43"), ("client_id", "c2")])
def test_a_different_fill_under_a_known_key_is_a_conflict(tmp_path: Path, field: str,
                                                          value: Any) -> None:
    j = Journal(tmp_path / "journal.db")
    assert j.record_fill("7", **FILL, venue="sim")
    with pytest.raises(FillConflict, match=field) as e:
        j.record_fill("7", **{**FILL, field: value}, venue="sim")
    assert e.value.key == ("sim", BTC, "7") and set(e.value.differences) == {field}
    assert j.count("fills") == 1 and j.count("fill_conflicts") == 1  # evidence kept


class _Pub:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def publish(self, topic: str, data: dict[str, Any]) -> bool:
        self.sent.append((topic, data))
        return True


def _sink(journal: Journal, venue: str = "sim") -> tuple[FeedSink, _Pub]:
    pub = _Pub()
    return FeedSink(SimpleNamespace(orders={}), pub, journal, venue), pub  # type: ignore[arg-type]


def _trade(tid: str, amount: float = 0.01, order: str = "42") -> dict[str, Any]:
    return {"id": tid, "order": order, "info": {"c": "c1"}, "symbol": BTC, "side": "buy",
            "amount": amount, "price": 100.0, "fee": {"cost": 0.01, "currency": "USDT"},
            "timestamp": 1000}


def _conflicts() -> float:
    return sum(v for n, _, v in METRICS.samples() if n == "flatguard_fill_conflicts_total")


def test_feed_fills_reach_the_strategy_once_and_conflicts_are_loud(tmp_path: Path, caplog) -> None:
    j = Journal(tmp_path / "journal.db")
    sink, pub = _sink(j)
    sink.on_trade(_trade("500000001"))
    sink.on_trade(_trade("500000001"))  # a reconnect's catch-up: not delivered twice
    assert [d["trade_id"] for _, d in pub.sent] == ["500000001"]
    assert j.db.execute("SELECT venue FROM fills").fetchall() == [("sim",)]
    before = _conflicts()
    sink.on_trade(_trade("500000001", amount=0.5, order="99"))  # a restarted sim reused the id
    assert len(pub.sent) == 2 and pub.sent[1][1]["amount"] == 0.5  # still delivered ...
    assert _conflicts() == before + 1  # ... counted ...
    assert any(r.levelname == "ERROR" and "fill_conflict" in r.getMessage() for r in caplog.records)


def test_second_sim_run_in_the_same_run_dir_delivers_every_fill(tmp_path: Path) -> None:
    p = tmp_path / "journal.db"
    old_journal(p)  # a run before the upgrade recorded t1..t3 without a venue
    j = Journal(p)
    sink, pub = _sink(j)
    for tid in ("t4", "t5"):  # the next run's ids (the simulator no longer repeats them)
        sink.on_trade(_trade(tid))
    sink.on_trade({**_trade("t3"), "symbol": BTC})  # same id as an old ETH fill: another symbol
    assert [d["trade_id"] for _, d in pub.sent] == ["t4", "t5", "t3"]


def test_journal_failure_on_a_fill_still_delivers_it(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal.db")
    journal_space.fill_to_cap(j.db)
    sink, pub = _sink(j)
    sink.on_trade(_trade("1"))
    assert [d["trade_id"] for _, d in pub.sent] == ["1"] and j.journal_errors == 1


# --- the disk cap ------------------------------------------------------------------------------------


def test_cap_is_sqlites_own_and_fails_with_disk_full(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal.db", max_bytes=64 * 1024)
    n = 0
    with pytest.raises(sqlite3.OperationalError, match="database or disk is full"):
        while True:
            j.audit("ctl", "me", "info", ["x" * 500], "ok", True)
            n += 1
    assert 0 < n < 200 and j.journal_errors == 1
    assert (tmp_path / "journal.db").stat().st_size <= 64 * 1024
    # at the cap: writing HALTED is an in-place update of the reserved row and still works ...
    j.set_halt(HaltState(True, "kill " * 100, "command", 1.0, False))
    assert j.halt_state().halted
    # ... a DELETE works and the freed pages are reused without VACUUM
    j.db.execute("DELETE FROM audit WHERE id <= 20")
    j.audit("ctl", "me", "info", ["x" * 500], "ok", True)


def test_cap_below_the_current_size_is_clamped_and_nothing_is_lost(tmp_path: Path) -> None:
    p = tmp_path / "journal.db"
    j = Journal(p)
    for i in range(300):
        j.record_fill(str(i), **FILL, venue="sim")
    size = j.used_bytes()
    j.close()
    j = Journal(p, max_bytes=4096)
    assert j.cap_bytes >= size and j.count("fills") == 300
    with pytest.raises(sqlite3.OperationalError, match="disk is full"):
        for i in range(300, 400):
            j.record_fill(str(i), **FILL, venue="sim")


def test_the_cap_is_shared_by_every_connection(tmp_path: Path) -> None:
    p = tmp_path / "journal.db"
    Journal(p, max_bytes=1 << 20, keep_days=7.0).close()
    j = Journal(p)  # a child process opening without the config
    assert (j.max_bytes, j.keep_days) == (1 << 20, 7.0)
    assert int(j.db.execute("PRAGMA max_page_count").fetchone()[0]) * 4096 == 1 << 20


def test_fill_to_cap_makes_every_insert_fail(tmp_path: Path) -> None:
    """The helper for kill-switch tests: a real "database or disk is full" on each INSERT."""
    j = Journal(tmp_path / "journal.db")
    j.start_run(1)
    assert journal_space.fill_to_cap(j.db) > 0
    for write in (lambda: j.start_killswitch("command", "kill"),
                  lambda: j.audit("ctl", "me", "kill", [], "ok", True),
                  lambda: j.record_intent("c1", BTC, "buy", "market", 0.01, None, False),
                  lambda: j.record_fill("t1", **FILL, venue="sim")):
        with pytest.raises(sqlite3.OperationalError, match="database or disk is full"):
            write()
    j.set_halt(HaltState(True, "kill", "command", 1.0, False))  # in place: still works
    j.end_run(1)


# --- pruning -----------------------------------------------------------------------------------------


def test_prune_by_age_keeps_orders_fills_halt_and_the_last_run(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal.db", keep_days=30.0)
    now = time.time()
    old = now - 31 * 86400
    j.set_halt(HaltState(True, "old halt", "command", old, False))
    j.record_intent("c1", BTC, "buy", "market", 0.01, None, False)
    j.record_fill("t1", **{**FILL, "ts": old}, venue="sim")
    j.db.execute("INSERT INTO audit (ts, channel, who, command, args, result, ok)"
                 " VALUES (?, 'ctl', 'me', 'info', '[]', 'ok', 1)", (old,))
    j.audit("ctl", "me", "info", [], "ok", True)
    j.db.execute("INSERT INTO killswitch_runs (trigger, started, ended) VALUES ('old', ?, ?)",
                 (old, old))
    j.db.execute("INSERT INTO killswitch_runs (trigger, started) VALUES ('running', ?)", (old,))
    j.db.execute("INSERT INTO runs (pid, started, ended, clean) VALUES (1, ?, ?, 1)", (old, old))
    j.db.execute("INSERT INTO runs (pid, started, clean) VALUES (2, ?, 0)", (old,))  # the last one
    j.db.execute("UPDATE orders SET created = ?, updated = ?", (old, old))
    r = j.prune(now)
    assert r.deleted == {"audit": 1, "killswitch_runs": 1, "runs": 1} and not r.full
    assert j.count("audit") == 1 and j.count("orders") == 1 and j.count("fills") == 1
    assert j.db.execute("SELECT trigger FROM killswitch_runs").fetchall() == [("running",)]
    assert j.last_run_unclean() and j.halt_state().reason == "old halt"
    assert j.prune(now).total == 0


def test_prune_by_size_deletes_the_oldest_prunable_rows_only(tmp_path: Path) -> None:
    cap = 512 * 1024
    j = Journal(tmp_path / "journal.db", max_bytes=cap)
    for i in range(200):
        j.record_fill(str(i), **FILL, venue="sim")
    i = 0
    while j.used_bytes() <= 0.85 * cap:
        j.audit("tg", f"tg:{i}", "start", ["x" * 400], "unauthorised: ignored", False)
        i += 1
    r = j.prune()
    assert r.used_bytes < journal_space.LOW * cap and not r.full
    assert set(r.deleted) == {"audit"} and j.count("fills") == 200
    newest = j.recent_audit(1)[0]["who"]
    assert newest == f"tg:{i - 1}"  # the oldest went first


def test_prune_says_full_when_only_orders_and_fills_are_left(tmp_path: Path) -> None:
    cap = 256 * 1024
    j = Journal(tmp_path / "journal.db", max_bytes=cap)
    i = 0
    while j.used_bytes() <= 0.85 * cap:
        j.record_fill(str(i), **{**FILL, "fee_currency": "x" * 300}, venue="sim")
        i += 1
    r = j.prune()
    assert r.full and r.total == 0 and j.count("fills") == i


def test_query_only_makes_even_the_halt_write_fail(tmp_path: Path) -> None:
    """For a test of "HALTED write failed, flatten anyway": the cap cannot fail the in-place
    halt update, a read-only connection can (a real sqlite3.OperationalError as well)."""
    j = Journal(tmp_path / "journal.db")
    j.db.execute("PRAGMA query_only = ON")
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        j.set_halt(HaltState(True, "kill", "command", 1.0, False))
    assert j.journal_errors == 1 and not j.halt_state().halted
