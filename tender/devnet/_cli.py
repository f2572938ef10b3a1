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
    type=click.IntRange(0, 10_000),
    default=None,
    help="how many requests the workload sends [default: 40; 0 with --keep-running]",
)
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="write the summary JSON here")
@click.option(
    "--png",
    "png_path",
    type=click.Path(path_type=Path),
    help="the latency/price chart [default: RUN_DIR/chart.png]",
)
@click.option("--no-png", is_flag=True, help="write no chart")
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
    "--run-dir",
    type=click.Path(path_type=Path),
    help="configs and logs [default: .cache/tender/devnet/<time>]",
)
@click.option(
    "--keep-running",
    is_flag=True,
    help="after the workload, keep the chain, providers, solvers and verifier running until Ctrl-C; "
    "writes the deployment to deployments/<chainId>.json and .cache/tender/network.env",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    help="Anvil's port [default: a free one; 8545 with --keep-running]",
)
@click.option(
    "--quotes",
    "n_quotes",
    type=click.IntRange(0, 10_000),
    default=None,
    help="quote-market (RFQ) requests beside the workload [default: a quarter of --requests]",
)
@click.option(
    "--tokens",
    "n_tokens",
    type=click.IntRange(0, 1_000),
    default=None,
    help="token-model requests (TokenMarket: per-1k RFQ, streamed, re-execution audits) "
    "[default: 8 when --requests >= 8, else 0]",
)
@click.option(
    "--block-time",
    type=click.FloatRange(0.1, 60),
    default=None,
    help="seconds between blocks (Anvil interval mining, as on an L2) [default: a block per transaction]",
)
@click.option(
    "--proving-idle/--proving-nice",
    default=False,
    show_default=True,
    help="the providers prove under SCHED_IDLE (only idle cycles; Linux) or niced (provider.proving_idle)",
)
def cli_group(
    n_requests: int | None,
    json_path: Path | None,
    png_path: Path | None,
    no_png: bool,
    no_live: bool,
    seed: int,
    concurrency: int,
    faults: bool | None,
    no_audit: bool,
    run_dir: Path | None,
    keep_running: bool,
    port: int | None,
    n_quotes: int | None,
    n_tokens: int | None,
    block_time: float | None,
    proving_idle: bool,
) -> None:
    """Start a local chain and the whole market, run a workload, print a summary.

    Exit code 0 only when every request reached a terminal state, the expected expiry,
    challenge and slashes happened, and `tender audit` is clean. Ctrl-C stops every process
    (exit code 130).

    With --keep-running (a persistent local network for the quickstarts) the workload is empty
    unless --requests is given, the chain listens on port 8545 unless --port is given, and the
    network stays up, printing its RPC URL, deployment, solvers and funded dev keys, until Ctrl-C.
    """
    from tender.devnet._run import Devnet, DevnetOptions

    if n_requests is None:
        n_requests = 0 if keep_running else 40
    if n_requests == 0 and not keep_running:
        raise click.BadParameter("0 requests only with --keep-running", param_hint="--requests")
    if port is None and keep_running:
        port = 8545
    options = DevnetOptions(
        requests=n_requests,
        seed=seed,
        live=not no_live and sys.stdout.isatty(),
        json_path=json_path,
        png_path=None if no_png else png_path,
        png=not no_png,
        run_dir=run_dir,
        concurrency=concurrency,
        faults=faults,
        audit=not no_audit,
        keep_running=keep_running,
        port=port,
        quotes=n_quotes,
        tokens=n_tokens,
        block_time=block_time,
        proving_idle=proving_idle,
    )
    console = Console()
    try:
        code = Devnet(options, console=console).run()
    except KeyboardInterrupt:
        console.print("[yellow]stopped[/]")
        sys.exit(130)
    sys.exit(code)
