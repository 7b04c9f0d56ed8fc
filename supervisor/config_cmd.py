"""``flatguard config show``: print the effective configuration."""

from __future__ import annotations

import click

from trader.kernel import config


@click.group("config")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command("show")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="TOML config file (default: the embedded defaults)")
def show(config_path: str | None) -> None:
    """Print the effective config (defaults merged with FILE) as JSON."""
    try:
        cfg = config.load(config_path)
    except config.ConfigError as e:
        raise click.ClickException(str(e)) from None
    click.echo(config.dumps(cfg))
