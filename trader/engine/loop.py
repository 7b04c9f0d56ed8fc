"""The trading engine: one loop that turns events into strategy calls and orders.

Everything that can fail at I/O is behind the connector; what runs here is infallible code plus
assertions. If the loop raises anyway, that is a logic error and the in-process dead switch
fires: ask the supervisor to halt and flatten, then exit non-zero (the supervisor sees the exit
too, so the kill switch runs even if that request is lost).

Heartbeats are sent from this loop, so a strategy that blocks stops them: that is how a hang is
told from life.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import zmq

from trader.engine.commands import TraderCommands
from trader.engine.context import StrategyContext
from trader.engine.control import EngineControls
from trader.engine.inventory import Inventory
from trader.engine.orders import OrderManager
from trader.engine.risk import RiskEngine
from trader.engine.strategy import Fill, MarketData, OrderUpdate, Strategy, load_strategy
from trader.kernel import bus, payloads, proc
from trader.kernel.journal import Journal
from trader.kernel.metrics import METRICS
from trader.kernel.protocol import (
    ACCOUNT,
    FILL,
    HALTED,
    MD,
    ORDER,
    PAUSED,
    RUNNING,
    STARTING,
    STOPPED,
    STOPPING,
    TERMINAL,
    ConnectorOp,
)

log = logging.getLogger("flatguard")

# s: orders are counted by the throttle when they leave the trader, the exchange counts them on
# arrival; this much transit jitter cannot make the exchange see more than the limit
THROTTLE_MARGIN = 0.25
EVAL_INTERVAL = 0.25  # s between the risk engine's own evaluations (staleness, daily loss)
MAX_BATCH = 100  # messages read from a socket before the ones read are handled


class Engine(EngineControls):
    """Implements the strategy's Context (buy/sell/cancel/position/...), which the strategy
    sees only as ``context.StrategyContext``; ``EngineControls`` is what the trader's commands
    may do with it (``control.EngineControl``)."""

    def __init__(self, child: proc.Child) -> None:
        self.child = child
        cfg = child.cfg
        self.cfg = cfg
        self.symbols = cfg.exchange.symbols
        self.params = cfg.strategy.params
        self.conn = bus.Requester(child.ctx, child.paths.connector, "trader")
        self.sub = bus.Subscriber(child.ctx, child.paths.events_out, [ORDER, FILL, ACCOUNT])
        # md straight from the connector's own PUB (``connector/mdfanout.py``): no proxy hop,
        # read in its FD callback while the loop runs (``_on_md``)
        self.md = bus.Subscriber(child.ctx, child.paths.md, [MD])
        self._readable = bus.Readable([self.sub])
        self._md_fd = int(self.md._plain.getsockopt(zmq.FD))
        self._md_loop: asyncio.AbstractEventLoop | None = None
        self._failed: BaseException | None = None
        self.inv = Inventory()
        # the account's staleness limit is exchange.max_unconfirmed (one condition, one key)
        self.risk = RiskEngine(cfg.risk, self.symbols,
                               max_unconfirmed=cfg.exchange.max_unconfirmed,
                               throttle_margin=THROTTLE_MARGIN)
        self.orders = OrderManager(self.conn, self.risk, self._view)
        self.strategy: Strategy = load_strategy(cfg.strategy.name)()
        self.strategy_ctx = StrategyContext(self)  # all of the engine the strategy sees
        self.state = STARTING
        self.commands = TraderCommands(self)
        self._last_timer = 0.0
        self._last_alive = 0.0
        self._malformed_logged = -5.0
        self._last_eval = 0.0

    # --- Context for the strategy ----------------------------------------------------------

    def buy(self, symbol: str, amount: float, price: float | None = None,
            reduce_only: bool = False) -> str | None:
        return self._order(symbol, "buy", amount, price, reduce_only)

    def sell(self, symbol: str, amount: float, price: float | None = None,
             reduce_only: bool = False) -> str | None:
        return self._order(symbol, "sell", amount, price, reduce_only)

    def _order(self, symbol: str, side: str, amount: float, price: float | None,
               reduce_only: bool) -> str | None:
        # every refusal, the trading state's included, is the risk engine's (counted, logged)
        return self.orders.submit(symbol, side, amount, price, reduce_only)

    def cancel(self, symbol: str, client_id: str) -> None:
        self.orders.cancel(symbol, client_id)

    def cancel_all(self, symbol: str | None = None) -> None:
        syms = (symbol,) if symbol else self.symbols
        asyncio.get_running_loop().create_task(self._safe(self.orders.cancel_all(syms)))

    def position(self, symbol: str) -> float:
        return self.inv.contracts(symbol)

    def mark(self, symbol: str) -> MarketData | None:
        return self.inv.marks.get(symbol)

    def open_orders(self, symbol: str | None = None) -> list[OrderUpdate]:
        return [t.update() for t in self.orders.orders.values()
                if t.status not in TERMINAL
                and (symbol is None or t.intent.symbol == symbol)]

    def now(self) -> float:
        return time.time()

    def log(self, text: str) -> None:
        log.info("strategy=%s %s", self.strategy.name, text)

    # --- internals ------------------------------------------------------------------------

    def _view(self) -> Any:
        return self.inv.view(self.orders.open_orders())

    async def _safe(self, coro: Any) -> None:
        try:
            await coro
        except bus.RequestError as e:
            log.warning("request failed kind=%s: %s", e.kind, e.message)

    def set_state(self, state: str) -> None:
        if state == self.state:
            return
        log.warning("trading state %s -> %s", self.state, state)
        self.state = state
        self.child.state = state
        self.risk.set_trading_state(state)
        for s in (STARTING, RUNNING, PAUSED, STOPPING, HALTED, STOPPED):
            METRICS.set("flatguard_trading_state", 1.0 if s == state else 0.0, state=s)

    async def start(self) -> None:
        deadline = time.monotonic() + self.cfg.supervisor.ready_timeout
        while True:  # the connector is READY before the trader starts; this is belt and braces
            try:
                snap = await self.conn.request(ConnectorOp.ACCOUNT, {}, timeout=2.0)
                break
            except bus.RequestError as e:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no account snapshot from the connector: {e}") from None
                await asyncio.sleep(0.2)
        self.inv.apply_account(snap)
        self.child.last_ok = time.time()
        self._restore_risk_day()
        self.strategy.on_start(self.strategy_ctx)
        self.set_state(RUNNING)

    def handle(self, msg: Any) -> None:
        topic, d = msg.topic, msg.data
        try:  # the payload is checked before anything acts on it
            if topic.startswith(MD):
                q = payloads.MarketData.from_wire(d)
            elif topic.startswith(FILL):
                p = payloads.Fill.from_wire(d)
            elif topic.startswith(ORDER):
                payloads.OrderUpdate.from_wire(d)
            elif topic == ACCOUNT:
                payloads.AccountSnapshot.from_wire(d)
        except payloads.PayloadError as e:
            self._malformed(msg, e)
            return
        if topic.startswith(MD):
            md = MarketData(q.symbol, q.mark, q.bid or q.mark, q.ask or q.mark, q.ts or msg.ts)
            self.inv.apply_md(md)
            self.child.last_md = time.time()
            if self.state == RUNNING and md.symbol in self.symbols:
                self.strategy.on_tick(self.strategy_ctx, md)
        elif topic.startswith(FILL):
            f = Fill(p.trade_id, p.client_id or "", p.symbol, p.side, p.amount, p.price, p.fee,
                     p.ts or msg.ts)
            if not self.inv.apply_fill(f.symbol, f.side, f.amount, f.price, f.trade_id):
                return  # a duplicate of a fill already applied
            ours = self.orders.on_fill(f.client_id, f.amount)
            log.info("fill symbol=%s side=%s amount=%g price=%g fee=%g position=%g%s", f.symbol,
                     f.side, f.amount, f.price, f.fee, self.inv.contracts(f.symbol),
                     "" if ours else " (not ours)")
            for ev in self.risk.on_fill(f.symbol, f.side, f.amount, f.price, f.fee, time.time()):
                self.commands.risk_event(ev)
            if ours:
                self.strategy.on_fill(self.strategy_ctx, f)
        elif topic.startswith(ORDER):
            upd = self.orders.on_order(d)
            if upd is not None:
                self.strategy.on_order(self.strategy_ctx, upd)
        elif topic == ACCOUNT:
            self.inv.apply_account(d, to_come=self.orders.fills_to_come())
            self.child.last_ok = time.time()
            METRICS.set("flatguard_equity", self.inv.equity)
            METRICS.clear("flatguard_position_contracts")
            for sym in self.symbols:
                METRICS.set("flatguard_position_contracts", self.inv.contracts(sym), symbol=sym)

    def _malformed(self, msg: Any, e: payloads.PayloadError) -> None:
        """An event whose payload is malformed (a bug in its sender, or a newer sender) is
        dropped, counted (``flatguard_bus_dropped_total{reason="malformed"}``, like one that
        does not decode) and logged naming the field: it must not end the engine, whose death
        the kill switch would answer with a flatten."""
        bus.STATS.dropped["malformed"] += 1
        now = time.monotonic()
        if now - self._malformed_logged >= 5.0:  # a sender gone bad must not flood the log
            self._malformed_logged = now
            log.error("event dropped topic=%s from=%s: %s", msg.topic, msg.src, e)

    def periodic(self) -> None:
        now = time.monotonic()
        if now - self._last_alive >= self.cfg.supervisor.heartbeat_interval:
            self._last_alive = now
            asyncio.get_running_loop().create_task(self.conn.send_oneway(ConnectorOp.ALIVE, {}))
            self.orders.connector_ok = now - self.conn.last_reply < max(
                self.cfg.supervisor.connector_grace, 2 * self.cfg.hang_timeout) or self._idle()
        if now - self._last_eval >= EVAL_INTERVAL:
            self._last_eval = now
            for ev in self.risk.evaluate(self._view(), time.time()):
                self.commands.risk_event(ev)
            self._save_risk_day()
            self.orders.prune(self.inv.adopted_ids())
        if self.state == RUNNING and now - self._last_timer >= self.cfg.strategy.tick_interval:
            self._last_timer = now
            self.strategy.on_timer(self.strategy_ctx)
        if self.state == STOPPING:
            self.commands.stop_step()

    def _idle(self) -> bool:
        return not any(t.status == "pending" for t in self.orders.orders.values())

    def _restore_risk_day(self) -> None:
        """The day's opening equity and high survive a trader restart (a resume must not reset
        the daily loss limit)."""
        self.journal = Journal(self.child.paths.journal, create=False)
        saved = self.journal.risk_day()
        lb = self.risk.loss_breaker
        if saved is not None and saved[0] == int(time.time() // 86400):
            lb.day, lb.start, lb.high, lb.tripped = saved
        self._saved_day = saved

    def _save_risk_day(self) -> None:
        lb = self.risk.loss_breaker
        state = (lb.day, lb.start, lb.high, lb.tripped)
        if lb.day >= 0 and state != self._saved_day:
            self._saved_day = state
            self.journal.set_risk_day(*state)

    def close(self) -> None:
        self._unwatch_md()
        self._readable.close()
        self.conn.close()
        self.sub.close()
        self.md.close()

    async def _events(self, timeout: float, max_n: int = MAX_BATCH) -> list[Any]:
        """The order, fill and account events queued now, else wait up to ``timeout`` s for
        one (md is ``_on_md``'s)."""
        out: list[Any] = []
        if not self.sub.drain(out, max_n) and await self._readable.wait(timeout):
            self.sub.drain(out, max_n)
        return out

    def _on_md(self) -> None:
        """The md socket's FD callback: a tick reaches the strategy in the loop turn that sees
        it, not one later (a wait in the loop -> a Future -> the loop's task -> a drain cost a
        loop turn on every tick). The events queued before it are handled first: a tick is
        handled with the fills published before it. Reads until the socket would block (its FD
        signals only new activity). An exception is the engine's: ``run`` raises it."""
        if self._failed is not None:
            return
        try:
            while True:
                out: list[Any] = []
                self.sub.drain(out, MAX_BATCH)
                n = self.md.drain(out, MAX_BATCH)
                for msg in out:
                    self.handle(msg)
                if n < MAX_BATCH:
                    return
        except BaseException as e:  # noqa: BLE001 - raised by run(), as if it had been there
            self._failed = e
            self._readable.wake()

    def _watch_md(self) -> None:
        self._md_loop = asyncio.get_running_loop()
        self._md_loop.add_reader(self._md_fd, self._on_md)
        self._on_md()  # what arrived before (its FD signal may be spent)

    def _unwatch_md(self) -> None:
        if self._md_loop is not None and not self._md_loop.is_closed():
            self._md_loop.remove_reader(self._md_fd)
        self._md_loop = None

    def _raise_failed(self) -> None:
        if self._failed is not None:
            raise self._failed

    async def run(self) -> int:
        child = self.child
        server = bus.Responder(child.ctx, child.paths.trader, "trader")
        serve = asyncio.get_running_loop().create_task(server.serve(self.commands.handle))
        try:
            await self.start()
            await child.ready(strategy=self.strategy.name)
            # md no longer wakes this loop: it wakes for the housekeeping that is due
            wait = max(0.01, min(self.cfg.supervisor.heartbeat_interval / 2, EVAL_INTERVAL,
                                 self.cfg.strategy.tick_interval))
            lost = False
            self._watch_md()
            try:
                while not child.stop.is_set():
                    self._raise_failed()
                    if child.supervisor_lost():
                        lost = True
                        break
                    # what is queued now, else wait up to ``wait``: no task per message
                    batch = await self._events(wait)
                    self._raise_failed()
                    for msg in batch:
                        self.handle(msg)
                    if batch:
                        await asyncio.sleep(0)  # the orders just submitted leave first
                    self.periodic()
                    child.beat()
            finally:
                self._unwatch_md()  # no tick reaches a stopping strategy
            if lost:
                return await self.commands.supervisor_lost()
            await self.commands.graceful_stop()
            return 0
        finally:
            serve.cancel()
            server.close()
