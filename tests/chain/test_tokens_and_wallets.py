"""A market on a USDT-style token (2 decimals, bytes32 symbol, approve refused over a non-zero
allowance), and intents signed by a second EIP-712 implementation (Foundry's ``cast``)."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from chain_env import tender_built
from eth_account import Account
from eth_utils import keccak
from web3 import Web3

from solver._api import IntentApi, erc1271_accepts_on_chain
from tender.anvil import DEV_KEYS, Anvil
from tender.chain import (
    Deployment,
    JobState,
    Market,
    ModelInfo,
    Registry,
    Token,
    TxSender,
    async_connect,
    deploy,
    deploy_artifact,
    format_amount,
    parse_amount,
    resync_nonces,
)
from tender.devnet._supervisor import tender_command
from tender.errors import ConfigError, ContractRevert, TransactionFailed
from tender.intents import AuctionType, Intent, ProofMode, job_id, random_nonce, typed_data
from tender.paths import SAMPLE_MODELS, node_bin

DECIMALS = 2
UNIT = 10**DECIMALS
REQUESTER = DEV_KEYS[1]
RELAYER = DEV_KEYS[2]


@dataclass
class UsdtChain:
    chain: Anvil
    w3: Web3
    deployment: Deployment
    deployment_path: Path
    token: Token  # as the requester
    model_id: bytes
    bundle: Path | None

    def market(self, key: str = RELAYER) -> Market:
        return Market(self.w3, self.deployment.market("reverse"), sender=TxSender(self.w3, key))


def _mlp_bundle() -> tuple[Path, dict[str, object]] | None:
    """The default mlp bundle (built into the cache when a fresh clone has none) and its registry
    fields."""
    from tender.client._models import cached_bundles
    from tender.models import Bundle, build, registry_entry
    from tender.paths import SAMPLE_MODELS

    build(SAMPLE_MODELS / "mlp" / "model.onnx", SAMPLE_MODELS / "mlp" / "calibration.json")
    for path, _ in cached_bundles("mlp"):
        bundle = Bundle.load(path)
        if bundle.card.input_visibility == "polycommit":
            entry = registry_entry(
                bundle, verifier="0x" + "00" * 19 + "01", owner="0x" + "00" * 20, chain_id=31337
            )
            return path, entry
    return None


@pytest.fixture(scope="module")
def usdt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UsdtChain]:
    if not tender_built():
        pytest.skip("Tender contracts not built: run `make contracts`")
    with Anvil() as chain:
        w3 = Web3(Web3.HTTPProvider(chain.rpc_url))
        owner = TxSender(w3, DEV_KEYS[0])
        address, _ = deploy_artifact(owner, "UsdtStyleToken", DECIMALS)
        path = tmp_path_factory.mktemp("usdt") / "deployment.json"
        deployment = deploy(w3, DEV_KEYS[0], token=address, save=path)
        verifier, _ = deploy_artifact(owner, "MockVerifier")
        found = _mlp_bundle()
        if found is not None:
            entry = found[1]
            info = ModelInfo(
                onnx_sha256=bytes(entry["onnxSha256"]),
                settings_hash=bytes(entry["settingsHash"]),  # type: ignore[call-overload]
                verifier=verifier,
                input_binding=int(entry["inputBinding"]),  # type: ignore[call-overload]
                commitment_index=int(entry["commitmentIndex"]),
                output_offset=int(entry["outputOffset"]),  # type: ignore[call-overload]
                output_length=int(entry["outputLength"]),
                instance_count=int(entry["instanceCount"]),  # type: ignore[call-overload]
            )
        else:
            info = ModelInfo(
                onnx_sha256=b"\x01" * 32,
                settings_hash=b"\x02" * 32,
                verifier=verifier,
                commitment_index=0,
                output_offset=1,
                output_length=3,
                instance_count=4,
            )
        model_id = Registry(w3, deployment.registry, sender=owner).register_model(info)
        token = Token(w3, address, sender=TxSender(w3, REQUESTER))
        Token(w3, address, sender=owner).mint(token.sender.address, 1_000 * UNIT)  # type: ignore[union-attr]
        yield UsdtChain(chain, w3, deployment, path, token, model_id, found[0] if found else None)


@contextlib.contextmanager
def _rewound(env: UsdtChain) -> Iterator[None]:
    """Run a block on a chain snapshot, rewound afterwards (nonces resynced)."""
    snapshot = env.chain.rpc("evm_snapshot", [])
    try:
        yield
    finally:
        env.chain.rpc("evm_revert", [snapshot])
        resync_nonces(env.w3)


def _intent(env: UsdtChain, **changes: object) -> Intent:
    now = int(env.w3.eth.get_block("latest")["timestamp"])
    base = Intent(
        requester=Account.from_key(REQUESTER).address,
        model_id=env.model_id,
        input_commitment=0xC0FFEE,
        max_price=UNIT // 10,
        auction_type=AuctionType.REVERSE,
        auction_window=60,
        deadline=now + 3_600,
        proof_mode=ProofMode.ZK,
        nonce=random_nonce(),
        expiry=now + 600,
    )
    return base.replace(**changes)


def _tender(*args: str, key: str | None = REQUESTER) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TENDER_PRIVATE_KEY"}
    if key is not None:
        env["TENDER_PRIVATE_KEY"] = key
    return subprocess.run([*tender_command(), *args], capture_output=True, text=True, env=env, timeout=300)


def _cast_sign(typed: dict[str, object], key: str, tmp_path: Path) -> bytes:
    """Sign EIP-712 JSON with Foundry's ``cast`` (alloy's implementation, not ours)."""
    path = tmp_path / "typed.json"
    path.write_text(json.dumps(typed))
    out = subprocess.run(
        [str(node_bin("cast")), "wallet", "sign", "--data", "--from-file", str(path), "--private-key", key],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return bytes.fromhex(out.stdout.strip().removeprefix("0x"))


# -- token units --------------------------------------------------------------------------


def test_token_reads_decimals_and_a_bytes32_symbol(usdt: UsdtChain) -> None:
    assert usdt.token.decimals() == DECIMALS
    assert usdt.token.symbol() == "USDX"
    owner = TxSender(usdt.w3, DEV_KEYS[0])
    plain, _ = deploy_artifact(owner, "TestToken", "Six", "SIX", 6)  # a string symbol
    assert (Token(usdt.w3, plain).decimals(), Token(usdt.w3, plain).symbol()) == (6, "SIX")


def test_amounts_are_parsed_and_printed_in_the_token_decimals() -> None:
    assert parse_amount("0.1", DECIMALS) == 10
    assert parse_amount("101", DECIMALS) == 10_100
    assert parse_amount("7wei", DECIMALS) == 7
    assert parse_amount("0.1", 18) == 10**17
    assert format_amount(10_100, DECIMALS) == "101"
    assert format_amount(10_105, DECIMALS) == "101.05"
    for bad in ("0.001", "-1", "ten", ""):
        with pytest.raises(ConfigError):
            parse_amount(bad, DECIMALS)


# -- USDT-style approvals -----------------------------------------------------------------


def test_usdt_style_token_refuses_approve_over_a_non_zero_allowance(usdt: UsdtChain) -> None:
    # The exploit feared: a second approve(new) over an existing allowance, as every ERC-20
    # helper does, reverts on USDT; the requester then can never fund an escrow.
    spender = usdt.deployment.market("dutch")
    with _rewound(usdt):
        usdt.token.approve(spender, 5)
        with pytest.raises((ContractRevert, TransactionFailed)) as caught:
            usdt.token.approve(spender, 100)
        refused = keccak(text="ApproveFromNonZero(address,address,uint256,uint256)")[:4].hex()
        assert refused in str(caught.value)
        assert usdt.token.ensure_allowance(spender, 100) is not None  # zero first, then 100
        assert usdt.token.allowance(usdt.token.sender.address, spender) == 100  # type: ignore[union-attr]
        assert usdt.token.ensure_allowance(spender, 100) is None  # covered: nothing sent


def test_market_funding_and_a_post_work_with_a_usdt_style_token(usdt: UsdtChain) -> None:
    market = usdt.market(REQUESTER)
    with _rewound(usdt):
        usdt.token.approve(market.address, 1)  # a stale, too small allowance
        intent = _intent(usdt)
        escrow = market.escrow_for(intent.max_price)
        market.ensure_funding(escrow)
        market.post(intent)
        assert market.job(market.job_id(intent)).state == JobState.OPEN


# -- outside wallets ----------------------------------------------------------------------


def test_json_safe_typed_data_writes_large_integers_as_strings(usdt: UsdtChain) -> None:
    intent = _intent(usdt, expiry=2**64 - 1, deadline=2**64 - 2)
    typed = typed_data(intent, chain_id=2**60, market=usdt.deployment.market("reverse"), json_safe=True)
    message = typed["message"]
    assert message["expiry"] == str(2**64 - 1)
    assert message["deadline"] == str(2**64 - 2)
    assert isinstance(message["nonce"], str)
    assert isinstance(message["maxPrice"], str)
    assert typed["domain"]["chainId"] == str(2**60)
    assert isinstance(message["auctionWindow"], int)  # uint32: safe as a JSON number
    # What JavaScript's JSON.parse would do to a number: no integer above 2**53 survives as one.
    for value in [*message.values(), *typed["domain"].values()]:
        assert not (isinstance(value, int) and value > 2**53)


def test_cast_signed_intent_is_accepted_by_the_market(usdt: UsdtChain, tmp_path: Path) -> None:
    market = usdt.market()
    intent = _intent(usdt, expiry=2**64 - 1)  # valid on chain, rounded by JSON numbers
    typed = typed_data(intent, chain_id=31337, market=market.address, json_safe=True)
    signature = _cast_sign(typed, REQUESTER, tmp_path)
    assert signature[64] in (27, 28)
    with _rewound(usdt):
        usdt.token.ensure_allowance(market.address, market.escrow_for(intent.max_price))
        market.submit_signed(intent, signature)
        job = market.job(job_id(intent, chain_id=31337, market=market.address))
        assert (job.state, job.requester) == (JobState.OPEN, intent.requester)


def test_market_refuses_v_0_or_1_like_the_sdk(usdt: UsdtChain, tmp_path: Path) -> None:
    from tender.errors import IntentError
    from tender.intents import check_signature

    market = usdt.market()
    intent = _intent(usdt)
    signature = _cast_sign(
        typed_data(intent, chain_id=31337, market=market.address, json_safe=True), REQUESTER, tmp_path
    )
    low_v = signature[:64] + bytes([signature[64] - 27])
    with pytest.raises(IntentError, match="v is"):
        check_signature(intent, low_v, chain_id=31337, market=market.address)
    with _rewound(usdt):
        usdt.token.ensure_allowance(market.address, market.escrow_for(intent.max_price))
        with pytest.raises(ContractRevert) as caught:
            market.submit_signed(intent, low_v)
        assert caught.value.name == "InvalidSignature"


def test_cli_typed_data_signed_by_cast_is_sent_and_posted(usdt: UsdtChain, tmp_path: Path) -> None:
    """``tender intent typed-data`` → ``cast wallet sign`` → the market takes it; the price is in
    the token's 2 decimals (0.1 = 10 base units)."""
    if usdt.bundle is None:
        pytest.skip("no cached polycommit mlp bundle (tests/models builds it)")
    requester = Account.from_key(REQUESTER).address
    intent_path = tmp_path / "intent.json"
    made = _tender(
        "intent",
        "typed-data",
        "mlp",
        "--max-price",
        "0.1",
        "--requester",
        requester,
        "--input",
        str(SAMPLE_MODELS / "mlp" / "input.json")
        if (SAMPLE_MODELS / "mlp" / "input.json").is_file()
        else json.dumps(
            json.loads((SAMPLE_MODELS / "mlp" / "samples.json").read_text())["samples"][0]["input"]
        ),
        "--rpc",
        usdt.chain.rpc_url,
        "--deployment",
        str(usdt.deployment_path),
        "--out",
        str(intent_path),
        key=None,
    )
    assert made.returncode == 0, made.stderr
    typed = json.loads(made.stdout)
    assert typed["message"]["maxPrice"] == "10"
    assert typed["domain"]["chainId"] == "31337"
    stored = json.loads(intent_path.read_text())
    intent = Intent.from_json(stored["intent"])
    assert intent.model_id == usdt.model_id  # found through the registry
    signature = _cast_sign(typed, REQUESTER, tmp_path)
    market = usdt.market()
    with _rewound(usdt):
        usdt.token.ensure_allowance(market.address, market.escrow_for(intent.max_price))
        market.submit_signed(intent, signature)
        assert market.job(bytes.fromhex(stored["jobId"][2:])).state == JobState.OPEN


# -- the SDK and the solver with outside wallets -----------------------------------------


@contextlib.asynccontextmanager
async def _solver_api(env: UsdtChain) -> AsyncIterator[tuple[str, list[tuple[Intent, bytes]]]]:
    """The solver's real ``POST /intents`` (with its ERC-1271 check on this chain) on loopback."""
    accepted: list[tuple[Intent, bytes]] = []

    async def accept(intent: Intent, signature: bytes, market: str, job: str) -> bool:
        accepted.append((intent, signature))
        return True

    w3 = async_connect(env.chain.rpc_url)
    api = IntentApi(
        chain_id=31337,
        markets=list(env.deployment.markets.values()),
        accept=accept,
        status=dict,
        contract_accepts=functools.partial(erc1271_accepts_on_chain, w3),
    )
    await api.start("127.0.0.1:0")
    try:
        yield f"http://127.0.0.1:{api.port}", accepted
    finally:
        await api.stop()
        await w3.provider.disconnect()


async def test_client_signs_through_an_outside_wallet(usdt: UsdtChain, tmp_path: Path) -> None:
    from tender.client import Client, RequestRejected

    requester = Account.from_key(REQUESTER).address
    async with _solver_api(usdt) as (url, accepted):
        client = Client(
            usdt.chain.rpc_url,
            signer=lambda typed: _cast_sign(typed, REQUESTER, tmp_path),
            address=requester,
            solvers=[url],
            deployment=usdt.deployment,
            self_help=False,
        )
        with _rewound(usdt):
            intent = _intent(usdt)
            with pytest.raises(RequestRejected, match="approve the market from the wallet"):
                await client.send(intent)  # a keyless client sends no approve: the wallet must
            usdt.token.ensure_allowance(
                usdt.deployment.market("reverse"), 1_000 * UNIT
            )  # the wallet approves
            await client.send(intent)  # signed by cast through the signer, taken by the solver
            ((taken, signature),) = accepted
            assert taken == intent
            usdt.market().submit_signed(taken, signature)  # and by the market when relayed
            assert usdt.market().job(bytes.fromhex(client.job_id(intent)[2:])).state == JobState.OPEN

            second = _intent(usdt)  # a ready signature, made outside before the call
            ready = _cast_sign(client.typed_data(second), REQUESTER, tmp_path)
            await client.send(second, signature=ready)
            assert accepted[-1] == (second, ready)
            with pytest.raises(RequestRejected, match="v is"):  # what the market would refuse
                await client.send(_intent(usdt), signature=ready[:64] + bytes([ready[64] - 27]))
        await client.aclose()


async def test_solver_takes_a_contract_requesters_signature_as_the_market_does(usdt: UsdtChain) -> None:
    import aiohttp

    from tender.intents import sign_intent

    owner = TxSender(usdt.w3, DEV_KEYS[0])
    wallet, _ = deploy_artifact(owner, "MockERC1271Wallet", Account.from_key(REQUESTER).address)
    market = usdt.deployment.market("reverse")
    intent = _intent(usdt, requester=wallet)
    digest = job_id(intent, chain_id=31337, market=market)
    answers = []
    async with _solver_api(usdt) as (url, accepted), aiohttp.ClientSession() as http:
        for key in (REQUESTER, DEV_KEYS[7]):  # the wallet's owner, then a stranger
            body = {
                "intent": intent.to_json(),
                "market": market,
                "chainId": 31337,
                "jobId": "0x" + digest.hex(),
                "signature": "0x" + sign_intent(intent, key, chain_id=31337, market=market).hex(),
            }
            async with http.post(f"{url}/intents", json=body) as reply:
                answers.append(reply.status)
    assert answers == [202, 422]
    assert len(accepted) == 1


def test_market_owed_prints_a_credit_in_the_token_decimals(usdt: UsdtChain) -> None:
    market = usdt.market(REQUESTER)
    requester = Account.from_key(REQUESTER).address
    with _rewound(usdt):
        intent = _intent(usdt, max_price=101 * UNIT)  # a 101-token credit once refunded
        market.ensure_funding(market.escrow_for(intent.max_price))
        market.post(intent)
        usdt.chain.rpc("evm_increaseTime", [intent.auction_window + 1])
        usdt.chain.rpc("evm_mine", [])
        market.refund(market.job_id(intent))
        owed = market.owed(requester)
        shown = _tender(
            "market",
            "owed",
            "--market",
            "reverse",
            "--rpc",
            usdt.chain.rpc_url,
            "--deployment",
            str(usdt.deployment_path),
        )
    assert shown.returncode == 0, shown.stderr
    assert owed >= 101 * UNIT
    assert f" {format_amount(owed, DECIMALS)} " in shown.stdout  # e.g. 101, not 0.0000000000000101
    assert "USDX" in shown.stdout
    assert "0.0000" not in shown.stdout
