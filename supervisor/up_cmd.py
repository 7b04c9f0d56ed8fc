"""``flatguard up``: start the whole stack in the foreground."""

from __future__ import annotations

import sys

import click


@click.command("up")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="TOML config file (default: built-in simulated exchange, demo strategy)")
@click.option("--run-dir", default=None,
              help="run directory (default: $FLATGUARD_RUN_DIR or ~/.local/state/flatguard)")
@click.option("--log-file", type=click.Path(dir_okay=False, resolve_path=True), default=None,
              help="every process's log lines to this file, rotated ([logging] file; "
                   "default: stderr)")
def up(config_path: str | None, run_dir: str | None, log_file: str | None) -> None:
    """Start every process, watch them, and keep the account managed until stopped."""
    from supervisor.lifecycle import up_main

    sys.exit(up_main(config_path, run_dir, log_file))
