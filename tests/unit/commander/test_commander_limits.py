"""What keeps the commander from filling the disk: the recording size cap; a full journal."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import msgpack
import zmq
import zmq.asyncio

from commander.recorder import Recorder
from trader.kernel import config, wire


def test_the_config_reaches_the_recorder() -> None:
    cfg = config.from_mapping({"record": {"max_bytes": 4096}})
    assert cfg.record.max_bytes == 4096  # commander/process.py passes it to Recorder


def test_recording_stops_at_max_bytes_and_says_so(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="flatguard")

    async def main() -> tuple[dict[str, object], dict[str, object], Path]:
        ctx = zmq.asyncio.Context()
        pub = ctx.socket(zmq.PUB)
        pub.setsockopt(zmq.LINGER, 0)
        pub.bind("inproc://events-out")
        rec = Recorder(ctx, "inproc://events-out", tmp_path / "recordings", max_bytes=1000)
        try:
            started = await rec.toggle()
            assert started["recording"] is True and started["max_bytes"] == 1000
            assert "1000 bytes" in str(started["message"])
            seq = 0
            # publish until the recorder stops by itself (the SUB joins asynchronously)
            for _ in range(2000):
                if not rec.recording:
                    break
                seq += 1
                await pub.send_multipart(wire.encode("md.BTC/USDT:USDT", "connector", seq,
                                                     {"mark": 50000.0, "pad": "x" * 60}))
                await asyncio.sleep(0.001)
            assert not rec.recording
            path = rec.path
            assert path is not None
            reply = await rec.toggle()  # the person's next `record`: told what happened
            again = await rec.toggle()  # and the one after starts a new recording
            await rec.toggle()
            return reply, again, path
        finally:
            if rec.recording:
                rec.stop()
            pub.close(0)
            ctx.term()

    reply, again, path = asyncio.run(main())
    assert reply["recording"] is False and "size cap reached" in str(reply["stopped_by_itself"])
    assert "[record] max_bytes" in str(reply["message"])
    assert path.stat().st_size <= 1000 and path.stat().st_size == reply["bytes"]
    with open(path, "rb") as f:
        assert len(list(msgpack.Unpacker(f, raw=False))) == reply["messages"] > 3
    assert again["recording"] is True and again["path"] != str(path)
    assert any("reason=max_bytes" in r.getMessage() and r.levelname == "WARNING"
               for r in caplog.records)


def test_stop_while_recording_reports_the_size(tmp_path: Path) -> None:
    async def main() -> dict[str, object]:
        ctx = zmq.asyncio.Context()
        rec = Recorder(ctx, "inproc://nobody", tmp_path / "rec")
        try:
            await rec.toggle()
            return await rec.toggle()
        finally:
            ctx.term()

    out = asyncio.run(main())
    assert out["recording"] is False and out["bytes"] == 0 and "recording stopped" in str(out["message"])


def test_a_full_journal_never_blocks_a_command_and_is_counted(tmp_path: Path) -> None:
    from commander.audit import Audit
    from trader.kernel import journal_space
    from trader.kernel.metrics import METRICS

    def errors() -> float:
        return sum(v for n, lbl, v in METRICS.samples()
                   if n == "flatguard_journal_errors_total" and ["process", "commander"] in lbl)

    audit = Audit(tmp_path / "journal.db", max_bytes=1 << 20, keep_days=7.0)
    journal_space.fill_to_cap(audit.journal.db)
    before = errors()
    audit.record("ctl", "me", "kill", [], "ok: kill switch started", True)  # does not raise
    assert errors() == before + 1
    audit.close()
