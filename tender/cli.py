"""The ``tender`` command.

One command with a group per role. Groups that live in the shared package (``model``,
``devnet``, ``request``, ``market``) are added here; the roles (``provider``, ``solver``, ``verifier``,
``audit``) add theirs through the ``tender.cli`` entry-point group, so the shared package never
imports a role.
"""

from __future__ import annotations

import sys
from importlib import import_module
from importlib.metadata import entry_points

import click

from tender.errors import TenderError

#: Groups of the shared package: (module, attribute). A module that is absent is skipped.
_BUILTIN_GROUPS = (
    ("tender.models", "cli_group"),
    ("tender.devnet", "cli_group"),
    ("tender.client", "cli_group"),
    ("tender.client", "market_group"),
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tender")
def cli() -> None:
    """Tender: every inference request bought in its own auction and paid only against proof."""


def _add_groups() -> None:
    for module_name, attr in _BUILTIN_GROUPS:
        try:
            module = import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        command = getattr(module, attr, None)
        if isinstance(command, click.Command):
            cli.add_command(command)
    for entry in entry_points(group="tender.cli"):
        command = entry.load()
        if isinstance(command, click.Command):
            cli.add_command(command, name=entry.name)


_add_groups()


def main() -> None:
    """Console entry point: TenderErrors become one clear line and exit code 2."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except TenderError as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(2)
