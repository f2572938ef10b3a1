"""Deploying Tender: token, registry, staking and the markets, wired together.

Constructor arguments are matched by name against the artefacts' ABI (``token_``,
``staking_``, ``params_``...), so a reordered constructor needs no change here and a new
argument fails loudly with its name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from eth_abi import encode as abi_encode
from eth_utils.abi import collapse_if_tuple
from web3 import Web3
from web3.types import TxReceipt

from tender.chain._abi import snake
from tender.chain._artifacts import Artifact, load_artifact
from tender.chain._deployment import Deployment
from tender.chain._structs import MarketParams
from tender.chain._tx import TxSender
from tender.errors import ArtifactError, ChainError

#: Market parameters of a fresh devnet (token units assume 18 decimals); see docs/PROTOCOL.md.
DEFAULT_PARAMS = MarketParams(
    fee_bps=100,
    stake_multiple=2,
    challenger_reward_bps=5_000,
    challenge_window=600,
    proof_window=600,
    max_callback_gas=1_000_000,
    challenge_bond=10**18,
)


def connect(rpc_url: str, *, timeout: float = 30.0) -> Web3:
    """A :class:`~web3.Web3` over HTTP; raises :class:`ChainError` if the node does not answer."""
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))
    try:
        w3.eth.chain_id  # noqa: B018  (probe the node)
    except Exception as exc:  # any transport failure: reported as one ChainError
        raise ChainError(f"no JSON-RPC node answers at {rpc_url}: {exc}") from exc
    return w3


def constructor_data(artifact: Artifact, args: Sequence[Any] | Mapping[str, Any]) -> bytes:
    """Creation code with ABI-encoded constructor arguments appended.

    ``args`` is positional, or a mapping by snake_case name (``unstaking_delay`` for
    ``unstakingDelay_``); a mapping may hold more names than the constructor takes.
    """
    if not artifact.bytecode:
        raise ArtifactError(
            f"{artifact.name}: {artifact.path} holds its ABI only; deploying needs the checkout's "
            "contracts/out (`make contracts`)"
        )
    constructor = next((e for e in artifact.abi if e.get("type") == "constructor"), None)
    inputs = list(constructor["inputs"]) if constructor else []
    if isinstance(args, Mapping):
        missing = [i["name"] for i in inputs if snake(i["name"].rstrip("_")) not in args]
        if missing:
            raise ArtifactError(f"{artifact.name} constructor needs {missing}; deploy() does not know them")
        values = [args[snake(i["name"].rstrip("_"))] for i in inputs]
    else:
        values = list(args)
    if len(inputs) != len(values):
        raise ArtifactError(f"{artifact.name} constructor takes {len(inputs)} arguments, got {len(values)}")
    if not inputs:
        return artifact.bytecode
    return artifact.bytecode + abi_encode([collapse_if_tuple(i) for i in inputs], values)


def deploy_artifact(
    sender: TxSender,
    name: str,
    *args: Any,
    named: Mapping[str, Any] | None = None,
    artifacts_dir: Path | None = None,
) -> tuple[str, TxReceipt]:
    """Deploy contract ``name`` from ``contracts/out`` with constructor ``args`` (or ``named``)."""
    artifact = load_artifact(name, artifacts_dir=artifacts_dir)
    return sender.deploy(constructor_data(artifact, named if named is not None else args))


def deploy(
    w3: Web3,
    deployer_key: str | bytes,
    *,
    fee_bps: int | None = None,
    treasury: str | None = None,
    params: MarketParams | None = None,
    unstaking_delay: int = 7 * 24 * 3600,
    min_counted_fee: int = 10**15,
    token: str | None = None,
    save: bool | Path = False,
    artifacts_dir: Path | None = None,
) -> Deployment:
    """Deploy a complete Tender and authorise its markets in ``Staking``.

    Deploys ``TestToken`` (unless ``token`` is given), ``ModelRegistry``, ``Staking``,
    ``ReverseAuctionMarket``, ``DutchAuctionMarket`` and ``QuoteMarket``; the deployer owns them.

    Args:
        w3: the chain.
        deployer_key: pays for deployment and owns the contracts.
        fee_bps: protocol fee in basis points of each paid price (overrides ``params``).
        treasury: where fees go (default: the deployer).
        params: market parameters (default :data:`DEFAULT_PARAMS`).
        unstaking_delay: seconds between ``unstake`` and ``redeem``.
        min_counted_fee: the smallest protocol fee of a job that counts for a provider's
            reputation (``Staking.minCountedFee``; 0.001 token at 18 decimals, as Deploy.s.sol).
        token: an existing ERC-20 to use instead of a fresh ``TestToken``.
        save: ``True`` writes ``deployments/<chainId>.json``; a path writes there.
        artifacts_dir: another Foundry ``out`` folder.
    """
    sender = TxSender(w3, deployer_key)
    params = params or DEFAULT_PARAMS
    if fee_bps is not None:
        params = MarketParams(**{**_as_dict(params), "fee_bps": fee_bps})
    owner = sender.address
    treasury = Web3.to_checksum_address(treasury or owner)
    first_block = int(w3.eth.block_number) + 1
    named: dict[str, Any] = {
        "owner": owner,
        "initial_owner": owner,
        "treasury": treasury,
        "params": params.to_abi(),
        "unstaking_delay": unstaking_delay,
        "min_counted_fee": min_counted_fee,
        "name": "Tender Test Token",
        "symbol": "TTT",
        "decimals": 18,
    }
    if token is None:
        token, _ = deploy_artifact(sender, "TestToken", named=named, artifacts_dir=artifacts_dir)
    named["token"] = named["payment_token"] = token
    registry, _ = deploy_artifact(sender, "ModelRegistry", named=named, artifacts_dir=artifacts_dir)
    named["registry"] = named["model_registry"] = registry
    staking, _ = deploy_artifact(sender, "Staking", named=named, artifacts_dir=artifacts_dir)
    named["staking"] = staking
    markets: dict[str, str] = {}
    kinds = (("reverse", "ReverseAuctionMarket"), ("dutch", "DutchAuctionMarket"), ("quote", "QuoteMarket"))
    for kind, name in kinds:
        markets[kind], _ = deploy_artifact(sender, name, named=named, artifacts_dir=artifacts_dir)
    abi = list(load_artifact("Staking", artifacts_dir=artifacts_dir).abi)
    staking_contract = w3.eth.contract(address=Web3.to_checksum_address(staking), abi=abi)
    # before anyone stakes, Staking authorises a market at once (later it takes MARKET_DELAY)
    for market in markets.values():
        sender.send(staking_contract.functions.setMarket(market, True))
    deployment = Deployment(
        chain_id=sender.chain_id,
        token=token,
        registry=registry,
        staking=staking,
        markets=markets,
        block=first_block,
        extra={"treasury": treasury, "owner": owner},
    )
    if save:
        deployment.save(save if isinstance(save, Path) else None)
    return deployment


def _as_dict(params: MarketParams) -> dict[str, int]:
    return {name: getattr(params, name) for name in MarketParams.__dataclass_fields__}
