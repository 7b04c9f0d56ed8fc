"""``flatguard ctl`` and ``flatguard keys`` (attached to the ``flatguard`` group by the supervisor's
CLI). Only click is imported at module level: ``ctl`` must start fast."""

from __future__ import annotations

import json
import sys

import click

CTL_SETTINGS = {"ignore_unknown_options": True, "allow_interspersed_args": True,
                "help_option_names": ["-h", "--help"]}


@click.command("ctl", context_settings=CTL_SETTINGS)
@click.option("--run-dir", type=click.Path(file_okay=False), default=None,
              help="run directory (default $FLATGUARD_RUN_DIR or ~/.local/state/flatguard)")
@click.option("--json", "as_json", is_flag=True, help="print the reply as JSON")
@click.option("--yes", is_flag=True, help="confirm a risk-adding command (resume, unpause, ...)")
@click.option("--timeout", type=click.FloatRange(min=0.1, max=120), default=5.0,
              show_default=True, help="seconds to wait for the answer")
@click.option("--endpoint", default=None, help="tcp://host:port of a remote CURVE endpoint")
@click.option("--server-key", type=click.Path(dir_okay=False), default=None,
              help="the server's public .key file (with --endpoint)")
@click.option("--client-key", type=click.Path(dir_okay=False), default=None,
              help="your .key_secret file (with --endpoint)")
@click.argument("command")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def ctl(run_dir: str | None, as_json: bool, yes: bool, timeout: float, endpoint: str | None,
        server_key: str | None, client_key: str | None, command: str,
        args: tuple[str, ...]) -> None:
    """Send COMMAND to the running stack (`flatguard ctl help` lists the commands).

    Exit 0 ok, 1 refused or failed, 2 usage, 3 no answer.
    """
    from commander.client import OK, call

    out = call(command, args, run_dir=run_dir, endpoint=endpoint, server_key=server_key,
               client_key=client_key, yes=yes, timeout=timeout)
    if as_json:
        click.echo(json.dumps(out.as_json(), indent=2, sort_keys=True, default=str))
    elif out.code == OK:
        click.echo(out.text)
    else:
        click.echo(f"error: {out.text}", err=True)
    sys.exit(out.code)


@click.command("keys")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--name", default="client", show_default=True,
              help="file name stem: NAME.key (public) and NAME.key_secret")
def keys(directory: str, name: str) -> None:
    """Generate a CURVE key pair for the TCP control endpoint."""
    from commander.curve import CurveError, generate

    try:
        pub, sec = generate(directory, name)
    except CurveError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"public key: {pub}\nsecret key: {sec} (mode 0600, keep it private)")
    click.echo("server: control.server_key = the server's .key_secret; clients' .key files go "
               "into the control.allowed_keys directory")


if __name__ == "__main__":  # `python -m commander.cli ...` == `flatguard ctl ...` (tests, no entry point)
    ctl()
