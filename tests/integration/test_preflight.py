"""Point 5 of the operations issue: everything checked before anything starts.

In-process checks of ``supervisor.preflight`` and ``config.load``; one ``flatguard up`` run per
case of the CLI contract (one line naming the file and the key, exit 2, nothing started, the run
directory never created, so never marked unclean).
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from supervisor import preflight
from tests.stack import FLATGUARD, ROOT
from trader.kernel import config

TG = '[telegram]\nchat_id = 1\nallowed_users = [1]\n'


def _cfg(tmp_path: Path, toml: str) -> config.Config:
    p = tmp_path / "c.toml"
    p.write_text(toml)
    return config.load(p)


def _problems(tmp_path: Path, toml: str, env: dict[str, str] | None = None) -> list[str]:
    return preflight.check(_cfg(tmp_path, toml), env or {})


def test_defaults_pass(tmp_path: Path) -> None:
    assert _problems(tmp_path, "[metrics]\nport = 0\n") == []


def test_an_event_loop_flatguard_does_not_run_on_is_refused_by_name(tmp_path: Path) -> None:
    ok = "[metrics]\nport = 0\n"
    assert _problems(tmp_path, ok, {"FLATGUARD_LOOP": "asyncio"}) == []
    assert _problems(tmp_path, ok, {"FLATGUARD_LOOP": "uvloop"}) == []
    (line,) = _problems(tmp_path, ok, {"FLATGUARD_LOOP": "trio"})
    assert "FLATGUARD_LOOP='trio' in the environment is not a loop flatguard runs on" in line
    assert "use uvloop or asyncio" in line


@pytest.mark.parametrize("toml, key, needle", [
    ('[exchange]\nsymbols = ["BTCUSDT"]', "exchange.symbols", "did you mean BTC/USDT:USDT?"),
    ('[exchange]\nsymbols = ["BTC/USDT:USDT", "eth usdt"]', "exchange.symbols", "'eth usdt'"),
    ("[exchange]\nleverage = 500", "exchange.leverage = 500", "above any venue's maximum"),
    ("[metrics]\nport = 70000", "metrics.port = 70000", "out of range"),
    ('[notify.pushover]\ntoken_env = "FG_T_PO"\nuser_env = "FG_T_PU"', "[notify.pushover]",
     "FG_T_PO is not set"),
    (TG, "[telegram] token_env", "FLATGUARD_TELEGRAM_TOKEN is not set"),
    ('[strategy]\nname = "nope"', "strategy.name", "neither a built-in"),
    ('[exchange]\nid = "notanexchange"', "exchange.id", "not a ccxt exchange id"),
    ('[exchange]\nid = "binanceusdm"', "", "no API keys"),
])
def test_each_problem_is_one_line_naming_file_and_key(tmp_path: Path, toml: str, key: str,
                                                      needle: str) -> None:
    keys = {} if needle == "no API keys" else {"FLATGUARD_API_KEY": "k",
                                                "FLATGUARD_API_SECRET": "s"}
    found = _problems(tmp_path, "[metrics]\nport = 0\n" + toml if "[metrics]" not in toml
                      else toml, keys)
    assert len(found) == 1, found
    (line,) = found
    assert line.startswith(str(tmp_path / "c.toml") + ": ") and key in line and needle in line
    assert "\n" not in line


def test_metrics_port_busy(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        (line,) = _problems(tmp_path, f"[metrics]\nport = {port}\n")
    assert f"metrics.port = {port}" in line and "already in use" in line
    assert _problems(tmp_path, f"[metrics]\nport = {port}\n") == []  # free again


def test_telegram_section_means_enabled_unless_it_says_false(tmp_path: Path) -> None:
    assert _cfg(tmp_path, TG).telegram.enabled
    assert not _cfg(tmp_path, TG + "enabled = false\n").telegram.enabled
    assert not _cfg(tmp_path, "").telegram.enabled  # no section: no Telegram
    with pytest.raises(config.ConfigError, match="telegram.allowed_users is empty"):
        _cfg(tmp_path, "[telegram]\nchat_id = 1\n")
    env = {"FLATGUARD_TELEGRAM_TOKEN": "123:abc"}
    assert preflight.check(_cfg(tmp_path, "[metrics]\nport = 0\n" + TG), env) == []
    # round trip to the children: the JSON says enabled explicitly
    assert config.loads_json(config.dumps(_cfg(tmp_path, TG))).telegram.enabled


def _up(cfg: Path, run_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FLATGUARD, "up", "--config", str(cfg), "--run-dir", str(run_dir)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(cfg.parent)})


def test_up_refuses_in_one_line_before_anything_starts(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    run_dir = tmp_path / "run"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        cfg.write_text(f'[metrics]\nport = {s.getsockname()[1]}\n[exchange]\nleverage = 500\n'
                       'symbols = ["BTCUSDT"]\n')
        r = _up(cfg, run_dir)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 3 and all(ln.startswith(f"error: {cfg}: ") for ln in lines), lines
    assert any("metrics.port" in ln for ln in lines)
    assert any("exchange.leverage" in ln for ln in lines)
    assert any("exchange.symbols" in ln for ln in lines)
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert not run_dir.exists()  # no journal, no lock: nothing to call unclean next time
    r = subprocess.run([*FLATGUARD, "config", "show", "--config", str(cfg)],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0 and '"leverage": 500' in r.stdout  # config show still shows it


# --- what needs the exchange: the connector refuses (exit 78), naming the key -----------------

class _Guard:
    async def call(self, name: str, fn, *args, essential: bool = False, **kw):  # noqa: ANN001
        return await fn(*args, **kw)


class _Ex:
    id = "fakeex"
    has = {"fetchLeverageTiers": True}
    markets = {"BTC/USDT:USDT": {}, "ETH/USDT:USDT": {}}

    def __init__(self) -> None:
        self.set: list[tuple[int, str]] = []

    async def fetch_leverage_tiers(self, symbols: list[str]) -> dict:
        caps = {"BTC/USDT:USDT": [125, 100, 20], "ETH/USDT:USDT": [75, 50]}
        return {s: [{"maxLeverage": m} for m in caps[s]] for s in symbols}

    async def set_leverage(self, lev: int, sym: str) -> None:
        self.set.append((lev, sym))


class _Conn:
    def __init__(self, leverage: int, symbols: tuple[str, ...]) -> None:
        self.xc = config.ExchangeConfig(leverage=leverage, symbols=symbols)
        self.guard = _Guard()
        self.tradable: list[str] = []


def test_connector_refuses_leverage_above_the_symbols_brackets() -> None:
    import asyncio

    from trader.connector.startup import Refusal, _leverage

    ex = _Ex()
    c = _Conn(100, ("BTC/USDT:USDT", "ETH/USDT:USDT"))
    with pytest.raises(Refusal) as e:
        asyncio.run(_leverage(c, ex))  # type: ignore[arg-type]
    assert str(e.value).startswith("exchange.leverage = 100 is above the maximum fakeex allows")
    assert "ETH/USDT:USDT (75x)" in str(e.value) and "BTC" not in str(e.value)
    assert ex.set == []  # nothing changed on the account
    c = _Conn(50, ("BTC/USDT:USDT", "ETH/USDT:USDT"))
    asyncio.run(_leverage(c, ex))  # type: ignore[arg-type]
    assert c.tradable == ["BTC/USDT:USDT", "ETH/USDT:USDT"] and len(ex.set) == 2
    c = _Conn(2, ("BTC/USDT:USDT", "DOGE/USDT:USDT"))
    with pytest.raises(Refusal, match=r"^exchange.symbols: DOGE/USDT:USDT not listed by fakeex"):
        asyncio.run(_leverage(c, ex))  # type: ignore[arg-type]


def test_up_with_a_symbol_the_exchange_does_not_list_is_a_refusal(tmp_path: Path) -> None:
    from tests.stack import Stack

    st = Stack('[exchange]\nsymbols = ["BTC/USDT:USDT", "DOGE/USDT:USDT"]\n')
    try:
        st.start(wait_ready=False)
        code = st.wait_exit(120)
        assert code == 78, st.output()
        assert "exit=78: refused by connector:" in st.lines[-1], st.output()
        assert "exchange.symbols: DOGE/USDT:USDT not listed" in st.lines[-1]
        assert "KILL SWITCH" not in st.output()
        again = Stack(st.config_path.read_text().replace("DOGE/USDT:USDT", "ETH/USDT:USDT"),
                      run_dir=st.run_dir)
        again.start()  # the refused run left the run directory clean: not HALTED
        assert again.status()["halted"] is False and "previous run" not in again.output()
        assert again.stop() == 0
    finally:
        st.close()
