"""The command handlers; importing this package registers every command."""

from commander.commands import halt, misc, status, trading  # noqa: F401
