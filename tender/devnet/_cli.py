"""``tender devnet``: the whole market on a local chain (what ``make demo`` runs)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console

__all__ = ["cli_group"]


@click.command("devnet")
@click.option(
    "--requests",
    "n_requests",
    type=click.IntRange(1, 10_000),
    default=40,
    show_default=True,
    help="how many requests the workload sends",
)
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="write the summary JSON here")
@click.option("--png", "png_path", type=click.Path(path_type=Path), help="write the latency/price chart here")
@click.option("--no-live", is_flag=True, help="no live view (plain progress lines)")
@click.option("--seed", type=int, default=0, show_default=True, help="workload seed")
@click.option(
    "--concurrency",
    type=click.IntRange(1, 256),
    default=4,
    show_default=True,
    help="requests in flight at once",
)
@click.option(
    "--faults/--no-faults",
    default=None,
    help="aim requests at the misbehaving provider (default: on from 10 requests)",
)
@click.option("--no-audit", is_flag=True, help="skip `tender audit` at the end")
@click.option(
    "--run-dir", type=click.Path(path_type=Path), help="configs and logs (default: cache/devnet/<time>)"
)
def cli_group(
    n_requests: int,
    json_path: Path | None,
    png_path: Path | None,
    no_live: bool,
    seed: int,
    concurrency: int,
    faults: bool | None,
    no_audit: bool,
    run_dir: Path | None,
) -> None:
    """Start a local chain and the whole market, run a workload, print a summary.

    Exit code 0 only when every request reached a terminal state, the expected expiry,
    challenge and slashes happened, and `tender audit` is clean. Ctrl-C stops every process.
    """
    from tender.devnet._run import Devnet, DevnetOptions

    options = DevnetOptions(
        requests=n_requests, seed=seed, live=not no_live and sys.stdout.isatty(), json_path=json_path,
        png_path=png_path, run_dir=run_dir, concurrency=concurrency, faults=faults, audit=not no_audit,
    )  # fmt: skip
    console = Console()
    try:
        code = Devnet(options, console=console).run()
    except KeyboardInterrupt:
        console.print("[yellow]stopped[/]")
        sys.exit(130)
    sys.exit(code)
