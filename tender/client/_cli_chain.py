"""What the requester's commands share: the options saying where the chain is, and its access."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tender.config import ChainSection, load_section

if TYPE_CHECKING:
    from web3 import Web3

    from tender.chain import Deployment, TxSender

__all__ = ["CHAIN_OPTIONS", "chain_access", "chain_options", "chain_section", "stacked"]


def stacked(*options: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """One decorator for ``options``, in the order they would be stacked above a command."""

    def apply(command: Any) -> Any:
        for option in reversed(options):
            command = option(command)
        return command

    return apply


#: Where the chain is: ``--rpc``, ``--deployment``, ``--config`` (``chain_access`` reads them).
CHAIN_OPTIONS = (
    click.option("--rpc", help="JSON-RPC URL [default: the config's chain.rpc_url, else $TENDER_RPC_URL]"),
    click.option(
        "--deployment",
        type=click.Path(path_type=Path, dir_okay=False),
        help="deployment JSON [default: deployments/<chainId>.json]",
    ),
    click.option(
        "--config",
        type=click.Path(path_type=Path, exists=True, dir_okay=False),
        help="TOML with a [chain] section",
    ),
)
chain_options = stacked(*CHAIN_OPTIONS)


def chain_section(config: Path | None) -> ChainSection:
    """``--config``'s ``[chain]`` section (the defaults without ``--config``)."""
    return load_section(config, ChainSection, name="chain") if config else ChainSection()


def chain_access(
    rpc: str | None, deployment: Path | None, config: Path | None, *, need_key: bool
) -> tuple[Web3, Deployment, TxSender | None]:
    """The chain of :data:`CHAIN_OPTIONS`: its web3, the deployment, and a sender from the
    configured key when ``need_key`` (``None`` otherwise)."""
    from tender.chain import Deployment, TxSender, connect

    section = chain_section(config)
    key = section.private_key() if need_key else None
    w3 = connect(rpc or section.rpc_url)
    record = Deployment.load(int(w3.eth.chain_id), path=deployment or section.deployment)
    sender = TxSender(w3, key, confirmations=section.confirmations) if key else None
    return w3, record, sender
