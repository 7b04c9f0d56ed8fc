"""The ``flatguard`` command line.

Subcommands are imported only when used: ``flatguard ctl`` must start in well under 150 ms, so
this module imports neither ccxt nor prometheus_client nor aiohttp.
"""

from __future__ import annotations

import importlib
import sys

import click

# name -> "module:attribute" of a click command, loaded on first use
LAZY = {
    "up": "supervisor.up_cmd:up",
    "config": "supervisor.config_cmd:config_group",
    "sim": "trader.sim.cli:sim",
    "ctl": "commander.cli:ctl",
    "keys": "commander.cli:keys",
    "service": "supervisor.ops_cmd:service_group",
    "prometheus": "supervisor.ops_cmd:prometheus_group",
    "grafana": "supervisor.ops_cmd:grafana_group",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(LAZY)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = LAZY.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="flatguard")
def cli() -> None:
    """flatguard: a trading runtime that never leaves positions unmanaged."""


def main() -> None:
    cli(prog_name="flatguard")


if __name__ == "__main__":
    main()
    sys.exit(0)
