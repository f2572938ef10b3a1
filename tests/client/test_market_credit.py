"""What the markets owe an account, through the SDK and the ``tender market`` command (real Anvil).

The markets credit payments and refunds instead of sending them; the SDK shows the credit
(``Client.owed``), collects it (``Client.withdraw``) and pays escrows from it without approving
anything when it covers them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from eth_abi import encode as abi_encode
from web3 import Web3

from tender.anvil import DEV_KEYS, Anvil
from tender.chain import (
    DEFAULT_PARAMS,
    Deployment,
    Market,
    ModelInfo,
    Registry,
    Staking,
    Token,
    TxSender,
    deploy,
    deploy_artifact,
    load_artifact,
    resync_nonces,
)
from tender.client import Client, Withdrawal
from tender.client._cli import market_group, tokens
from tender.errors import ArtifactError, ContractRevert
from tender.intents import AuctionType, Intent, ProofMode, random_nonce

UNIT = 10**18
COMMITMENT = 0xC0FFEE
OUTPUT = (11, 22, 33)
PROOF = abi_encode(["uint256[]"], [[COMMITMENT, *OUTPUT]])  # what MockVerifier accepts
REQUESTER_KEY, PROVIDER_KEY, RELAYER_KEY = DEV_KEYS[1], DEV_KEYS[2], DEV_KEYS[3]


def _built() -> bool:
    try:
        load_artifact("MockVerifier")
        return "withdraw" in {e.get("name") for e in load_artifact("ReverseAuctionMarket").abi}
    except ArtifactError:
        return False


pytestmark = pytest.mark.skipif(not _built(), reason="contracts not built: run `make contracts`")


@dataclass
class Chain:
    anvil: Anvil
    w3: Web3
    deployment: Deployment
    path: Path
    model_id: bytes

    def advance(self, seconds: int) -> None:
        self.anvil.rpc("evm_increaseTime", [seconds])
        self.anvil.rpc("evm_mine", [])

    def market(self, auction: AuctionType, key: str) -> Market:
        return Market(
            self.w3, self.deployment.market(auction), auction=auction, sender=TxSender(self.w3, key)
        )

    def token(self, key: str | None = None) -> Token:
        return Token(self.w3, self.deployment.token, sender=TxSender(self.w3, key) if key else None)

    def intent(self, requester: str, auction: AuctionType = AuctionType.REVERSE, **changes: Any) -> Intent:
        now = int(self.w3.eth.get_block("latest")["timestamp"])
        base = Intent(
            requester=requester,
            model_id=self.model_id,
            input_commitment=COMMITMENT,
            max_price=UNIT,
            start_price=UNIT // 4 if auction is AuctionType.DUTCH else 0,
            auction_type=auction,
            auction_window=5,
            deadline=now + 600,
            proof_mode=ProofMode.ZK,
            nonce=random_nonce(),
            expiry=now + 300,
        )
        return base.replace(**changes)

    def refunded(self, key: str, max_price: int = UNIT) -> int:
        """``key`` posts a reverse intent nobody bids on; it is refunded: its escrow is credited."""
        market = self.market(AuctionType.REVERSE, key)
        intent = self.intent(market.sender.address, max_price=max_price)  # type: ignore[union-attr]
        self.token(key).ensure_allowance(market.address, 2**255)
        market.post(intent)
        self.advance(6)
        market.using(TxSender(self.w3, RELAYER_KEY)).refund(market.job_id(intent))
        return market.escrow_for(max_price)

    def settled(self, price: int = UNIT // 2) -> int:
        """A Dutch job of the requester filled and delivered by the provider: the provider is
        credited ``price``-ish; returns what it was credited."""
        requester = self.market(AuctionType.DUTCH, REQUESTER_KEY)
        intent = self.intent(requester.sender.address, AuctionType.DUTCH, start_price=price, max_price=price)  # type: ignore[union-attr]
        self.token(REQUESTER_KEY).ensure_allowance(requester.address, 2**255)
        requester.post(intent)
        job = requester.job_id(intent)
        provider = requester.using(TxSender(self.w3, PROVIDER_KEY))
        provider.fill(job, provider.sender.address, 60)  # type: ignore[union-attr]
        provider.deliver(job, OUTPUT, PROOF)
        return requester.job(job).price

    def expired(self) -> tuple[int, int]:
        """A Dutch job of the requester filled by the provider, which never delivers: expired,
        its escrow credited in the market and its slashed stake in Staking; ``(escrow, slashed)``."""
        requester = self.market(AuctionType.DUTCH, REQUESTER_KEY)
        intent = self.intent(requester.sender.address, AuctionType.DUTCH, allow_failover=False)  # type: ignore[union-attr]
        self.token(REQUESTER_KEY).ensure_allowance(requester.address, 2**255)
        requester.post(intent)
        job = requester.job_id(intent)
        provider = requester.using(TxSender(self.w3, PROVIDER_KEY))
        provider.fill(job, provider.sender.address, 60)  # type: ignore[union-attr]
        self.advance(61)
        requester.using(TxSender(self.w3, RELAYER_KEY)).expire(job)
        return requester.escrow_for(intent.max_price), requester.job(job).stake_locked


@pytest.fixture(scope="module")
def module_chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    with Anvil() as anvil:
        w3 = Web3(Web3.HTTPProvider(anvil.rpc_url))
        deployment = deploy(w3, DEV_KEYS[0], params=DEFAULT_PARAMS)
        path = deployment.save(tmp_path_factory.mktemp("credit") / "deployment.json")
        deployer = TxSender(w3, DEV_KEYS[0])
        verifier, _ = deploy_artifact(deployer, "MockVerifier")
        info = ModelInfo(
            onnx_sha256=b"\x01" * 32,
            settings_hash=b"\x02" * 32,
            verifier=verifier,
            commitment_index=0,
            output_offset=1,
            output_length=len(OUTPUT),
            instance_count=1 + len(OUTPUT),
            proof_modes=3,
            audit_rate_bps=0,
        )
        model_id = Registry(w3, deployment.registry, sender=deployer).register_model(info)
        token = Token(w3, deployment.token, sender=deployer)
        provider = TxSender(w3, PROVIDER_KEY)
        token.mint(provider.address, 1_100 * UNIT)  # its stake, and some to buy with
        token.mint(TxSender(w3, REQUESTER_KEY).address, 100 * UNIT)
        Token(w3, deployment.token, sender=provider).approve(deployment.staking, 2**256 - 1)
        staking = Staking(w3, deployment.staking, sender=provider)
        staking.stake(1_000 * UNIT)
        staking.register_operator("http://127.0.0.1:9000", region=b"eu", models=[model_id])
        yield Chain(anvil, w3, deployment, path, model_id)


@pytest.fixture
def chain(module_chain: Chain) -> Iterator[Chain]:
    snapshot = module_chain.anvil.rpc("evm_snapshot", [])
    try:
        yield module_chain
    finally:
        module_chain.anvil.rpc("evm_revert", [snapshot])
        resync_nonces(module_chain.w3)


def _client(chain: Chain, key: str) -> Client:
    return Client(chain.anvil.rpc_url, key, deployment=chain.deployment, poll_interval=0.05)


# -- SDK -------------------------------------------------------------------------------


async def test_client_owed_and_withdraw(chain: Chain) -> None:
    escrow = chain.refunded(REQUESTER_KEY)
    client = _client(chain, REQUESTER_KEY)
    try:
        assert await client.owed() == {"reverse": escrow, "dutch": 0}
        assert await client.owed("dutch") == {"dutch": 0}
        balance = chain.token().balance_of(client.address)
        paid = await client.withdraw()
        assert len(paid) == 1
        assert isinstance(paid[0], Withdrawal)
        assert (paid[0].auction, paid[0].amount, paid[0].account) == ("reverse", escrow, client.address)
        assert paid[0].to_json()["amount"] == str(escrow)
        assert chain.token().balance_of(client.address) == balance + escrow
        assert await client.owed() == {"reverse": 0, "dutch": 0}
        assert await client.withdraw() == []  # nothing owed anywhere: nothing sent
        with pytest.raises(ContractRevert) as caught:
            await client.withdraw("reverse")
        assert caught.value.name == "NothingOwed"
    finally:
        await client.aclose()


async def test_client_pays_an_escrow_from_its_credit_without_approving(chain: Chain) -> None:
    earned = chain.settled()  # the provider's credit in the Dutch market
    client = _client(chain, PROVIDER_KEY)  # the provider buys an inference with its earnings
    market = client.market("dutch")
    try:
        assert chain.token().allowance(client.address, market.address) == 0
        intent = chain.intent(
            client.address, AuctionType.DUTCH, max_price=earned // 2, start_price=earned // 8
        )
        escrow = market.escrow_for(intent.max_price)
        assert escrow <= earned
        balance = chain.token().balance_of(client.address)
        await client.post(intent)
        assert chain.token().allowance(client.address, market.address) == 0  # nothing approved
        assert chain.token().balance_of(client.address) == balance
        assert market.owed(client.address) == earned - escrow
        # a second escrow the rest of the credit no longer covers: approved, then pulled whole
        second = chain.intent(client.address, AuctionType.DUTCH, max_price=earned, start_price=earned // 4)
        await client.post(second)
        assert chain.token().allowance(client.address, market.address) > 0
        assert chain.token().balance_of(client.address) == balance - market.escrow_for(earned)
        assert market.owed(client.address) == earned - escrow  # a credit is never split
    finally:
        await client.aclose()


# -- CLI -------------------------------------------------------------------------------


def _cli(chain: Chain, *args: str, key: str | None = REQUESTER_KEY) -> Any:
    env = {"TENDER_PRIVATE_KEY": key} if key else {"TENDER_PRIVATE_KEY": ""}
    common = ["--rpc", chain.anvil.rpc_url, "--deployment", str(chain.path)]
    return CliRunner().invoke(market_group, [*args, *common], env=env)


def test_cli_owed_and_withdraw(chain: Chain) -> None:
    escrow = chain.refunded(REQUESTER_KEY)
    requester = TxSender(chain.w3, REQUESTER_KEY).address
    shown = _cli(chain, "owed", "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output) == {
        "account": requester,
        "owed": {"reverse": str(escrow), "dutch": "0"},
        "total": str(escrow),
        "claimable": "0",
    }
    other = _cli(chain, "owed", "--account", requester.lower(), "--market", "reverse", key=None)
    assert other.exit_code == 0, other.output  # another account's credit needs no key
    assert tokens(escrow) in other.output
    table = _cli(chain, "owed")
    assert table.exit_code == 0
    assert "total" in table.output

    balance = chain.token().balance_of(requester)
    done = _cli(chain, "withdraw")
    assert done.exit_code == 0, done.output
    assert f"withdrew {tokens(escrow)} tokens ({escrow} base units) from the reverse market" in done.output
    assert chain.token().balance_of(requester) == balance + escrow
    again = _cli(chain, "withdraw", "--json")
    assert again.exit_code == 0
    assert json.loads(again.output) == {"account": requester, "withdrawn": {}}
    assert "nothing to withdraw" in _cli(chain, "withdraw").output
    named = _cli(chain, "withdraw", "--market", "dutch")
    assert isinstance(named.exception, ContractRevert)
    assert named.exception.name == "NothingOwed"


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["owed", "--account", "0x1234"], "--account"),
        (["owed", "--market", "sideways"], "--market"),
        (["withdraw", "--market", "sideways"], "--market"),
    ],
)
def test_cli_bad_input_names_the_field(chain: Chain, args: list[str], field: str) -> None:
    result = _cli(chain, *args)
    assert result.exit_code == 2
    assert field in result.output


def test_cli_withdraw_without_a_key_names_the_setting(chain: Chain) -> None:
    from tender.errors import ConfigError

    result = _cli(chain, "withdraw", key=None)
    assert isinstance(result.exception, ConfigError)
    assert "TENDER_PRIVATE_KEY" in str(result.exception)


def test_tokens_are_shown_exactly() -> None:
    assert tokens(1_500_000_000_000_000_000) == "1.5"
    assert tokens(10**18) == "1"
    assert tokens(1) == "0.000000000000000001"
    assert tokens(0) == "0"


async def test_withdraw_also_claims_the_compensation_staking_holds(chain: Chain) -> None:
    """A late provider's slashed stake is credited to the requester in Staking, not the market:
    ``Client.withdraw`` collects both, and the CLI's ``owed``/``withdraw`` show and claim it."""
    escrow, slashed = chain.expired()
    assert slashed > 0
    requester = TxSender(chain.w3, REQUESTER_KEY).address
    shown = json.loads(_cli(chain, "owed", "--json").output)
    assert (shown["owed"]["dutch"], shown["claimable"]) == (str(escrow), str(slashed))
    balance = chain.token().balance_of(requester)
    async with _client(chain, REQUESTER_KEY) as client:
        assert await client.claimable() == slashed
        paid = await client.withdraw()
        assert [(p.auction, p.amount) for p in paid] == [("dutch", escrow), ("staking", slashed)]
        assert await client.claimable() == 0
        assert await client.claim() is None  # nothing credited: nothing sent
    assert chain.token().balance_of(requester) == balance + escrow + slashed


def test_cli_withdraw_claims_the_compensation_too(chain: Chain) -> None:
    escrow, slashed = chain.expired()
    requester = TxSender(chain.w3, REQUESTER_KEY).address
    balance = chain.token().balance_of(requester)
    done = _cli(chain, "withdraw", "--json")
    assert done.exit_code == 0, done.output
    withdrawn = json.loads(done.output)["withdrawn"]
    assert (withdrawn["dutch"]["amount"], withdrawn["staking"]["amount"]) == (str(escrow), str(slashed))
    assert chain.token().balance_of(requester) == balance + escrow + slashed
