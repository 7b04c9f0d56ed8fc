"""The connector process: one ccxt.pro session, requests over the bus, the event feed.

Lifecycle: STARTING -> RUNNING -> (FATAL) -> STOPPING -> STOPPED. FATAL means an exchange error
classified fatal (see ``trader/exchange/errors.py``): a halt was requested from the supervisor,
a person was alerted, new orders are refused with kind ``fatal``, and ``account``/``status``
are still served. Start-up refusals (bad keys, hedge mode, unsafe keys) exit non-zero with a
clear message before anything is traded.

The kill path's hold on this process (``ops.py``): ``fence`` stops every create for the trader
(``fence.py``), ``dms.disarm`` is the only thing that disarms the exchange's countdown (a
SIGTERM or a lost supervisor leaves it armed). Bans are shared with every process through the
run directory's ban board; the connector never uses the kill path's weight reserve.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from typing import Any

import zmq

from trader.connector import fence, ops, orders
from trader.connector.boundary import Boundary
from trader.connector.feedsink import FeedSink
from trader.connector.mdfanout import MdFanout
from trader.connector.startup import Refusal, Session, confirm_start, start_session
from trader.exchange import errors as E
from trader.exchange.ban import BanBoard
from trader.exchange.calls import Guard
from trader.exchange.clock import ExchangeClock
from trader.exchange.dms import DeadManSwitch
from trader.exchange.feed import PollFeed, WsFeed
from trader.exchange.numbers import BadExchangeData
from trader.exchange.ratelimit import RateLimits
from trader.exchange.reconcile import Account, rest_state
from trader.kernel import bus
from trader.kernel.journal import Journal
from trader.kernel.metrics import METRICS
from trader.kernel.payloads import Halt
from trader.kernel.proc import Child
from trader.kernel.protocol import ACCOUNT, ALERT, CRITICAL, WARNING, SupervisorOp
from trader.kernel.protocol import ConnectorState as State

log = logging.getLogger("flatguard.connector")

CLOCK_REFRESH = 300.0  # s between exchange-time refreshes
ACCOUNT_PUBLISH_INTERVAL = 1.0  # s: a snapshot at least this often, changed or not
BAD_DATA_ALERT_EVERY = 60.0  # s between two "bad exchange data" warnings to a person
SUPERVISOR_LOST_SERVE = 60.0  # s: serve the self-flattening trader at most this long
TRADER_SILENT = 5.0  # s without any request from the trader: it is gone
DISCONNECTED_RECONCILE = 5.0  # s between REST reconciles while the WebSocket feed is down


class Connector:
    def __init__(self, child: Child) -> None:
        self.child = child
        self.cfg = child.cfg
        self.xc = child.cfg.exchange
        self.state = State.STARTING
        self.account = Account(leverage=self.xc.leverage)
        self.journal = Journal(child.paths.journal)
        self.zctx = zmq.Context()  # sync PUB: a non-blocking send straight from the feed callback
        self.pub = bus.Publisher(self.zctx, child.paths.events_in, "connector")
        self.md_pub = MdFanout(self.pub, self.zctx, child.paths.md)  # md: no proxy hop
        self.limits = RateLimits(self.xc.weight_limit, self.xc.weight_headroom,
                                 self.cfg.killswitch.weight_reserve,
                                 BanBoard.in_run_dir(child.paths.root))
        self.fence = fence.Fence(self.xc.recv_window / 1000.0)
        self.ex: Any = None
        self.place: orders.Placer | None = None
        self.clock: ExchangeClock | None = None
        self.guard: Guard | None = None
        self.feed: WsFeed | PollFeed | None = None
        self.dms: DeadManSwitch | None = None
        self.responder: bus.Responder | None = None
        self.fatal: E.Classification | None = None
        self.tradable: list[str] = []
        self.trader_alive = 0.0  # monotonic time of the trader's last `alive`
        self.trader_seen = time.monotonic()  # ... of any request from the trader
        self._last_account_pub = 0.0
        self.started_at = time.time()  # never confirmed at all counts from here
        self.reconcile_wanted = False
        self.last_reconcile = float("-inf")  # monotonic start of the last scheduled reconcile
        self.fills_since = int(time.time() * 1000) - 60_000  # ms: fill catch-up window start
        self._reconcile_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.sink = FeedSink(self.account, self.md_pub, self.journal, self.xc.id,
                             publish_account=self.publish_account, md_fresh=self._md_fresh,
                             event_time=self._event_time, is_poll=self._feed_is_poll,
                             want_reconcile=self._want_reconcile)
        self.boundary = Boundary(self.sink, self.on_bad_number)
        self._bad_alerted = float("-inf")

    # --- helpers ----------------------------------------------------------------------------

    def spawn(self, coro: Any) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    def notify(self, level: str, title: str, text: str) -> None:
        assert self.child.notify is not None
        self.child.notify.send(level, title, text)
        self.pub.publish(ALERT, {"level": level, "title": title, "text": text,
                                 "source": "connector", "ts": time.time()})

    def warn(self, title: str, text: str) -> None:
        log.warning("event=%s text=%r", title.replace(" ", "_"), text)
        self.notify(WARNING, title, text)

    def snapshot(self, source: str) -> dict[str, Any]:
        snap = self.account.snapshot(source)
        snap["fresh"] = self.fresh()
        return snap

    def fresh(self) -> float:
        """Up to when the connector vouches for the account state (wall time). A live WebSocket
        feed keeps it current between REST reconciles; a disconnected feed, the poll feed and a
        FATAL connector fall back to the start of the last successful REST read."""
        if self.fatal is not None or self.feed is None:
            return self.account.confirmed
        if self.tainted():
            return self.account.confirmed  # a feed event was dropped: REST must confirm first
        return max(self.account.confirmed, self.feed.vouched())

    def publish_account(self, source: str) -> None:
        self._last_account_pub = time.monotonic()
        snap = self.snapshot(source)
        self.pub.publish(ACCOUNT, snap)
        # The exchange's account on /metrics while the trader is down or halted (the supervisor
        # shows the trader's own values while it runs): supervisor/metrics_truth.py.
        METRICS.set("flatguard_equity", float(snap["equity"] or 0.0))
        held = {p["symbol"]: float(p["contracts"]) for p in snap["positions"]}
        METRICS.clear("flatguard_position_contracts")  # a closed foreign position goes too
        for sym in self.xc.symbols:
            METRICS.set("flatguard_position_contracts", held.pop(sym, 0.0), symbol=sym)
        for sym, contracts in held.items():  # adopted from outside the configured symbols
            METRICS.set("flatguard_position_contracts", contracts, symbol=sym)

    def on_ok(self) -> None:
        self.child.last_ok = time.time()

    def tainted(self) -> bool:
        """A feed event was dropped for a bad number since the last REST read began."""
        t = self.boundary.tainted_at
        return t > 0 and t >= self.account.confirmed

    def on_bad_number(self, e: BadExchangeData) -> None:
        """A value refused at the boundary (counted and logged there): tell a person. While
        the feed is tainted, housekeeping reconciles every ``DISCONNECTED_RECONCILE`` s."""
        if time.monotonic() - self._bad_alerted >= BAD_DATA_ALERT_EVERY:
            self._bad_alerted = time.monotonic()
            self.warn("bad exchange data", f"{e}: dropped; the account is confirmed over REST "
                      "again, or trading stops after exchange.max_unconfirmed")

    def _md_fresh(self) -> None:
        self.child.last_md = time.time()

    def _event_time(self, ts: float | None) -> None:
        if self.clock is not None:
            self.clock.observe_event(ts)

    def _feed_is_poll(self) -> bool:
        return self.feed is not None and self.feed.kind == "poll"

    def _want_reconcile(self) -> None:
        self.reconcile_wanted = True

    # --- fatal ------------------------------------------------------------------------------

    def on_fatal(self, c: E.Classification) -> None:
        if self.fatal is not None:
            return
        self.fatal = c
        if self.guard is not None:
            self.guard.abandon()  # stop retrying: the kill path needs the exchange now
        self.state = State.FATAL
        self.child.state = State.FATAL
        reason = f"{c.call} {c.endpoint}: {c.error} {c.detail} ({c.action})".replace("  ", " ")
        log.error("event=exchange_fatal reason=%r", reason)
        self.notify(CRITICAL, f"exchange fatal: {c.call} {c.endpoint}".strip(),
                    f"{c.describe()}. Trading stopped; the kill switch flattens the account.")
        self.spawn(self._request_halt(reason))

    async def _request_halt(self, reason: str) -> None:
        for _ in range(3):
            try:
                await self.child.sup.request(SupervisorOp.HALT, Halt(
                    "exchange_fatal", reason, "connector").to_wire(), timeout=2)
                return
            except bus.RequestError as e:
                log.error("event=halt_request_failed error=%r", str(e))

    # --- lifecycle --------------------------------------------------------------------------

    async def main(self) -> int:
        try:
            self.attach(await start_session(self))
            await confirm_start(self)
        except Refusal as r:
            log.error("event=start_refused reason=%r", str(r))
            self.notify(CRITICAL, "connector refused to start", str(r))
            # The supervisor's `up` ends with this reason as its last line.
            await self.child.sup.send_oneway(SupervisorOp.REFUSED, {"proc": "connector",
                                                         "pid": os.getpid(), "reason": str(r)})
            await asyncio.sleep(0.2)  # let the notification leave
            await self._close()
            return 78
        self.responder = bus.Responder(self.child.ctx, self.child.paths.connector, "connector")
        self.spawn(self.responder.serve(ops.dispatcher(self)))
        if self.fatal is None:
            self.feed.start()  # type: ignore[union-attr]
            self.state = State.RUNNING
        await self.child.ready(symbols=list(self.tradable))
        if self.fatal is not None:
            self.child.state = State.FATAL
        log.info("event=ready state=%s feed=%s symbols=%s", self.state, self.feed.kind
                 if self.feed else "-", ",".join(self.tradable))
        try:
            await self.run()
        finally:
            await self.shutdown()
        return 0

    async def run(self) -> None:
        tick = min(0.1, self.cfg.supervisor.heartbeat_interval / 2)
        lost_at: float | None = None
        while not self.child.stop.is_set():
            self.child.beat()
            if self.child.supervisor_lost():
                if lost_at is None:
                    lost_at = time.monotonic()
                    log.warning("event=supervisor_lost action=serve_trader_until_it_exits")
                # Keep serving the trader while it flattens itself through us, then go.
                silent = time.monotonic() - self.trader_seen > TRADER_SILENT
                if silent or time.monotonic() - lost_at > SUPERVISOR_LOST_SERVE:
                    log.warning("event=supervisor_lost action=stop")
                    break
            self.housekeeping()
            try:
                await asyncio.wait_for(self.child.stop.wait(), tick)
            except TimeoutError:
                pass

    def housekeeping(self) -> None:
        now = time.monotonic()
        METRICS.set("flatguard_exchange_banned_seconds", self.limits.banned_for())
        if now - self._last_account_pub >= ACCOUNT_PUBLISH_INTERVAL:
            self.publish_account("periodic")  # the trader's proof the account state is fresh
        if self.fatal is not None or self.guard is None:
            return
        interval = self.xc.reconcile_interval
        if (self.feed is not None and self.feed.kind == "ws" and not self.feed.is_connected) \
                or self.tainted():
            interval = min(interval, DISCONNECTED_RECONCILE)  # REST is all there is for now
        if ((self.reconcile_wanted or now >= self.last_reconcile + interval)
                and not self._reconcile_lock.locked()):
            self.reconcile_wanted = False
            self.last_reconcile = now
            self.spawn(self.reconcile_quietly("interval"))
        age = time.time() - (self.account.confirmed or self.started_at)
        if age > self.xc.max_unconfirmed:
            self.on_fatal(E.Classification(
                E.Kind.FATAL, "reconcile", "", None, None, "Unconfirmed",
                f"account state unconfirmed for {age:.0f} s",
                "exchange.max_unconfirmed exceeded: inventory cannot be trusted"))
        if self.clock is not None and self.clock.due(CLOCK_REFRESH):
            self.clock.resync_wanted = False
            self.clock.synced_at = now
            self.spawn(self._quiet(self.guard.resync()))
        if self.dms is not None and self.dms.due() and self.trader_fresh():
            self.spawn(self._quiet(self.dms.refresh()))
        if self.feed is not None:
            self.spawn(self._quiet(self.feed.housekeeping()))

    def trader_fresh(self) -> bool:
        return time.monotonic() - self.trader_alive <= self.cfg.hang_timeout

    async def _quiet(self, coro: Any) -> None:
        try:
            await coro
        except (E.ExchangeCallError, BadExchangeData):
            pass  # classified/counted (and if fatal acted on), or refused at the boundary

    async def shutdown(self) -> None:
        """Never disarms the exchange's countdown: only ``dms.disarm`` does (the supervisor,
        after a verified flat or on resume). A SIGTERM or a lost supervisor leaves it armed."""
        self.state = State.STOPPING
        if self.dms is not None:
            self.dms.stopped = True  # no refresh from here on
            if self.dms.armed:
                log.warning("event=dms_left_armed symbols=%s text='dead-man switch left armed; "
                            "the exchange cancels all orders in %.0f s'",
                            ",".join(sorted(self.dms.armed)), self.dms.fires_in())
        if self.feed is not None:
            await self.feed.stop()
        for t in list(self._tasks):
            t.cancel()
        await self._close()
        self.state = State.STOPPED
        log.info("event=stopped")

    async def _close(self) -> None:
        if self.ex is not None:
            try:
                await self.ex.close()
            except Exception:  # noqa: BLE001
                pass
        if self.responder is not None:
            self.responder.close()
        self.md_pub.close()
        self.pub.close()
        self.journal.close()
        self.child.close()

    # --- reconcile --------------------------------------------------------------------------

    async def reconcile(self, why: str, *, adopt: bool = False) -> list[str]:
        try:
            # Start-up and a person's sync cannot wait for the next weight window: without
            # them nothing trades (start-up would miss ready_timeout). Periodic ones can.
            return await self._reconcile(why, adopt, essential=why in ("start-up", "sync"))
        except BadExchangeData as e:
            self.on_bad_number(e)  # not confirmed: exchange.max_unconfirmed decides
            raise

    async def _reconcile(self, why: str, adopt: bool, essential: bool = False) -> list[str]:
        assert self.guard is not None
        g, ex, ess = self.guard, self.ex, essential
        async with self._reconcile_lock:
            for attempt in range(2):
                v0 = self.account.version
                t0 = time.time()
                pos = await g.call("fetch_positions", ex.fetch_positions, None, essential=ess)
                if adopt:
                    ords = await g.call("fetch_open_orders", ex.fetch_open_orders, essential=ess)
                else:
                    ords = []
                    for sym in self.tradable:
                        ords += await g.call("fetch_open_orders", ex.fetch_open_orders, sym,
                                             essential=ess)
                bal = await g.call("fetch_balance", ex.fetch_balance, essential=ess)
                rest = rest_state(pos, ords, bal, read_at=t0)  # checks every number
                diffs = [] if adopt else self.account.differences(rest)
                if not diffs or self.account.version == v0 or attempt == 1:
                    break  # a feed event during the read may explain a diff: read again once
            self.account.replace(rest)
            for sym in list(self.account.positions):
                if sym in self.sink.marks:
                    self.account.mark(sym, self.sink.marks[sym])
            if why != "poll":
                await self.catch_up_fills(ess)
        if diffs:
            self.warn("reconcile mismatch", f"{why}: corrected from the exchange: " + "; ".join(diffs))
        log.info("event=reconciled why=%s differences=%d positions=%d orders=%d", why, len(diffs),
                 len(rest.positions), len(rest.orders))
        self.publish_account("rest")
        return diffs

    async def catch_up_fills(self, essential: bool = False) -> None:
        """Fills the feed missed (a reconnect gap) into the journal: nothing acknowledged by
        the exchange may be missing from it. Trade ids make this idempotent."""
        assert self.guard is not None
        for sym in self.tradable:
            trades = await self.guard.call("fetch_my_trades", self.ex.fetch_my_trades, sym,
                                           self.fills_since, essential=essential)
            for t in trades:
                self.boundary.on_trade(t)
        self.fills_since = max(self.fills_since, int(time.time() * 1000) - 60_000)

    async def reconcile_quietly(self, why: str) -> None:
        await self._quiet(self.reconcile(why))

    # --- the session start-up built ---------------------------------------------------------

    def attach(self, s: Session) -> None:
        """Take the exchange session ``startup.start_session`` built and proved."""
        self.session = s
        self.ex, self.clock, self.guard, self.tradable = s.exchange, s.clock, s.guard, s.tradable
        self.feed, self.dms = s.feed, s.dms
        fast = getattr(s.venue, "create_order", None)  # the venue's own create, if it has one
        self.place = functools.partial(fast, s.exchange) if fast is not None else None
