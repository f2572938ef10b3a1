"""The ``tender solver`` commands::

    tender solver run --config solver.toml       # the daemon, until SIGTERM/SIGINT
    tender solver status --config solver.toml    # what its store says (no chain access)

The key comes from ``[chain]`` (an environment variable or an encrypted keystore), never from
the command line.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from solver._config import load_config
from tender.config import role_config_option

_CONFIG = role_config_option("solver")


@click.group("solver")
def group() -> None:
    """Run a solver: follow intents, quote providers, bid or fill, hand jobs over."""


@group.command()
@_CONFIG
@click.option("--log-level", default="INFO", show_default=True)
def run(config_path: Path, log_level: str) -> None:
    """Run the solver until SIGTERM/SIGINT (exit code 1 if a task failed)."""
    from solver._solver import Solver
    from tender.daemon import serve
    from tender.logs import setup_logging

    chain, section = load_config(config_path)
    setup_logging(level=log_level)
    sys.exit(serve(Solver(section, chain)))


@group.command()
@_CONFIG
def status(config_path: Path) -> None:
    """Jobs by pursuit (how far the solver took each) and the last processed block, from its store."""
    from solver._store import Store

    _, section = load_config(config_path)
    if not Path(section.store).is_file():  # opening it would create an empty store
        click.echo(f"no solver store at {section.store}: the solver has not run with this config")
        return
    store = Store(section.store)
    try:
        table = Table(title=f"solver store {section.store}")
        table.add_column("pursuit")
        table.add_column("jobs", justify="right")
        for pursuit, count in sorted(store.counts().items()):
            table.add_row(pursuit, str(count))
        Console().print(table)
        Console().print(f"last processed block: {store.cursor}")
    finally:
        store.close()
