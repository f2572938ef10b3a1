"""All the wrappers of one deployment, built at once."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Unpack

from web3 import Web3

from tender.chain._base import ChainAccess
from tender.chain._deployment import Deployment
from tender.chain._market import Market
from tender.chain._registry import Registry
from tender.chain._staking import Staking
from tender.chain._token import Token
from tender.chain._tx import TxSender
from tender.intents import AuctionType


@dataclass(frozen=True)
class Contracts:
    """The typed wrappers of a :class:`Deployment`, sending from one account (or read-only).

    Example::

        tender = Contracts.load(w3, Deployment.load(31337), sender=TxSender(w3, key))
        tender.token.approve(tender.market(AuctionType.DUTCH).address, amount)
        tender.market(intent.auction_type).post(intent)
    """

    deployment: Deployment
    token: Token
    registry: Registry
    staking: Staking
    reverse: Market
    dutch: Market

    @classmethod
    def load(cls, w3: Web3, deployment: Deployment, **access: Unpack[ChainAccess]) -> Contracts:
        """The contracts of ``deployment``; ``access``: :class:`ChainAccess` (``sender``, ``artifacts_dir``)."""
        reverse, dutch = deployment.market(AuctionType.REVERSE), deployment.market(AuctionType.DUTCH)
        return cls(
            deployment=deployment,
            token=Token(w3, deployment.token, **access),
            registry=Registry(w3, deployment.registry, **access),
            staking=Staking(w3, deployment.staking, **access),
            reverse=Market(w3, reverse, auction=AuctionType.REVERSE, **access),
            dutch=Market(w3, dutch, auction=AuctionType.DUTCH, **access),
        )

    def market(self, auction: AuctionType | int) -> Market:
        """The market of an auction type (``intent.auction_type``)."""
        return self.dutch if AuctionType(auction) is AuctionType.DUTCH else self.reverse

    def market_at(self, address: str) -> Market:
        """The market deployed at ``address`` (raises ``KeyError`` if it is not one of ours)."""
        for market in (self.reverse, self.dutch):
            if market.address == Web3.to_checksum_address(address):
                return market
        raise KeyError(address)

    def using(self, sender: TxSender) -> Contracts:
        """The same contracts, sending from ``sender``."""
        return replace(
            self,
            token=self.token.using(sender),
            registry=self.registry.using(sender),
            staking=self.staking.using(sender),
            reverse=self.reverse.using(sender),
            dutch=self.dutch.using(sender),
        )
