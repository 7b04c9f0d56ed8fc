"""``flatguard sim``: run the simulated Binance USDⓈ-M exchange as its own process.

It prints one line once listening (parents read it to learn the port), then serves until
SIGTERM/SIGINT::

    sim ready url=http://127.0.0.1:PORT ws_url=ws://127.0.0.1:PORT/ws api_key=... api_secret=...
"""

from __future__ import annotations

import logging
import os
from decimal import Decimal

import click

from trader.sim.ban import parse_ban
from trader.sim.depth import DEFAULT_PROFILE, PROFILES
from trader.sim.faults import parse_fail, parse_latency, parse_retire
from trader.sim.server import FailSpec, LatencySpec, RetireSpec, run_sim
from trader.sim.state import SIM_API_KEY, SIM_API_SECRET, SimConfig


def _specs(parse, values: tuple[str, ...], option: str) -> list:  # type: ignore[no-untyped-def]
    try:
        return [parse(v) for v in values]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


@click.command("sim")
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback address only.")
@click.option("--port", default=0, show_default=True, type=int, help="0 picks a free port.")
@click.option("--api-key", default=SIM_API_KEY, show_default=True)
@click.option("--api-secret", default=SIM_API_SECRET, show_default=True)
@click.option("--seed", default=1, show_default=True, type=int, help="Price-walk seed.")
@click.option("--tick-interval", default=0.1, show_default=True, type=float,
              help="Seconds between mark-price ticks.")
@click.option("--balance", default="10000", show_default=True, help="Starting USDT wallet.")
@click.option("--weight-limit", default=2400, show_default=True, type=int,
              help="Request weight per minute before -1003/429 (0: unlimited).")
@click.option("--listen-key-ttl", default=3600.0, show_default=True, type=float,
              help="Seconds a listenKey lives without keep-alive.")
@click.option("--retire", "retire", multiple=True, metavar="[METHOD ]PATH[=STATUS|CODE]",
              help="Answer an endpoint with 404 (or STATUS, empty body; or a Binance CODE).")
@click.option("--fail", "fail", multiple=True, metavar="[METHOD ]PATH:N:CODE_OR_STATUS[:after]",
              help="Fail the next N calls: 503 = bare status, -1021 = Binance code; "
                   "':after' processes the request first and loses the reply.")
@click.option("--latency", default=0.0, show_default=True, type=float, metavar="MS",
              help="Added latency for every REST call.")
@click.option("--path-latency", "path_latency", multiple=True, metavar="[METHOD ]PATH=MS",
              help="Hold matching calls in flight for MS before processing, e.g. "
                   "'POST /fapi/v1/order=3000' (new orders only; PATH may end in *).")
@click.option("--ban", default=None, metavar="SECONDS[:418|429][:retry-after]",
              help="Start IP-banned for SECONDS (like POST /_sim/ban).")
@click.option("--skew", default=0.0, show_default=True, type=float, metavar="S",
              help="Exchange clock offset in seconds (±).")
@click.option("--liquidity", default=DEFAULT_PROFILE, show_default=True,
              type=click.Choice(sorted(PROFILES)),
              help="Book depth: realistic (a few BTC / tens of ETH at the touch, growing "
                   "with distance: large orders slip) or deep (everything at the touch).")
@click.option("--speed", default=1.0, show_default=True, type=float, metavar="N",
              help="Run the market (price walk, trades, funding) N times faster; the API "
                   "clock (timestamps, recvWindow, countdowns) stays real time.")
@click.option("--funding-interval", default=28800.0, show_default=True, type=float,
              metavar="S", help="Market seconds between funding settlements.")
def sim(host: str, port: int, api_key: str, api_secret: str, seed: int, tick_interval: float,
        balance: str, weight_limit: int, listen_key_ttl: float, retire: tuple[str, ...],
        fail: tuple[str, ...], latency: float, path_latency: tuple[str, ...], ban: str | None,
        skew: float, liquidity: str, speed: float, funding_interval: float) -> None:
    """Run the built-in simulated exchange (Binance USDⓈ-M REST + WebSocket)."""
    from trader.kernel import logsetup

    if os.environ.get(logsetup.ENV_FILE):  # the built-in sim of an `up` with a log file
        logsetup.setup("sim")
    else:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        config = SimConfig(host=host, port=port, api_key=api_key, api_secret=api_secret,
                           seed=seed, tick_interval=tick_interval, start_balance=Decimal(balance),
                           weight_limit=weight_limit, listen_key_ttl=listen_key_ttl, skew=skew,
                           liquidity=liquidity, speed=speed, funding_interval=funding_interval)
    except (ValueError, ArithmeticError) as exc:
        raise click.UsageError(str(exc)) from None
    retire_specs: list[RetireSpec] = _specs(parse_retire, retire, "--retire")
    fail_specs: list[FailSpec] = _specs(parse_fail, fail, "--fail")
    latency_specs: list[LatencySpec] = _specs(parse_latency, path_latency, "--path-latency")
    [ban_spec] = _specs(parse_ban, (ban,), "--ban") if ban else [None]
    run_sim(config, retire=retire_specs, fail=fail_specs, latency_ms=latency,
            path_latency=latency_specs, ban=ban_spec)
