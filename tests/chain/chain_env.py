"""The test environment of tests/chain: a deployed Tender on Anvil with named actors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_abi import encode as abi_encode
from web3 import Web3

from tender.anvil import Anvil
from tender.chain import (
    Deployment,
    Market,
    Registry,
    Staking,
    Token,
    TxSender,
    load_artifact,
)
from tender.errors import ArtifactError
from tender.intents import AuctionType, Intent, ProofMode, random_nonce

COMMITMENT = 0xC0FFEE

TOKEN_UNIT = 10**18
PROVIDER_STAKE = 1_000 * TOKEN_UNIT
REQUESTER_FUNDS = 1_000 * TOKEN_UNIT
OUTPUT = (11, 22, 33)


def proof_for(commitment: int = COMMITMENT, output: tuple[int, ...] = OUTPUT) -> bytes:
    """The one proof ``MockVerifier`` accepts for the test model's instances (commitment, outputs).

    The market builds the instance vector itself, so this proof is valid only when the job's
    input commitment and the delivered output are exactly these.
    """
    return abi_encode(["uint256[]"], [[commitment, *output]])


GOOD_PROOF = proof_for()
BAD_PROOF = proof_for(output=(11, 22, 34))


def tender_built() -> bool:
    try:
        for name in ("TestToken", "ModelRegistry", "Staking", "ReverseAuctionMarket", "DutchAuctionMarket"):
            load_artifact(name)
    except ArtifactError:
        return False
    return True


@dataclass
class Actor:
    """An account with a sender and the wrappers bound to it."""

    sender: TxSender
    token: Token
    staking: Staking
    registry: Registry
    reverse: Market
    dutch: Market

    @property
    def address(self) -> str:
        return self.sender.address

    def market(self, auction: AuctionType) -> Market:
        return self.dutch if auction is AuctionType.DUTCH else self.reverse


@dataclass
class TenderEnv:
    """A deployed Tender on a private Anvil, with named actors."""

    chain: Anvil
    w3: Web3
    deployment: Deployment
    deployer: Actor
    requester: Actor
    provider: Actor
    solver: Actor
    challenger: Actor
    relayer: Actor
    verifier: str
    model_id: bytes

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def advance(self, seconds: int) -> None:
        """Move chain time forward and mine a block."""
        self.chain.rpc("evm_increaseTime", [seconds])
        self.chain.rpc("evm_mine", [])

    def intent(self, auction: AuctionType = AuctionType.REVERSE, **changes: Any) -> Intent:
        """A valid intent for the test model, posted by ``requester``."""
        now = self.now()
        base = Intent(
            requester=self.requester.address,
            model_id=self.model_id,
            input_commitment=COMMITMENT,
            max_price=10 * TOKEN_UNIT,
            start_price=2 * TOKEN_UNIT if auction is AuctionType.DUTCH else 0,
            auction_type=auction,
            auction_window=60,
            deadline=now + 3_600,
            proof_mode=ProofMode.ZK,
            min_stake=5 * TOKEN_UNIT,
            price_weight_bps=8_000,
            nonce=random_nonce(),
            expiry=now + 600,
        )
        return base.replace(**changes)


def make_actor(w3: Web3, key: str, deployment: Deployment) -> Actor:
    sender = TxSender(w3, key)
    return Actor(
        sender=sender,
        token=Token(w3, deployment.token, sender=sender),
        staking=Staking(w3, deployment.staking, sender=sender),
        registry=Registry(w3, deployment.registry, sender=sender),
        reverse=Market(w3, deployment.market("reverse"), sender=sender),
        dutch=Market(w3, deployment.market("dutch"), auction=AuctionType.DUTCH, sender=sender),
    )
