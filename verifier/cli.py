"""``tender verifier …`` and ``tender audit``.

::

    tender verifier run --config verifier.toml      # the agent (key from TENDER_PRIVATE_KEY)
    tender verifier status --config verifier.toml   # what it did and earned
    tender verifier tokens --model models/lm --model-id 0x… --rpc … --market … --listen 127.0.0.1:7500
    tender audit --from-block 0 --json              # audit every job from chain data alone
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from tender.config import parse_bytes32, token_market_options
from tender.logs import setup_logging


@click.group("verifier")
def group() -> None:
    """The verifier agent: challenges wrong results, expires and finalizes jobs, relays proofs."""


@group.command("run")
@click.option(
    "--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True
)
@click.option("--log-level", default="INFO", show_default=True)
@click.option("--json-logs/--rich-logs", default=None, help="log format (default: JSON unless on a terminal)")
def run(config_path: Path, log_level: str, json_logs: bool | None) -> None:
    """Run the agent until SIGTERM/SIGINT (the key comes from the environment or a keystore)."""
    from verifier._agent import run_agent
    from verifier._config import load_config

    setup_logging(level=log_level, json_lines=json_logs)
    sys.exit(run_agent(load_config(config_path)))


#: ``--backend``: onnxruntime's graph optimisation level (a re-executor on another backend than
#: the provider's: its logits differ slightly, which the δ rule allows for)
_BACKENDS = {
    "disable-all": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


@group.command("tokens")
@token_market_options
@click.option("--listen", default=None, help="host:port for request disclosures (off when unset)")
@click.option(
    "--store",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="SQLite file for disclosed requests (default: cache/verifier-tokens-<address>.db)",
)
@click.option("--from-block", type=click.IntRange(min=0), default=0, show_default=True)
@click.option(
    "--watch/--no-watch", default=True, show_default=True, help="challenge deliveries that fail re-execution"
)
@click.option(
    "--vote/--no-vote", default=True, show_default=True, help="vote on disputes (a registered re-executor)"
)
@click.option(
    "--keep/--no-keep",
    default=True,
    show_default=True,
    help="finalize and expire jobs when their windows end",
)
@click.option("--backend", type=click.Choice(sorted(_BACKENDS)), default="all", show_default=True)
@click.option(
    "--threads", type=click.IntRange(0, 64), default=1, show_default=True, help="0: onnxruntime's choice"
)
@click.option("--poll-interval", type=click.FloatRange(0.05, 60), default=0.5, show_default=True)
@click.option("--log-level", default="INFO", show_default=True)
@click.option("--json-logs/--rich-logs", default=None, help="log format (default: JSON unless on a terminal)")
def tokens(
    model_path: Path,
    model_id: bytes,
    rpc: str,
    market: str,
    listen: str | None,
    store: Path | None,
    from_block: int,
    watch: bool,
    vote: bool,
    keep: bool,
    backend: str,
    threads: int,
    poll_interval: float,
    log_level: str,
    json_logs: bool | None,
) -> None:
    """Keep a token model honest on TokenMarket: re-execute, challenge, vote, finalize and expire.

    The key comes from the environment (TENDER_PRIVATE_KEY), never the command line.
    """
    import os

    import onnxruntime as ort

    from tender.chain import TokenMarket, TxSender, connect
    from tender.daemon import serve
    from tender.paths import cache_dir
    from tender.tokens import TokenModel
    from verifier._tokens import RequestStore, TokenDuties, TokenVerifier

    key = os.environ.get("TENDER_PRIVATE_KEY", "")
    if not key:
        raise click.UsageError("TENDER_PRIVATE_KEY: the verifier's key is not set")
    if listen is not None and not listen.rpartition(":")[2].isdigit():
        raise click.BadParameter(f"{listen!r}: host:port", param_hint="--listen")
    setup_logging(level=log_level, json_lines=json_logs)
    w3 = connect(rpc)
    sender = TxSender(w3, key)
    level = getattr(ort.GraphOptimizationLevel, _BACKENDS[backend])
    verifier = TokenVerifier(
        market=TokenMarket(w3, market, sender=sender),
        model=TokenModel.load(model_path, optimization=level, threads=threads),
        model_id=model_id,
        store=RequestStore(store or cache_dir() / f"verifier-tokens-{sender.address.lower()}.db"),
        duties=TokenDuties(watch=watch, vote=vote, keep=keep),
        listen=listen,
        from_block=from_block,
        poll_interval_s=poll_interval,
    )
    sys.exit(serve(verifier))


@group.command("status")
@click.option(
    "--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True
)
@click.option(
    "--chain-id", type=int, default=31337, show_default=True, help="which state file (default path)"
)
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def status(config_path: Path, chain_id: int, as_json: bool) -> None:
    """What the agent has done: jobs by state and verdict, actions, rewards (reads its state file)."""
    from verifier._config import load_config
    from verifier._store import Store

    config = load_config(config_path)
    store_path = config.verifier.store_path(chain_id)
    if not store_path.is_file():  # opening it would create an empty store
        click.echo(
            f"no agent store at {store_path}: the agent has not run with this config on chain {chain_id}"
        )
        return
    store = Store(store_path)
    jobs = store.jobs()
    actions = list(store.actions())
    rewards = store.rewards()
    tables: dict[str, dict[str, int | str]] = {
        "jobs": _count(j.state.name.lower() for j in jobs),
        "verdicts": _count(j.verdict for j in jobs if j.verdict),
        "actions": _count(f"{a.kind.split(':')[0]}.{a.status}" for a in actions),
        "rewards": {k: str(v) for k, v in rewards.items()},
    }
    if as_json:
        click.echo(json.dumps({"cursor": store.cursor, **tables}, indent=2))
        return
    console = Console()
    for title in ("jobs", "verdicts", "actions", "rewards"):
        table = Table(title=title)
        table.add_column("what")
        table.add_column("count" if title != "rewards" else "amount", justify="right")
        for key, value in sorted(tables[title].items()):
            table.add_row(key, str(value))
        console.print(table)
    console.print(f"scanned up to block {store.cursor}")


def _job_id(text: str) -> bytes:
    """A ``--job`` value as 32 bytes (``click.BadParameter`` naming the option otherwise)."""
    return parse_bytes32(text, what="job id", option="--job")


def _count(values: Iterable[object]) -> dict[str, int | str]:
    out: dict[str, int | str] = {}
    for value in values:
        out[str(value)] = int(out.get(str(value), 0)) + 1
    return out


@click.command("audit")
@click.option("--job", "jobs", multiple=True, help="audit only this job id (0x…; repeatable)")
@click.option("--from-block", type=int, default=None, help="first block (default: the deployment's)")
@click.option("--to-block", type=int, default=None, help="last block (default: the head)")
@click.option("--json", "as_json", is_flag=True, help="print a machine-readable report")
@click.option("--rpc", "rpc_url", default="http://127.0.0.1:8545", show_default=True, envvar="TENDER_RPC_URL")
@click.option(
    "--deployment",
    "deployment_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="deployment JSON (default: deployments/<chainId>.json)",
)
@click.option(
    "--bundles",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="folders with model bundles (the cache's models/ is always searched)",
)
@click.option("--fetch-inputs", is_flag=True, help="also fetch inputs from URIs to check commitments")
@click.option("--no-offchain", is_flag=True, help="skip EZKL verification (verifier contract only)")
@click.option("--workers", type=int, default=8, show_default=True)
def audit(
    jobs: tuple[str, ...],
    from_block: int | None,
    to_block: int | None,
    as_json: bool,
    rpc_url: str,
    deployment_path: Path | None,
    bundles: tuple[Path, ...],
    fetch_inputs: bool,
    no_offchain: bool,
    workers: int,
) -> None:
    """Rebuild settled jobs from chain data alone and check proofs, inputs and amounts.

    Exits 0 when everything matches, 1 on any mismatch.
    """
    from tender.chain import Deployment, connect
    from verifier._audit import Auditor
    from verifier._models import Catalogue

    ids = [_job_id(j) for j in jobs] or None
    w3 = connect(rpc_url)
    deployment = Deployment.load(int(w3.eth.chain_id), path=deployment_path)
    auditor = Auditor(
        w3,
        deployment,
        catalogue=Catalogue(bundles),
        fetch_inputs=fetch_inputs,
        offchain=not no_offchain,
        workers=workers,
    )
    report = auditor.run(from_block=from_block, to_block=to_block, job_ids=ids)
    missing = sorted({"0x" + i.hex() for i in ids or []} - {j.job_id.lower() for j in report.jobs})
    if missing:  # nothing audited is not "audit passed"
        raise click.BadParameter(
            f"no such job on this deployment's markets: {', '.join(missing)}", param_hint="--job"
        )
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        Console().print(report)
    sys.exit(0 if report.ok else 1)
