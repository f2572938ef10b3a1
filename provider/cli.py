"""The ``tender provider`` commands: run the node, manage stake, show status.

Secrets never come from the command line: the key comes from ``[chain]`` (an environment
variable or an encrypted keystore)::

    tender provider run --config provider.toml
    tender provider stake 1000 --config provider.toml     # tokens (the token's decimals), or 10wei
    tender provider status --config provider.toml
    tender provider tokens --model models/lm --model-id 0x… --rpc … --market … --port 9100

Earnings are credited in the markets (``status`` shows them as "owed"); the node withdraws them
itself past ``provider.withdraw_threshold``, and ``tender market withdraw --config
provider.toml`` withdraws them by hand. Stake is another matter: ``tender provider unstake`` starts
the unstaking delay and ``tender provider redeem`` pays the unstaked stake out after it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, cast

import click
from rich.console import Console
from rich.table import Table

from provider._config import ProviderSection, load_config
from tender.config import ChainSection, role_config_option, token_market_options
from tender.errors import TenderError

if TYPE_CHECKING:
    from tender.chain import Staking, Token

_CONFIG = role_config_option("provider")


def _misbehave(config: ProviderSection, knobs: tuple[str, ...]) -> ProviderSection:
    """Apply ``--misbehave silent:N`` / ``--misbehave wrong-output:M`` (devnet demonstrations)."""
    changes: dict[str, int] = {}
    for knob in knobs:
        kind, _, number = knob.partition(":")
        field = {"silent": "silent_on_job", "wrong-output": "wrong_output_on_job"}.get(kind)
        if field is None or not number.isdigit() or int(number) < 1:
            raise click.BadParameter(
                f"{knob!r}: use silent:N or wrong-output:M (N, M >= 1)", param_hint="--misbehave"
            )
        changes[field] = int(number)
    if not changes:
        return config
    return config.model_copy(update={"misbehave": config.misbehave.model_copy(update=changes)})


@click.group("provider")
def group() -> None:
    """Run a GPU provider node: quote, infer, prove, deliver, get paid."""


@group.command()
@_CONFIG
@click.option(
    "--misbehave",
    "knobs",
    multiple=True,
    metavar="silent:N|wrong-output:M",
    help="devnet only: go silent on the N-th job, or deliver a wrong optimistic output on the M-th",
)
@click.option("--log-level", default="INFO", show_default=True)
def run(config_path: Path, knobs: tuple[str, ...], log_level: str) -> None:
    """Run the provider node until SIGTERM/SIGINT."""
    from provider._chain import ProviderChain
    from provider._node import ProviderNode, bind, process_age_s
    from tender.daemon import serve
    from tender.logs import setup_logging

    chain, config = load_config(config_path)
    config = _misbehave(config, knobs)
    key = chain.private_key()
    sock = bind(config.listen)  # a busy port: one line before anything starts
    try:
        setup_logging(level=log_level)
        markets = ProviderChain.connect(chain, confirmations=config.confirmations)
        age = process_age_s()  # the node is this process: its start-up began with the interpreter
        started_at = None if age is None else time.time() - age
        node = ProviderNode(config, chain=markets, key=key, sock=sock, started_at=started_at)
    except BaseException:
        sock.close()
        raise
    sys.exit(serve(node))


@group.command()
@token_market_options
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), required=True)
@click.option(
    "--gpu-hour-cost",
    type=click.IntRange(min=0),
    default=2 * 10**18,
    show_default=True,
    help="token units per GPU-hour (the per-1k price follows from it and the measured tokens/s)",
)
@click.option("--margin", type=click.FloatRange(0, 10), default=0.2, show_default=True)
@click.option(
    "--misbehave",
    type=click.Choice(["cheap", "truncate"]),
    default=None,
    help="devnet only: a cheat to demonstrate",
)
@click.option(
    "--cheap-model",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="what --misbehave cheap serves",
)
@click.option("--log-level", default="WARNING", show_default=True)
def tokens(
    model_path: Path,
    model_id: bytes,
    rpc: str,
    market: str,
    host: str,
    port: int,
    gpu_hour_cost: int,
    margin: float,
    misbehave: str | None,
    cheap_model: Path | None,
    log_level: str,
) -> None:
    """Serve a token model on TokenMarket (a token desk): quote per 1k tokens, stream, deliver.

    The key comes from the environment (TENDER_PRIVATE_KEY), never the command line.
    """
    import os

    import uvicorn

    from provider._tokens import Misbehaviour, TokenDesk, token_app
    from tender.chain import TokenMarket, TxSender, connect
    from tender.logs import setup_logging
    from tender.tokens import TokenModel

    key = os.environ.get("TENDER_PRIVATE_KEY", "")
    if not key:
        raise click.UsageError("TENDER_PRIVATE_KEY: the provider's key is not set")
    if misbehave == "cheap" and cheap_model is None:
        raise click.BadParameter("needed with --misbehave cheap", param_hint="--cheap-model")
    setup_logging(level=log_level)
    w3 = connect(rpc)
    model = TokenModel.load(model_path)
    token_market = TokenMarket(w3, market, sender=TxSender(w3, key))
    token_market.check_model(model_id, model.path)  # we serve what the registry pins
    desk = TokenDesk(
        model=model,
        market=token_market,
        key=key,
        model_id=model_id,
        gpu_hour_cost=gpu_hour_cost,
        margin=margin,
        misbehave=cast(Misbehaviour | None, misbehave),  # one of click.Choice's
        cheap_model=TokenModel.load(cheap_model) if cheap_model else None,
    )
    desk.warm_up()
    uvicorn.run(token_app(desk), host=host, port=port, log_level="warning")


def _staking(chain: ChainSection) -> tuple[Staking, Token, str]:
    from tender.chain import Deployment, Staking, Token, TxSender, connect

    w3 = connect(chain.rpc_url)
    deployment = Deployment.load(int(w3.eth.chain_id), path=chain.deployment)
    sender = TxSender(w3, chain.private_key(), confirmations=chain.confirmations)
    staking = Staking(w3, deployment.staking, sender=sender)
    token = Token(w3, deployment.token, sender=sender)
    return staking, token, sender.address


def _owed(chain: ChainSection, address: str) -> dict[str, int]:
    """What each market owes ``address`` (its earnings not yet withdrawn), by auction name."""
    from tender.chain import Deployment, Market, connect
    from tender.intents import AuctionType

    w3 = connect(chain.rpc_url)
    deployment = Deployment.load(int(w3.eth.chain_id), path=chain.deployment)
    return {
        name: Market(w3, market, auction=AuctionType[name.upper()]).owed(address)
        for name, market in deployment.markets.items()
    }


def _amount(token: Token, text: str) -> int:
    """AMOUNT in the token's decimals (``1000`` tokens, ``0.5``, or ``10wei`` base units)."""
    try:
        amount = token.parse(text, field="AMOUNT")
    except TenderError as exc:
        raise click.BadParameter(str(exc).removeprefix("AMOUNT: "), param_hint="AMOUNT") from exc
    if amount == 0:
        raise click.BadParameter("must be above 0", param_hint="AMOUNT")
    return amount


@group.command()
@click.argument("amount")
@_CONFIG
def stake(amount: str, config_path: Path) -> None:
    """Stake AMOUNT tokens: 1000 (tokens, in the token's decimals) or 10wei (base units).
    Approves Staking first; a failed stake takes the approval back."""
    chain, _ = load_config(config_path)
    staking, token, address = _staking(chain)
    units = _amount(token, amount)
    before = token.allowance(address, staking.address)
    token.ensure_allowance(staking.address, units)
    try:
        staking.stake(units)
    except BaseException:
        token.restore_allowance(staking.address, before)  # leave no allowance behind
        raise
    click.echo(
        f"staked {token.format(units)}; stake of {address} is now {token.format(staking.stake_of(address))}"
    )


@group.command()
@click.argument("amount")
@_CONFIG
def unstake(amount: str, config_path: Path) -> None:
    """Start unstaking AMOUNT tokens (1000, or 10wei base units); `redeem` them after the
    unstaking delay."""
    chain, _ = load_config(config_path)
    staking, token, address = _staking(chain)
    staking.unstake(_amount(token, amount))
    unstaking, ready_at = staking.unstaking_of(address)
    click.echo(f"unstaking {token.format(unstaking)}, redeemable at {ready_at}")


@group.command()
@_CONFIG
def redeem(config_path: Path) -> None:
    """Pay out stake whose unstaking delay has passed (earnings: `tender market withdraw`)."""
    chain, _ = load_config(config_path)
    staking, token, address = _staking(chain)
    staking.redeem()
    click.echo(f"redeemed; token balance of {address} is {token.format(token.balance_of(address))}")


@group.command()
@_CONFIG
def status(config_path: Path) -> None:
    """Show stake, unstaking, what the markets owe, and the local job store."""
    from provider._store import JobStore, WorkStep

    chain, config = load_config(config_path)
    console = Console()
    table = Table(title="provider", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    chain_error: TenderError | None = None
    try:
        staking, token, address = _staking(chain)
        unstaking, ready_at = staking.unstaking_of(address)
        table.add_row("address", address)
        table.add_row("stake", token.format(staking.stake_of(address)))
        table.add_row("locked", token.format(staking.locked_of(address)))
        table.add_row("unstaking", f"{token.format(unstaking)} (ready at {ready_at})")
        table.add_row("balance", token.format(token.balance_of(address)))
        for name, owed in _owed(chain, address).items():
            table.add_row(
                f"owed by {name} market", f"{token.format(owed)} (tender market withdraw)" if owed else "0"
            )
    except TenderError as exc:
        chain_error = exc
        table.add_row("chain", f"[red]{exc}[/red]")
    store_path = config.store_path()
    if store_path.exists():
        store = JobStore(store_path)
        table.add_row("jobs", ", ".join(f"{s.value} {store.count(step=s)}" for s in WorkStep))
        store.close()
    else:
        table.add_row("jobs", f"no store at {store_path}")
    console.print(table)
    if chain_error is not None:  # the local part was shown; the status itself is incomplete
        raise chain_error


@group.command()
@_CONFIG
@click.option(
    "--endpoint", help="URL solvers reach the node at [default: provider.public_url, else http://LISTEN]"
)
@click.option(
    "--model-id",
    "model_ids",
    multiple=True,
    help="registry id served (repeatable) [default: each model's model_id, else every id "
    "registered for its bundle]",
)
def register(config_path: Path, endpoint: str | None, model_ids: tuple[str, ...]) -> None:
    """Publish the operator record (Staking.registerOperator): endpoint, region, hardware, models."""
    chain, config = load_config(config_path)
    staking, _, address = _staking(chain)
    endpoint = endpoint or config.public_url or f"http://{config.listen}"
    ids = list(model_ids) or _served_model_ids(chain, config)
    try:
        raw = [bytes.fromhex(i.removeprefix("0x")) for i in ids]
    except ValueError:
        raise click.BadParameter(f"not a 32-byte hex id: {ids}", param_hint="--model-id") from None
    if any(len(i) != 32 for i in raw):
        raise click.BadParameter(f"not a 32-byte hex id: {ids}", param_hint="--model-id")
    hardware = config.hardware.encode()[:32].ljust(32, b"\x00")
    region = bytes.fromhex(config.region.removeprefix("0x"))
    staking.register_operator(endpoint, region=region, hardware_class=hardware, models=raw)
    click.echo(
        f"operator {address} registered: {endpoint}, region {config.region}, {config.hardware}, "
        f"{len(raw)} model(s)"
    )


@group.command()
@click.argument("solver")
@_CONFIG
@click.option("--revoke", is_flag=True, help="withdraw the authorisation instead")
def authorize(solver: str, config_path: Path, revoke: bool) -> None:
    """Let SOLVER (an address) bid, fill, deliver and prove for this provider (Staking.setSolver)."""
    from web3 import Web3

    if not Web3.is_address(solver):
        raise click.BadParameter(
            f"not an address: {solver!r} (0x followed by 40 hex digits)", param_hint="SOLVER"
        )
    chain, _ = load_config(config_path)
    staking, _, address = _staking(chain)
    solver = Web3.to_checksum_address(solver)
    staking.set_solver(solver, not revoke)
    allowed = staking.is_authorized(address, solver)
    click.echo(f"solver {solver} {'may' if allowed else 'may not'} act for {address}")


def _served_model_ids(chain: ChainSection, config: ProviderSection) -> list[str]:
    """The registry ids of the configured models: ``model_id`` when set, else every id whose ONNX
    and settings hashes match the model's bundle (as the node itself decides at start-up)."""
    import asyncio

    from provider._bundles import load_bundle_info

    registered: list[tuple[str, str, str]] | None = None
    ids: list[str] = []
    for entry in config.models:
        if entry.model_id:
            ids.append(entry.model_id)
            continue
        if entry.bundle is None:
            continue
        if registered is None:
            registered = asyncio.run(_registered_models(chain))
        bundle = load_bundle_info(entry.bundle)
        ids += [
            mid
            for mid, onnx, settings in registered
            if onnx == bundle.onnx_sha256 and settings == bundle.settings_sha256
        ]
    return ids


async def _registered_models(chain: ChainSection) -> list[tuple[str, str, str]]:
    from provider._chain import ProviderChain

    markets = ProviderChain.connect(chain)
    try:
        return await markets.registered_models()
    finally:
        await markets.close()
