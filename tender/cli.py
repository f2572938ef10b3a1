"""The ``tender`` command.

One command with a group per role. Groups that live in the shared package (``model``,
``devnet``, ``request``, ``market``) are added here; the roles (``provider``, ``solver``, ``verifier``,
``audit``) add theirs through the ``tender.cli`` entry-point group, so the shared package never
imports a role.

``pip install tender`` is the light SDK: a group whose extra is not installed (``tender.extras``)
is still listed, and running it prints one line naming the extra, exit code 2.
"""

from __future__ import annotations

import json
import os
import sys
from importlib import import_module
from importlib.metadata import entry_points

import click

from tender.errors import MissingExtra, TenderError
from tender.extras import extra_of, missing

#: Groups of the shared package: (module, attribute, command name, the extra it needs or None).
#: A module that is absent is skipped.
_BUILTIN_GROUPS = (
    ("tender.models", "cli_group", "model", "provider"),
    ("tender.devnet", "cli_group", "devnet", "devnet"),
    ("tender.client", "cli_group", "request", None),
    ("tender.client", "market_group", "market", None),
    ("tender.client", "intent_group", "intent", None),
    ("tender.client._token_cli", "token_group", "token", None),
)
#: The extra each role's entry point (group ``tender.cli``) needs.
_ROLE_EXTRAS = {"provider": "provider", "solver": "solver", "verifier": "verifier", "audit": "verifier"}


#: Set by ``--debug`` (or ``TENDER_DEBUG=1``): errors keep their traceback.
_debug = False


def _set_debug(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    global _debug
    _debug = _debug or value
    return value


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tender")
@click.option(
    "--debug",
    is_flag=True,
    is_eager=True,
    expose_value=False,
    callback=_set_debug,
    help="show the full traceback of an error (also TENDER_DEBUG=1)",
)
def cli() -> None:
    """Tender: every inference request bought in its own auction and paid only against proof."""


def _needs_extra(name: str, extra: str) -> click.Command:
    """Stands in for the command ``name`` while ``extra`` is not installed: any use of it is
    the one-line error naming the extra (:class:`~tender.errors.MissingExtra`, exit code 2)."""

    def refuse() -> None:
        raise MissingExtra(f"tender {name}", extra)

    return click.Command(
        name,
        callback=refuse,
        add_help_option=False,
        help=f"(not installed: pip install 'tender[{extra}]')",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )


def _add_groups() -> None:
    for module_name, attr, name, extra in _BUILTIN_GROUPS:
        if extra is not None and missing(extra):
            cli.add_command(_needs_extra(name, extra))
            continue
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
        extra = _ROLE_EXTRAS.get(entry.name)
        if extra is not None and missing(extra):
            cli.add_command(_needs_extra(entry.name, extra))
            continue
        command = entry.load()
        if isinstance(command, click.Command):
            cli.add_command(command, name=entry.name)


_add_groups()


def error_line(exc: BaseException) -> str:
    """What ``tender`` prints for an error: one line, naming what was wrong."""
    import requests

    if isinstance(exc, click.UsageError) and exc.ctx is not None:
        text = f"{exc.ctx.command_path}: {exc.format_message()}"
    elif isinstance(exc, click.ClickException):
        text = exc.format_message()
    elif isinstance(exc, TenderError):
        text = str(exc)
    elif isinstance(exc, ModuleNotFoundError) and exc.name and (extra := extra_of(exc.name)):
        text = str(MissingExtra("this command", extra, module=exc.name))
    elif isinstance(exc, requests.RequestException):
        url = getattr(exc.request, "url", None) if exc.request is not None else None
        text = f"cannot reach the JSON-RPC node{f' at {url}' if url else ''}: {type(exc).__name__}"
    elif isinstance(exc, json.JSONDecodeError):
        text = f"malformed JSON: {exc}"
    elif isinstance(exc, OSError) and exc.filename is not None:
        text = f"{exc.strerror or type(exc).__name__}: {exc.filename}"
    else:
        text = f"{type(exc).__name__}: {exc} (tender --debug ... shows the traceback)"
    return " ".join(text.split()) or type(exc).__name__


def main() -> None:
    """Console entry point: every error is one line on stderr and exit code 2.

    ``--debug`` (or ``TENDER_DEBUG=1``) lets the error escape with its traceback instead. The
    only other non-zero codes are the documented ones: 130 for Ctrl-C, and the outcome codes
    of ``tender request run``.
    """
    global _debug
    _debug = _debug or os.environ.get("TENDER_DEBUG", "") not in ("", "0")
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # the one place an error becomes a line and an exit code
        if _debug:
            raise
        click.secho(f"error: {error_line(exc)}", fg="red", err=True)
        sys.exit(2)
