"""Keeping the journal inside its disk budget: SQLite's own page cap, and pruning.

The cap is ``PRAGMA max_page_count``, so a write past it fails inside SQLite with
``sqlite3.OperationalError: database or disk is full`` and the disk itself never fills. Measured
on SQLite 3.40 (pinned by tests/test_journal.py):

- The cap is per connection and not stored in the file: a connection without it can grow the
  file past another's cap. So the journal stores it (``meta``) and every ``Journal`` applies it.
- A cap below the current size is clamped to the current page count (the pragma returns the
  effective value): nothing is lost, the file just cannot grow.
- At the cap: a write that needs a new page fails; an INSERT that fits in a page with room, an
  UPDATE that does not grow its row, and DELETE all succeed. Freed pages are reused at once
  (no VACUUM needed; the file never shrinks). That is why the halt row exists from the start:
  writing HALTED is an in-place update that still works on a full journal.
- The WAL file is not counted: it holds changed pages until a checkpoint (auto every 1000 pages,
  ~4 MiB) and is truncated to ``journal_size_limit`` afterwards; a reader pinning an old snapshot
  lets it grow (10 MB over a 1 MB database in a test). Disk use is max_bytes + the WAL.

``prune`` deletes only audit rows, finished kill-switch runs and old run rows: never orders,
fills, fill conflicts, the halt row or the loss breaker's day.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field

DEFAULT_MAX_BYTES = 256 * 1024 * 1024  # [journal] max_bytes
DEFAULT_KEEP_DAYS = 30.0  # [journal] keep_days
WAL_LIMIT = 8 * 1024 * 1024  # journal_size_limit: the WAL is truncated to this after a checkpoint
HIGH, LOW = 0.80, 0.70  # prune when used space is above HIGH x max_bytes, down to LOW
BATCH = 500  # rows per DELETE: short write locks, the connector writes fills meanwhile

# Oldest first within each; the tables are tried in this order when space is short.
# (table, "older than cutoff" condition, extra condition that keeps what must stay)
PRUNABLE: tuple[tuple[str, str, str], ...] = (
    ("audit", "ts < :cutoff", "1"),
    ("killswitch_runs", "ended < :cutoff", "ended IS NOT NULL"),
    ("runs", "started < :cutoff", "id < (SELECT MAX(id) FROM runs)"),  # the last one says
)                                                                     # whether it ended clean


@dataclass
class PruneReport:
    deleted: dict[str, int] = field(default_factory=dict)
    used_bytes: int = 0
    max_bytes: int = 0
    full: bool = False  # above HIGH with nothing prunable left: orders and fills fill it

    @property
    def total(self) -> int:
        return sum(self.deleted.values())


def apply_cap(db: sqlite3.Connection, max_bytes: int) -> int:
    """Cap this connection at ``max_bytes``; returns the effective cap in bytes (never below
    the current size, see the module docstring)."""
    page = int(db.execute("PRAGMA page_size").fetchone()[0])
    pages = int(db.execute(f"PRAGMA max_page_count = {max(1, max_bytes // page)}").fetchone()[0])
    db.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT}")
    return pages * page


def used_bytes(db: sqlite3.Connection) -> int:
    """Bytes in use (pages minus free pages): what pruning lowers; the file size does not move."""
    page = int(db.execute("PRAGMA page_size").fetchone()[0])
    count = int(db.execute("PRAGMA page_count").fetchone()[0])
    free = int(db.execute("PRAGMA freelist_count").fetchone()[0])
    return (count - free) * page


def prune(db: sqlite3.Connection, max_bytes: int, keep_days: float,
          now: float | None = None) -> PruneReport:
    """Delete prunable rows older than ``keep_days``; then, while the journal uses more than
    HIGH x ``max_bytes``, the oldest prunable rows until it uses less than LOW x ``max_bytes``."""
    cutoff = (time.time() if now is None else now) - keep_days * 86400.0
    report = PruneReport(max_bytes=max_bytes)
    for table, old, keep in PRUNABLE:
        n = db.execute(f"DELETE FROM {table} WHERE {old} AND {keep}", {"cutoff": cutoff}).rowcount
        if n:
            report.deleted[table] = report.deleted.get(table, 0) + n
    report.used_bytes = used_bytes(db)
    if report.used_bytes <= HIGH * max_bytes:
        return report
    for table, _, keep in PRUNABLE:
        while report.used_bytes > LOW * max_bytes:
            n = db.execute(f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE {keep}"
                           f" ORDER BY id LIMIT {BATCH})").rowcount
            if not n:
                break
            report.deleted[table] = report.deleted.get(table, 0) + n
            report.used_bytes = used_bytes(db)
    report.full = report.used_bytes > HIGH * max_bytes
    return report


# --- for tests: a journal that really is full ------------------------------------------------

# A table and a text column to pad; ballast rows say "ballast" so a test can tell them apart.
_BALLAST = {
    "audit": "INSERT INTO audit (ts, channel, who, command, args, result, ok)"
             " VALUES (0, 'ballast', 'ballast', 'ballast', :pad, 'ballast', 1)",
    "killswitch_runs": "INSERT INTO killswitch_runs (trigger, reason, started, ended, result,"
                       " counted) VALUES ('ballast', :pad, 0, 0, 'ballast', 0)",
    "orders": "INSERT INTO orders (client_id, symbol, status, error)"
              " VALUES ('ballast-' || hex(randomblob(8)), 'ballast', 'ballast', :pad)",
    "fills": "INSERT INTO fills (venue, symbol, trade_id, side, fee_currency)"
             " VALUES ('ballast', 'ballast', hex(randomblob(8)), 'ballast', :pad)",
    "fill_conflicts": "INSERT INTO fill_conflicts (venue, fee_currency) VALUES ('ballast', :pad)",
    "meta": "INSERT INTO meta (key, value) VALUES ('ballast-' || hex(randomblob(8)), :pad)",
}


def fill_to_cap(db: sqlite3.Connection, tables: tuple[str, ...] = tuple(_BALLAST)) -> int:
    """Make every INSERT into ``tables`` fail with "database or disk is full": cap the
    connection at the current size, then pad each table's pages (and the free pages) with
    ballast rows of shrinking size until not even a small one fits. UPDATEs that do not grow a
    row still succeed, as on a real full journal. ``runs`` is not padded (its last row says
    whether the previous run ended cleanly). Returns the number of ballast rows."""
    page = int(db.execute("PRAGMA page_size").fetchone()[0])
    db.execute(f"PRAGMA max_page_count = {int(db.execute('PRAGMA page_count').fetchone()[0])}")
    rows = 0
    for table in tables:
        for size in (page // 2, page // 8, 64, 8, 0):
            while True:
                try:
                    db.execute(_BALLAST[table], {"pad": "x" * size})
                except sqlite3.OperationalError as e:
                    if "full" not in str(e):
                        raise
                    break
                rows += 1
    return rows
