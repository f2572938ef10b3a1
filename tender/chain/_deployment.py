"""Where a Tender deployment lives: ``deployments/<chainId>.json``."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_utils import is_address, to_checksum_address

from tender.errors import DeploymentError
from tender.intents import AuctionType
from tender.paths import ROOT

#: Folder of deployment records (git-ignored for local chains); ``TENDER_DEPLOYMENTS`` overrides it.
DEPLOYMENTS = ROOT / "deployments"


@dataclass(frozen=True, slots=True)
class Deployment:
    """The addresses of one Tender deployment.

    Attributes:
        chain_id: the chain it lives on.
        token: the ERC-20 used for escrow and stake.
        registry: the ``ModelRegistry``.
        staking: the ``Staking`` contract shared by the markets.
        markets: market address by auction type name (``"reverse"``, ``"dutch"``, ``"quote"``).
        block: the block of the first deployment transaction (where log scans start).
        extra: other addresses (``"verifier"``, ``"treasury"``...), free-form.
    """

    chain_id: int
    token: str
    registry: str
    staking: str
    markets: dict[str, str]
    block: int
    extra: dict[str, str] = field(default_factory=dict)

    def market(self, auction: AuctionType | str) -> str:
        """The market address for an auction type (``AuctionType.DUTCH`` or ``"dutch"``)."""
        name = auction.name.lower() if isinstance(auction, AuctionType) else auction
        try:
            return self.markets[name]
        except KeyError:
            raise DeploymentError(f"no {name!r} market in the deployment on chain {self.chain_id}") from None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "chainId": self.chain_id,
            "token": self.token,
            "registry": self.registry,
            "staking": self.staking,
            "markets": dict(self.markets),
            "block": self.block,
        }
        if self.extra:
            out["extra"] = dict(self.extra)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Deployment:
        try:
            markets = {str(k): _address(v) for k, v in dict(data["markets"]).items()}
            return cls(
                chain_id=int(data["chainId"]),
                token=_address(data["token"]),
                registry=_address(data["registry"]),
                staking=_address(data["staking"]),
                markets=markets,
                block=int(data.get("block", 0)),
                extra={str(k): _address(v) for k, v in dict(data.get("extra", {})).items()},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DeploymentError(f"malformed deployment record: {exc}") from exc

    def save(self, path: Path | None = None) -> Path:
        """Write the record (default ``deployments/<chainId>.json``); returns the path."""
        path = path or default_path(self.chain_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, chain_id: int | None = None, *, path: Path | None = None) -> Deployment:
        """Read a record by chain id or from ``path``.

        Without ``path``: the file ``TENDER_DEPLOYMENT`` names when set (``network.env`` of
        ``tender devnet --keep-running`` exports it, so an installed SDK finds a checkout's
        devnet), else ``deployments/<chainId>.json`` (:func:`default_path`).
        """
        if path is None:
            if chain_id is None:
                raise DeploymentError("Deployment.load needs a chain id or a path")
            named = os.environ.get("TENDER_DEPLOYMENT")
            path = Path(named) if named else default_path(chain_id)
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise DeploymentError(
                f"no deployment at {path}: start a local network with `tender devnet --keep-running` "
                "(it writes this file), or pass the deployment JSON (--deployment, [chain] deployment)"
            ) from None
        except (OSError, ValueError) as exc:
            raise DeploymentError(f"unreadable deployment {path}: {exc}") from exc
        deployment = cls.from_json(data)
        if chain_id is not None and deployment.chain_id != chain_id:
            raise DeploymentError(f"{path} is for chain {deployment.chain_id}, not {chain_id}")
        return deployment


def default_path(chain_id: int) -> Path:
    """``deployments/<chainId>.json`` under the repository (the folder is ``TENDER_DEPLOYMENTS``
    when set): where every tool looks when no deployment is given, and where
    ``tender devnet --keep-running`` writes its own."""
    folder = os.environ.get("TENDER_DEPLOYMENTS")
    return (Path(folder) if folder else DEPLOYMENTS) / f"{chain_id}.json"


def _address(value: Any) -> str:
    if not isinstance(value, str) or not is_address(value):
        raise ValueError(f"not an address: {value!r}")
    return to_checksum_address(value)
