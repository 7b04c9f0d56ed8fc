"""The audit trail: every command attempt (time, channel, who, command, args, result, ok).

Written to the run directory's journal (SQLite, WAL) so it survives restarts and is shared with
the rest of the stack. A failing write is logged and never blocks the command it describes: a
``kill`` must be answered even when the disk is full.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from trader.kernel.journal import Journal
from trader.kernel.metrics import METRICS

log = logging.getLogger("flatguard")


class Audit:
    def __init__(self, journal_path: Path, max_bytes: int | None = None,
                 keep_days: float | None = None) -> None:
        self.journal = Journal(journal_path, max_bytes=max_bytes, keep_days=keep_days)

    def record(self, channel: str, who: str, command: str, args: Any, result: str,
               ok: bool) -> None:
        try:
            self.journal.audit(channel, who, command, args, result, ok)
        except Exception as e:
            log.error("event=audit_failed error=%s: %s", type(e).__name__, e)
            METRICS.inc("flatguard_journal_errors_total", process="commander")
        log.info("event=command channel=%s who=%s command=%s ok=%s result=%r",
                 channel, who, command[:40], ok, result[:80])

    def recent(self, n: int) -> list[dict[str, Any]]:
        # SQLite stores the flag as 0/1: JSON readers of `ctl audit --json` get a real bool
        return [{**e, "ok": bool(e.get("ok"))} for e in self.journal.recent_audit(n)]

    def close(self) -> None:
        self.journal.close()
