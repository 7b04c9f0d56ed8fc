"""Operations commands: ``flatguard service``, ``flatguard prometheus``, ``flatguard grafana``.

Thin front ends: the units are rendered by ``supervisor/service.py``, the rules and the scrape
job by ``supervisor/prom_rules.py``, the dashboard by ``supervisor/grafana.py``. None of them
starts anything or needs the exchange.
"""

from __future__ import annotations

from pathlib import Path

import click


@click.group("service")
def service_group() -> None:
    """Run flatguard as a systemd service."""


@service_group.command("install")
@click.option("--user", "user", is_flag=True,
              help="a user unit (~/.config/systemd/user) instead of a system unit")
@click.option("--unit-dir", type=click.Path(file_okay=False), default=None,
              help="write the unit here (default: /etc/systemd/system, or the user unit dir)")
@click.option("--config", "config_path", default=None,
              help="TOML config for the unit (checked now); with --template a path using %i "
                   "(default %E/flatguard/%i.toml)")
@click.option("--name", default="flatguard", show_default=True,
              help="unit name; also names the run directory (/var/lib/NAME)")
@click.option("--template", is_flag=True,
              help="write NAME@.service: one stack per account (instance %i)")
@click.option("--run-as", default=None, help="system units: the user (and group) to run as")
@click.option("--dry-run", is_flag=True, help="print the unit instead of writing it")
def install(user: bool, unit_dir: str | None, config_path: str | None, name: str,
            template: bool, run_as: str | None, dry_run: bool) -> None:
    """Write a systemd unit that runs `flatguard up` (Type=notify, watchdog, orderly stop)."""
    from supervisor import service

    try:
        spec = service.build_spec(name, user, template, config_path, run_as)
    except service.ServiceError as e:
        raise click.ClickException(str(e)) from None
    if dry_run:
        click.echo(service.render(spec), nl=False)
        return
    where = Path(unit_dir) if unit_dir else service.default_unit_dir(user)
    try:
        target = service.install(spec, where)
    except OSError as e:
        hint = " (run as root, or use --user)" if isinstance(e, PermissionError) else ""
        raise click.ClickException(f"cannot write the unit to {where}: {e.strerror}{hint}") \
            from None
    for line in service.next_steps(spec, target):
        click.echo(line)


@click.group("prometheus")
def prometheus_group() -> None:
    """Prometheus configuration that ships with flatguard."""


@prometheus_group.command("rules")
def rules() -> None:
    """Print alerting rules (YAML, for rule_files:)."""
    from supervisor import prom_rules

    click.echo(prom_rules.rules_yaml(), nl=False)


@prometheus_group.command("scrape-config")
@click.option("--targets-dir", default="/etc/prometheus/flatguard", show_default=True,
              help="directory of file_sd target files, one per stack")
@click.option("--interval", default="15s", show_default=True, help="scrape interval")
def scrape_config(targets_dir: str, interval: str) -> None:
    """Print a scrape job (file-based service discovery: one target file per stack)."""
    from supervisor import prom_rules

    click.echo(prom_rules.scrape_yaml(targets_dir, interval), nl=False)


@click.group("grafana")
def grafana_group() -> None:
    """Grafana dashboards that ship with flatguard."""


@grafana_group.command("dashboard")
def dashboard() -> None:
    """Print the dashboard JSON (import it in Grafana; pick the Prometheus data source)."""
    import json

    from supervisor import grafana

    click.echo(json.dumps(grafana.dashboard(), indent=2))
