"""``tender token``: the escrow and stake token: balances, and test tokens on a devnet.

Amounts are tokens in the token's own decimals (``1000``, ``0.5``) or base units (``100wei``).
The devnet's ``TestToken`` lets anyone mint; a real token refuses ``mint`` (one error line)::

    export TENDER_PRIVATE_KEY=0x...
    tender token mint 1000                  # 1,000 test tokens to the key's address
    tender token balance --account 0x...
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from tender.client._cli_chain import chain_access, chain_options

if TYPE_CHECKING:
    from tender.chain import Token

__all__ = ["token_group"]


def _token(
    rpc: str | None, deployment: Path | None, config: Path | None, *, need_key: bool
) -> tuple[Token, str | None]:
    """The deployment's token (sending from the configured key when ``need_key``) and the key's address."""
    from tender.chain import Token

    w3, record, sender = chain_access(rpc, deployment, config, need_key=need_key)
    return Token(w3, record.token, sender=sender), (sender.address if sender else None)


def _address(value: str, hint: str) -> str:
    from web3 import Web3

    if not Web3.is_address(value):
        raise click.BadParameter(f"not an address: {value!r} (0x followed by 40 hex digits)", param_hint=hint)
    return str(Web3.to_checksum_address(value))


@click.group("token")
def token_group() -> None:
    """The escrow and stake token: balances; `mint` test tokens on a devnet (key from TENDER_PRIVATE_KEY)."""


@token_group.command("mint")
@click.argument("amount")
@click.option("--to", "to", help="who gets them [default: the key's address]")
@chain_options
def mint_command(
    amount: str, to: str | None, rpc: str | None, deployment: Path | None, config: Path | None
) -> None:
    """Mint AMOUNT test tokens (the devnet's TestToken: anyone may mint; a real token refuses)."""
    token, me = _token(rpc, deployment, config, need_key=True)
    receiver = _address(to, "--to") if to else me
    assert receiver is not None
    value = token.parse(amount, field="AMOUNT")
    token.mint(receiver, value)
    click.echo(
        f"minted {token.format(value)} to {receiver}; balance {token.format(token.balance_of(receiver))}"
    )


@token_group.command("balance")
@click.option("--account", help="whose balance [default: the key's address]")
@chain_options
def balance_command(
    account: str | None, rpc: str | None, deployment: Path | None, config: Path | None
) -> None:
    """Show ACCOUNT's token balance (default: the configured key's address)."""
    token, me = _token(rpc, deployment, config, need_key=account is None)
    who = _address(account, "--account") if account else me
    assert who is not None
    click.echo(f"{who}: {token.format(token.balance_of(who))} ({token.address})")
