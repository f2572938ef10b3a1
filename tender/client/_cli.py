"""``tender request``: buy an inference from the command line; ``tender market``: what the
markets owe you, and withdrawing it.

The key comes from ``TENDER_PRIVATE_KEY`` (or a keystore named in a config file's ``[chain]``
section), never from a flag::

    export TENDER_PRIVATE_KEY=0x...
    tender request run mlp --input sample.json --max-price 0.1 --deadline 60 --solver http://127.0.0.1:7100
    tender market owed                 # refunds, payments, returned bonds credited to the key
    tender market withdraw             # pay them out (one `withdraw` per market that owes some)

``tender intent`` is the same request signed by an outside wallet: ``typed-data`` prints the
intent's EIP-712 JSON (big integers as strings), ``send`` hands the wallet's signature to solvers.
Amounts are in the token's own decimals (read from the token): ``--max-price 0.1`` of a
2-decimal token is 10 base units.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn, TypedDict, cast

import click
from rich.console import Console
from rich.table import Table

from tender.client._cli_chain import CHAIN_OPTIONS, chain_access, chain_options, chain_section, stacked
from tender.client._errors import (
    ProofInvalid,
    ProviderSlashed,
    RequestExpired,
    RequestRefunded,
    RequestRejected,
    RequestTimeout,
)
from tender.client._result import RequestResult
from tender.errors import ConfigError, RequestError

if TYPE_CHECKING:
    from tender.chain import Market, Staking
    from tender.client._client import Client

__all__ = ["cli_group", "intent_group", "market_group"]

#: Exit codes of ``tender request run`` by outcome (documented in docs/quickstart-requester.md).
EXIT_CODES: dict[type[RequestError], int] = {
    RequestRejected: 3,
    RequestRefunded: 4,
    RequestExpired: 5,
    ProviderSlashed: 6,
    ProofInvalid: 7,
    RequestTimeout: 8,
}


def parse_amount(text: str, decimals: int = 18, *, option: str = "--max-price") -> int:
    """``"0.1"`` tokens (``decimals`` decimals, the token's) or ``"123wei"`` base units, as base
    units; ``click.BadParameter`` naming ``option`` for anything else."""
    from tender.chain import parse_amount as parse

    try:
        return parse(text, decimals)
    except ConfigError as exc:
        raise click.BadParameter(str(exc).removeprefix("amount: "), param_hint=option) from exc


def load_input(spec: str) -> Any:
    """The input: a JSON file or inline JSON (``click.BadParameter`` naming ``--input`` if it
    is neither)."""
    try:
        if spec.lstrip().startswith(("[", "{")):
            data = json.loads(spec)
        else:
            data = json.loads(Path(spec).read_text())
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"malformed JSON: {exc}", param_hint="--input") from exc
    except OSError as exc:
        raise click.BadParameter(f"cannot read {spec!r}: {exc.strerror}", param_hint="--input") from exc
    if isinstance(data, dict) and "input_data" in data:  # EZKL's input.json shape
        data = data["input_data"][0]
    if not isinstance(data, list):
        raise click.BadParameter("the input is a JSON array of numbers", param_hint="--input")
    return data


def _sample(model: str, index: int) -> Any:
    from tender.paths import SAMPLE_MODELS

    path = SAMPLE_MODELS / model / "samples.json"
    if not path.is_file():
        raise click.BadParameter(
            f"no sample inputs for model {model!r} ({path} is missing): pass --input", param_hint="--input"
        )
    samples = json.loads(path.read_text())["samples"]
    return samples[index % len(samples)]["input"]


def _chain(config: Path | None, rpc: str | None) -> tuple[str, str, Path | None]:
    section = chain_section(config)
    return rpc or section.rpc_url, section.private_key(), section.deployment


def result_table(result: RequestResult, *, decimals: int = 18, symbol: str = "tokens") -> Table:
    """A settled request for people (amounts in the token's ``decimals``)."""
    table = Table(title=f"settled: job {result.job_id[:18]}…", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    values = result.values if result.values is not None else result.output
    table.add_row("output", ", ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in values[:12]))
    if result.values:
        table.add_row("argmax", str(max(range(len(result.values)), key=result.values.__getitem__)))
    table.add_row(
        "proof",
        f"{len(result.proof)} bytes, verified on-chain"
        + (", and locally" if result.verified else " (install tender\\[zk] to check it locally too)")
        if result.proof
        else "none (optimistic)",
    )
    table.add_row("provider", result.provider)
    table.add_row(
        "price paid / max",
        f"{tokens(result.price_paid, decimals)} / {tokens(result.max_price, decimals)} {symbol}",
    )
    if result.refund:
        table.add_row(
            "refund",
            f"{tokens(result.refund, decimals)} {symbol} credited in the market "
            "(`tender market withdraw` pays it out)",
        )
    lat = result.latency
    table.add_row(
        "latency",
        f"auction {lat.auction_ms:.0f} ms · delivery {lat.delivery_ms:.0f} ms · "
        f"settlement {lat.settlement_ms:.0f} ms · total {lat.total_ms:.0f} ms",
    )
    for step, tx in result.tx_hashes.items():
        gas = result.gas.get(step)
        table.add_row(f"tx {step}", tx + (f"  ({gas:,} gas)" if gas else ""))
    return table


def _model_id(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not _is_bytes32(value):
        raise click.BadParameter(f"{value!r} is not a model id (0x followed by 64 hex digits)")
    return value


#: Which bundle the model is: ``--bundle``, ``--model-id``.
_bundle_options = stacked(
    click.option(
        "--bundle",
        type=click.Path(path_type=Path, exists=True, file_okay=False),
        help="model bundle folder (default: the bundle of that name in the cache that is registered on chain)",
    ),
    click.option(
        "--model-id",
        callback=_model_id,
        help="registry model id, 0x + 64 hex (default: the one registered for the bundle)",
    ),
)
#: MODEL and the options that make an intent (:func:`_intent_options` reads them).
_INTENT_OPTIONS = stacked(
    click.argument("model"),
    click.option("--input", "input_spec", help="JSON file or inline JSON array (default: a sample input)"),
    click.option(
        "--sample",
        type=int,
        default=0,
        show_default=True,
        help="which sample input when --input is unset",
    ),
    click.option(
        "--max-price",
        required=True,
        help="most you pay: tokens (0.1, in the token's decimals) or base units (100wei)",
    ),
    click.option(
        "--deadline", type=float, default=60, show_default=True, help="seconds after the auction window"
    ),
    click.option("--proof", type=click.Choice(["zk", "optimistic"]), default="zk", show_default=True),
    click.option("--auction", type=click.Choice(["reverse", "dutch"]), default="reverse", show_default=True),
)


class _Terms(TypedDict):
    max_price: int
    deadline: float
    proof: Literal["zk", "optimistic"]
    auction: Literal["reverse", "dutch"]


@dataclass(frozen=True)
class _IntentArgs:
    """What `request run` and `intent typed-data` were told about the intent to make."""

    model: str
    input_spec: str | None
    sample: int
    max_price: str
    deadline: float
    proof: Literal["zk", "optimistic"]
    auction: Literal["reverse", "dutch"]
    bundle: Path | None
    model_id: str | None

    def data(self) -> Any:
        """The model input: ``--input``, else sample ``--sample`` of the model."""
        return load_input(self.input_spec) if self.input_spec else _sample(self.model, self.sample)

    def client(
        self,
        rpc_url: str,
        key: str | None,
        *,
        deployment: Path | None,
        solvers: Sequence[str] = (),
        address: str | None = None,
    ) -> Client:
        """A client that knows this model's ``--bundle`` and ``--model-id``."""
        from tender.client._client import Client

        return Client(
            rpc_url,
            key,
            solvers=solvers,
            address=address,
            deployment=deployment,
            bundles={self.model: self.bundle} if self.bundle else None,
            model_ids={self.model: self.model_id} if self.model_id else None,
        )

    def terms(self, decimals: int) -> _Terms:
        """The intent's price, deadline, proof and auction (``--max-price`` in ``decimals``)."""
        price = parse_amount(self.max_price, decimals)
        if price == 0:
            raise click.BadParameter("must be above 0", param_hint="--max-price")
        return _Terms(max_price=price, deadline=self.deadline, proof=self.proof, auction=self.auction)


def _intent_options(command: Callable[..., None]) -> Callable[..., None]:
    """MODEL, the intent options and ``--bundle`` / ``--model-id`` (stacked apart, where the
    command lists them), handed to ``command`` as one ``spec: _IntentArgs``."""

    @functools.wraps(command)
    def call(
        *,
        model: str,
        input_spec: str | None,
        sample: int,
        max_price: str,
        deadline: float,
        proof: Literal["zk", "optimistic"],
        auction: Literal["reverse", "dutch"],
        bundle: Path | None,
        model_id: str | None,
        **rest: Any,
    ) -> None:
        args = _IntentArgs(model, input_spec, sample, max_price, deadline, proof, auction, bundle, model_id)
        command(spec=args, **rest)

    return cast(Callable[..., None], _INTENT_OPTIONS(call))


@click.group("request")
def cli_group() -> None:
    """Buy inferences as a requester (key from TENDER_PRIVATE_KEY)."""


@cli_group.command("run")
@_intent_options
@click.option("--on-chain", is_flag=True, help="post the intent yourself instead of signing it for solvers")
@click.option("--solver", "solvers", multiple=True, help="solver base URL (repeatable)")
@chain_options
@_bundle_options
@click.option("--timeout", type=float, help="seconds to wait for a terminal state")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def run(
    spec: _IntentArgs,
    on_chain: bool,
    solvers: tuple[str, ...],
    rpc: str | None,
    deployment: Path | None,
    config: Path | None,
    timeout: float | None,
    as_json: bool,
) -> None:
    """Buy one inference of MODEL and print its verified output."""
    from tender.chain import Token, connect

    console = Console(stderr=as_json)
    rpc_url, key, config_deployment = _chain(config, rpc)
    data = spec.data()
    client = spec.client(rpc_url, key, solvers=solvers, deployment=deployment or config_deployment)
    connect(rpc_url)  # one clear line when nothing answers there
    token = Token(client.w3, client.deployment.token)
    decimals, symbol = token.decimals(), token.symbol()
    terms = spec.terms(decimals)

    async def go() -> RequestResult:
        async with client:
            return await client.request(spec.model, data, **terms, on_chain=on_chain, timeout=timeout)

    try:
        with console.status(
            f"buying one {spec.model} inference ({spec.auction} auction, {spec.proof} proof)…"
        ):
            result = asyncio.run(go())
    except RequestError as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        console.print(result_table(result, decimals=decimals, symbol=symbol))


def _fail(exc: RequestError) -> NoReturn:
    """One line on stderr (with each solver's reason for a rejection) and the outcome's exit code."""
    text = f"error: {type(exc).__name__}: {exc}"
    reasons = getattr(exc, "reasons", None)
    if reasons:
        text += " (" + "; ".join(f"{where}: {why}" for where, why in reasons.items()) + ")"
    click.echo(" ".join(text.split()), err=True)
    sys.exit(EXIT_CODES.get(type(exc), 2))


def _is_bytes32(text: str) -> bool:
    digits = text.removeprefix("0x")
    return text.startswith("0x") and len(digits) == 64 and all(c in "0123456789abcdefABCDEF" for c in digits)


# ---------------------------------------------------------------- tender market


def tokens(amount: int, decimals: int = 18) -> str:
    """Base units as tokens (``decimals``: the token's), exactly: ``1500000000000000000`` -> ``"1.5"``."""
    from tender.chain import format_amount

    return format_amount(amount, decimals)


_market_options = stacked(
    click.option(
        "--market",
        "auction",
        type=click.Choice(["reverse", "dutch"]),
        help="only this market (default: every market of the deployment)",
    ),
    *CHAIN_OPTIONS,
    click.option("--json", "as_json", is_flag=True, help="print JSON"),
)


def _markets(
    rpc: str | None, deployment: Path | None, config: Path | None, *, need_key: bool, auction: str | None
) -> tuple[dict[str, Market], str | None]:
    """The deployment's markets (``{name: Market}``, only ``auction``'s when given), sending
    from the configured key when ``need_key``; and the key's address (``None`` without one)."""

    from tender.chain import Market
    from tender.intents import AuctionType

    w3, record, sender = chain_access(rpc, deployment, config, need_key=need_key)
    names = [auction] if auction else [n for n in ("reverse", "dutch") if n in record.markets]
    markets = {
        name: Market(w3, record.market(name), auction=AuctionType[name.upper()], sender=sender)
        for name in names
    }
    return markets, (sender.address if sender else None)


def _token_units(markets: dict[str, Market]) -> tuple[int, str]:
    """The decimals and symbol of the markets' token (read from the token)."""
    from tender.chain import Token

    market = next(iter(markets.values()), None)
    if market is None:
        return 18, "tokens"
    token = Token(market.w3, market.token())
    return token.decimals(), token.symbol()


def _staking(markets: dict[str, Market]) -> Staking:
    """``Staking`` (where slashed stake is credited), sending as the markets do."""
    from tender.chain import Staking

    market = next(iter(markets.values()))
    return Staking(market.w3, market.staking(), sender=market.sender)


@click.group("market")
def market_group() -> None:
    """What the markets owe you, and withdrawing it (key from TENDER_PRIVATE_KEY).

    The markets credit what they owe instead of sending it: a provider's price (plus the bond of
    a challenge it answered), a requester's unspent escrow, refunds and compensation, a
    successful challenger's bond. `owed` shows it; `withdraw` pays it out; a later escrow or
    challenge bond is taken from it first when it covers the whole amount. Slashed stake (a
    requester's compensation, a challenger's reward) is credited in Staking instead: `owed` shows
    it as claimable and `withdraw` claims it too.
    """


@market_group.command("owed")
@click.option("--account", help="whose credit to show (default: the configured key's address)")
@_market_options
def owed_command(
    account: str | None,
    auction: str | None,
    rpc: str | None,
    deployment: Path | None,
    config: Path | None,
    as_json: bool,
) -> None:
    """Show what each market owes ACCOUNT (default: the configured key)."""
    from web3 import Web3

    if account is not None and not Web3.is_address(account):
        raise click.BadParameter(
            f"not an address: {account!r} (0x followed by 40 hex digits)", param_hint="--account"
        )
    markets, me = _markets(rpc, deployment, config, need_key=account is None, auction=auction)
    who = Web3.to_checksum_address(account or me or "")
    amounts = {name: market.owed(who) for name, market in markets.items()}
    total = sum(amounts.values())
    decimals, symbol = _token_units(markets)
    claimable = _staking(markets).claimable(who)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "account": who,
                    "owed": {k: str(v) for k, v in amounts.items()},
                    "total": str(total),
                    "claimable": str(claimable),
                },
                indent=2,
            )
        )
        return
    table = Table(title=f"owed to {who}")
    for column in ("market", "address", f"owed ({symbol})", "base units"):
        table.add_column(column, justify="right" if column != "market" else "left")
    for name, amount in amounts.items():
        table.add_row(name, markets[name].address, tokens(amount, decimals), str(amount))
    table.add_row("total", "", tokens(total, decimals), str(total), style="bold")
    table.add_row(
        "Staking (claimable)", _staking(markets).address, tokens(claimable, decimals), str(claimable)
    )
    Console().print(table)


@market_group.command("withdraw")
@_market_options
def withdraw_command(
    auction: str | None, rpc: str | None, deployment: Path | None, config: Path | None, as_json: bool
) -> None:
    """Pay out what the markets owe the configured key: one `withdraw` per market that owes
    something. With --market, that market's `withdraw` even when it owes nothing (it refuses
    with NothingOwed)."""
    markets, me = _markets(rpc, deployment, config, need_key=True, auction=auction)
    assert me is not None
    paid: dict[str, dict[str, str]] = {}
    for name, market in markets.items():
        amount = market.owed(me)
        if amount == 0 and auction is None:
            continue
        receipt = market.withdraw()
        amount = sum(int(getattr(e, "amount", 0)) for e in market.events_in(receipt) if e.name == "Withdrawn")
        paid[name] = {"amount": str(amount), "tx": "0x" + bytes(receipt["transactionHash"]).hex()}
    staking = _staking(markets)
    if auction is None and staking.claimable(me) > 0:  # slashed stake credited to us: claim it too
        receipt = staking.claim()
        paid["staking"] = {
            "amount": str(staking.claimed_in(receipt)),
            "tx": "0x" + bytes(receipt["transactionHash"]).hex(),
        }
    if as_json:
        click.echo(json.dumps({"account": me, "withdrawn": paid}, indent=2))
        return
    if not paid:
        click.echo(f"nothing to withdraw: the markets owe {me} nothing")
        return
    decimals, _ = _token_units(markets)
    for name, entry in paid.items():
        source = "Staking (slashed stake credited to you)" if name == "staking" else f"the {name} market"
        click.echo(
            f"withdrew {tokens(int(entry['amount']), decimals)} tokens ({entry['amount']} base units) from "
            f"{source} to {me}: tx {entry['tx']}"
        )


# ---------------------------------------------------------------- tender intent


@click.group("intent")
def intent_group() -> None:
    """Intents signed by an outside wallet: print one's EIP-712 typed data, send it signed.

    \b
    tender intent typed-data mlp --max-price 0.1 --out intent.json > typed.json
    cast wallet sign --data --from-file typed.json   # or eth_signTypedData_v4
    tender intent send --intent intent.json --signature 0x... --solver URL
    """


@intent_group.command("typed-data")
@_intent_options
@click.option("--requester", help="the signing wallet's address (default: TENDER_PRIVATE_KEY's)")
@chain_options
@_bundle_options
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="also write the intent (for `tender intent send`) here",
)
def typed_data_command(
    spec: _IntentArgs,
    requester: str | None,
    rpc: str | None,
    deployment: Path | None,
    config: Path | None,
    out: Path | None,
) -> None:
    """Print the EIP-712 typed data of an intent to buy one MODEL inference, for a wallet.

    The JSON is what `eth_signTypedData_v4` (and `cast wallet sign --data`) takes: every integer
    that can exceed 2**53 (uint64 times, uint256 amounts, the nonce, chainId) is a decimal
    string. Sign it, then `tender intent send` the intent (--out) with the signature.
    """
    from web3 import Web3

    from tender.chain import Token, connect

    if requester is not None and not Web3.is_address(requester):
        raise click.BadParameter(f"not an address: {requester!r}", param_hint="--requester")
    section = chain_section(config)
    rpc_url = rpc or section.rpc_url
    key = None if requester else section.private_key()
    data = spec.data()
    connect(rpc_url)  # one clear line when nothing answers there
    client = spec.client(rpc_url, key, address=requester, deployment=deployment or section.deployment)
    terms = spec.terms(Token(client.w3, client.deployment.token).decimals())

    async def build() -> Any:
        intent, _ = await client.build_intent(spec.model, data, **terms)
        return intent

    intent = asyncio.run(build())
    if out is not None:
        d = client.deployment
        out.write_text(
            json.dumps(
                {
                    "intent": intent.to_json(),
                    "market": d.market(intent.auction_type),
                    "chainId": d.chain_id,
                    "jobId": client.job_id(intent),
                },
                indent=2,
            )
            + "\n"
        )
    click.echo(json.dumps(client.typed_data(intent), indent=2))


@intent_group.command("send")
@click.option(
    "--intent",
    "intent_path",
    required=True,
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="the intent written by `tender intent typed-data --out`",
)
@click.option("--signature", required=True, help="the wallet's signature of the typed data (0x + 130 hex)")
@click.option("--solver", "solvers", multiple=True, required=True, help="solver base URL (repeatable)")
@chain_options
def send_command(
    intent_path: Path,
    signature: str,
    solvers: tuple[str, ...],
    rpc: str | None,
    deployment: Path | None,
    config: Path | None,
) -> None:
    """Send an intent signed by an outside wallet to the solvers; prints its job id.

    The signature is checked first by the market's own rule (65 bytes, v 27/28, low s, signed by
    the intent's requester). The wallet must have approved the market for the escrow.
    """
    from tender.client._client import Client
    from tender.intents import Intent

    try:
        stored = json.loads(intent_path.read_text())
        intent = Intent.from_json(stored["intent"])
    except (ValueError, KeyError, TypeError) as exc:
        raise click.BadParameter(f"{intent_path}: not an intent file ({exc})", param_hint="--intent") from exc
    try:
        raw = bytes.fromhex(signature.removeprefix("0x"))
    except ValueError as exc:
        raise click.BadParameter("not hex", param_hint="--signature") from exc
    section = chain_section(config)
    client = Client(
        rpc or section.rpc_url,
        None,
        address=intent.requester,
        solvers=list(solvers),
        deployment=deployment or section.deployment,
    )

    async def send() -> dict[str, str]:
        async with client:
            return await client.broadcast(intent, signature=raw)

    try:
        answers = asyncio.run(send())
    except RequestError as exc:
        _fail(exc)
    click.echo(json.dumps({"jobId": client.job_id(intent), "solvers": answers}, indent=2))
