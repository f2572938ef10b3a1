"""The auditor on a real history: 20 jobs through every ending, then tampered copies of it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tender.chain import load_artifact
from tender.intents import AuctionType, ProofMode
from tests.harness.verifier import Env, History, build_history, samples
from verifier import Status
from verifier._audit import Auditor
from verifier._calldata import DecodedCall
from verifier._history import ChainSource
from verifier.cli import audit as audit_command

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def history(tender_env: Env) -> History:
    return build_history(tender_env)


@pytest.fixture
def snapshot(tender_env: Env, history: History) -> Iterator[Env]:
    """The chain with its history; anything a test tampers with is rewound."""
    snap = tender_env.chain.rpc("evm_snapshot", [])
    try:
        yield tender_env
    finally:
        tender_env.chain.rpc("evm_revert", [snap])


def test_clean_history_passes(tender_env: Env, history: History) -> None:
    report = Auditor(tender_env.w3, tender_env.deployment).run()
    assert len(report.jobs) == len(history.all) >= 20
    failures = {job.job_id: [c.to_json() for c in job.failures()] for job in report.failed_jobs}
    assert report.ok, json.dumps(failures, indent=1) + json.dumps([c.to_json() for c in report.global_checks])
    by_id = {job.job_id: job for job in report.jobs}
    states = {name: {by_id["0x" + j.hex()].state for j in jobs} for name, jobs in vars(history).items()}
    assert states == {
        "zk": {"settled"},
        "finalized": {"settled"},
        "slashed": {"slashed"},
        "proved": {"settled"},
        "expired": {"expired"},
        "refunded": {"refunded"},
    }
    for job in [*history.zk, *history.proved]:
        assert by_id["0x" + job.hex()].status_of("proof") is Status.OK
        assert by_id["0x" + job.hex()].status_of("input") is Status.OK
    for job in history.finalized:  # no proof on chain: re-executed instead
        assert "re-executed" in next(c.detail for c in by_id["0x" + job.hex()].checks if c.name == "proof")
    assert all(c.status is Status.OK for c in report.global_checks)


class TamperedSource(ChainSource):
    """Serves altered calldata for one job's deliver/prove call."""

    def __init__(self, w3: Any, job: bytes, alter: Any) -> None:
        super().__init__(w3)
        self.job, self.alter = job, alter

    def find_call(self, tx_hash: bytes, **kwargs: Any) -> DecodedCall:
        call = super().find_call(tx_hash, **kwargs)
        return self.alter(call) if kwargs["job_id"] == self.job else call


def _flip_proof(call: DecodedCall) -> DecodedCall:
    proof = bytearray(call.args["proof"])
    if not proof:  # the optimistic deliver of a job proven later
        return call
    proof[100] ^= 0x01
    return replace(call, args={**call.args, "proof": bytes(proof)})


@pytest.mark.parametrize("kind", ["zk", "proved"])
def test_altered_proof_calldata_is_flagged(tender_env: Env, history: History, kind: str) -> None:
    target = getattr(history, kind)[0]
    source = TamperedSource(tender_env.w3, target, _flip_proof)
    report = Auditor(tender_env.w3, tender_env.deployment, source=source).run()
    assert not report.ok
    assert [job.job_id for job in report.failed_jobs] == ["0x" + target.hex()]
    (failed,) = report.failed_jobs
    assert [c.name for c in failed.failures()] == ["proof"]
    assert "REJECTS" in failed.failures()[0].detail


def test_altered_output_calldata_is_flagged(tender_env: Env, history: History) -> None:
    target = history.zk[1]

    def alter(call: DecodedCall) -> DecodedCall:
        output = list(call.args["output"])
        output[0] += 1
        return replace(call, args={**call.args, "output": tuple(output)})

    report = Auditor(
        tender_env.w3, tender_env.deployment, source=TamperedSource(tender_env.w3, target, alter)
    ).run()
    (failed,) = report.failed_jobs
    assert "calldata's output differs" in next(c.detail for c in failed.failures() if c.name == "events")


def test_proof_for_another_commitment_is_flagged(tender_env: Env, history: History) -> None:
    """A job whose intent committed to another input than its proof's: the verifier contract
    accepts the proof (a polycommit proof's instances are its outputs only), the auditor's input
    binding check ``keccak256(proof[0:64]) == inputCommitment`` does not."""
    from tests.harness.verifier import input_commitment, mlp_bundle, samples

    target = history.zk[3]  # proves sample 3
    other = input_commitment(mlp_bundle(), samples()[5])

    class Rebound(Auditor):
        def _check_proof(self, h: Any, audit: Any) -> Any:
            if h.job_id == target:
                h = replace(h, intent=h.intent.replace(input_commitment=other))
            return super()._check_proof(h, audit)

    report = Rebound(tender_env.w3, tender_env.deployment).run()
    (failed,) = report.failed_jobs
    assert failed.job_id == "0x" + target.hex()
    assert [c.name for c in failed.failures()] == ["proof"]
    detail = failed.failures()[0].detail
    assert "verifier contract accepts" in detail
    assert "NOT the input commitment" in detail


def test_input_that_is_not_the_committed_one_is_flagged(tender_env: Env, history: History) -> None:
    """The inline input is re-committed with the bundle's vk and SRS (KZG): another input fails."""
    from tests.harness.verifier import samples

    target = history.zk[0]

    class Swapped(Auditor):
        def _input(self, h: Any) -> Any:
            return samples()[6] if h.job_id == target else super()._input(h)

    report = Swapped(tender_env.w3, tender_env.deployment).run()
    (failed,) = report.failed_jobs
    assert [c.name for c in failed.failures()] == ["input"]
    assert "commit" in failed.failures()[0].detail.lower()


def _storage_root() -> int:
    """Where the markets' namespaced state struct starts (``MarketCore._STORAGE``)."""
    import re

    from tender.paths import CONTRACTS

    source = (CONTRACTS / "src" / "MarketCore.sol").read_text()
    return int(re.search(r"_STORAGE = (0x[0-9a-fA-F]{64})", source).group(1), 16)  # type: ignore[union-attr]


def _job_slot(env: Env, job: bytes) -> int:
    """The storage slot of the job's record (found by its requester word, no layout file needed):
    the markets keep their state in one namespaced struct (``MarketCore._STORAGE``), whose
    ``jobs`` mapping sits a few slots past the namespace's root."""
    from eth_abi import encode
    from web3 import Web3

    market = env.deployment.market("dutch")
    root = _storage_root()
    for index in range(root, root + 64):
        slot = int.from_bytes(Web3.keccak(encode(["bytes32", "uint256"], [job, index])), "big")
        word = int(env.chain.rpc("eth_getStorageAt", [market, hex(slot), "latest"]), 16)
        if word & ((1 << 160) - 1) == int(env.requester.address, 16):
            return slot
    raise AssertionError("job slot not found")


def test_tampered_stored_price_is_flagged(snapshot: Env, history: History) -> None:
    env = snapshot
    target = history.zk[2]
    slot = _job_slot(env, target) + 2  # JobRecord slot 2: provider (160 bits) | price (uint96)
    market = env.deployment.market("dutch")
    word = int(env.chain.rpc("eth_getStorageAt", [market, hex(slot), "latest"]), 16)
    tampered = word + (1 << 160)  # one more unit of price
    env.chain.rpc("anvil_setStorageAt", [market, hex(slot), "0x" + tampered.to_bytes(32, "big").hex()])
    report = Auditor(env.w3, env.deployment).run()
    (failed,) = report.failed_jobs
    assert failed.job_id == "0x" + target.hex()
    assert "stored price" in next(c.detail for c in failed.failures() if c.name == "events")


def test_tampered_escrow_balance_is_flagged(snapshot: Env, history: History) -> None:
    from eth_abi import encode
    from web3 import Web3

    env = snapshot
    market = env.deployment.market("dutch")
    # OpenZeppelin ERC20: _balances is the first storage variable (slot 0)
    slot = int.from_bytes(Web3.keccak(encode(["address", "uint256"], [market, 0])), "big")
    balance = env.requester.token.balance_of(market)
    env.chain.rpc(
        "anvil_setStorageAt",
        [env.deployment.token, hex(slot), "0x" + (balance + 7).to_bytes(32, "big").hex()],
    )
    assert env.requester.token.balance_of(market) == balance + 7
    report = Auditor(env.w3, env.deployment).run()
    assert not report.ok
    (bad,) = [c for c in report.global_checks if c.status is Status.FAIL]
    assert bad.name == "escrow.dutch"


def _owed_slot(env: Env, account: str) -> int:
    """The storage slot of the Dutch market's ``owed[account]`` (found by its value, in the
    namespaced state struct)."""
    from eth_abi import encode
    from web3 import Web3

    market = env.deployment.market("dutch")
    owed = env.requester.market.owed(account)
    assert owed > 0
    root = _storage_root()
    for index in range(root, root + 64):
        slot = int.from_bytes(Web3.keccak(encode(["address", "uint256"], [account, index])), "big")
        if int(env.chain.rpc("eth_getStorageAt", [market, hex(slot), "latest"]), 16) == owed:
            return slot
    raise AssertionError("owed slot not found")


def test_clean_history_accounts_for_credits_and_withdrawals(tender_env: Env, history: History) -> None:
    report = Auditor(tender_env.w3, tender_env.deployment).run()
    credit = next(c for c in report.global_checks if c.name == "credit.dutch")
    assert credit.status is Status.OK, credit.detail
    by_id = {job.job_id: job for job in report.jobs}
    last = by_id["0x" + history.zk[-1].hex()]  # posted from the requester's credit
    assert last.amounts["escrow_from_credit"] == last.amounts["escrow"]
    assert all(c.status is Status.OK for c in last.checks if c.name == "amounts")


def test_tampered_credit_is_flagged(snapshot: Env, history: History) -> None:
    env = snapshot
    market = env.deployment.market("dutch")
    slot = _owed_slot(env, env.requester.address)
    value = int(env.chain.rpc("eth_getStorageAt", [market, hex(slot), "latest"]), 16)
    env.chain.rpc("anvil_setStorageAt", [market, hex(slot), "0x" + (value + 1).to_bytes(32, "big").hex()])
    report = Auditor(env.w3, env.deployment).run()
    assert not report.ok
    (bad,) = [c for c in report.global_checks if c.status is Status.FAIL]
    assert bad.name == "credit.dutch"
    assert f"owed({env.requester.address[:8]}…) is {value + 1}, the events credit {value}" in bad.detail


def test_a_payout_in_a_settlement_is_flagged(tender_env: Env, history: History) -> None:
    """A settlement only credits: a token transfer out of the market in it fails its amounts check."""
    from eth_abi import encode
    from web3 import Web3

    target = history.zk[3]
    market, token = tender_env.deployment.market("dutch"), tender_env.deployment.token
    (job,) = Auditor(tender_env.w3, tender_env.deployment).history.scan(
        tender_env.deployment.block, tender_env.w3.eth.block_number, job_ids=[target]
    )
    settle_tx = next(e.tx_hash for e in job.events if e.name == "Settled")

    def word(address: str) -> bytes:
        return bytes(12) + bytes.fromhex(address[2:])

    class PushingSource(ChainSource):
        """Adds a 1-unit transfer from the market to the provider to the settlement's logs."""

        def receipt_logs(self, tx_hash: bytes) -> list[Any]:
            logs = super().receipt_logs(tx_hash)
            if tx_hash != settle_tx:
                return logs
            topic = Web3.keccak(text="Transfer(address,address,uint256)")
            fake = {
                "address": token,
                "topics": [topic, word(market), word(tender_env.provider.address)],
                "data": "0x" + encode(["uint256"], [1]).hex(),
                "blockNumber": logs[0]["blockNumber"],
                "transactionHash": tx_hash,
                "logIndex": 999,
            }
            return [*logs, fake]

    report = Auditor(tender_env.w3, tender_env.deployment, source=PushingSource(tender_env.w3)).run()
    (failed,) = report.failed_jobs
    assert failed.job_id == "0x" + target.hex()
    assert "paid out" in next(c.detail for c in failed.failures() if c.name == "amounts")


def test_cli_json_report_and_exit_codes(tender_env: Env, history: History, tmp_path: Path) -> None:
    deployment = tender_env.deployment.save(tmp_path / "deployment.json")
    runner = CliRunner()
    args = ["--rpc", tender_env.chain.rpc_url, "--deployment", str(deployment), "--json"]
    result = runner.invoke(audit_command, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ok"] is True
    assert report["jobs"] == len(history.all)
    one = runner.invoke(audit_command, [*args, "--job", "0x" + history.slashed[0].hex()])
    assert one.exit_code == 0
    assert [r["state"] for r in json.loads(one.output)["results"]] == ["slashed"]
    table = runner.invoke(audit_command, args[:-1])
    assert table.exit_code == 0
    assert "audit passed" in table.output
    assert load_artifact("DutchAuctionMarket")  # the artefacts the CLI reads exist


def test_reverse_jobs_without_an_award_audit_against_their_terms(snapshot: Env, history: History) -> None:
    """A reverse job stores only its terms' hash while Open, and a refund without an award writes
    the payment's fields: the auditor checks each against what ``IntentPosted`` gives, and flags an
    Open word that the terms do not hash to."""
    env = snapshot
    x = samples()[0]
    intents = [
        env.intent(x, mode=ProofMode.ZK, auction_type=AuctionType.REVERSE, start_price=0) for _ in range(2)
    ]
    refunded, open_ = (env.requester.reverse.job_id(i) for i in intents)
    env.requester.reverse.post(intents[0])
    env.advance(61)
    env.bystander.reverse.refund(refunded)
    env.requester.reverse.post(intents[1])
    report = Auditor(env.w3, env.deployment).run()
    by_id = {job.job_id: job for job in report.jobs}
    assert report.ok, [c.to_json() for j in report.failed_jobs for c in j.failures()]
    assert by_id["0x" + refunded.hex()].state == "refunded"
    assert by_id["0x" + open_.hex()].state == "open"

    # the Open word is slot 1 of the record: a word the terms do not hash to is flagged
    market = env.deployment.market("reverse")
    slot = _open_word_slot(env, market, open_)
    word = int(env.chain.rpc("eth_getStorageAt", [market, hex(slot), "latest"]), 16)
    tampered = word ^ (1 << 200)  # another hash, still Open
    env.chain.rpc("anvil_setStorageAt", [market, hex(slot), "0x" + tampered.to_bytes(32, "big").hex()])
    report = Auditor(env.w3, env.deployment).run()
    (failed,) = report.failed_jobs
    assert failed.job_id == "0x" + open_.hex()
    assert "refuses the terms" in next(c.detail for c in failed.failures() if c.name == "events")


def _open_word_slot(env: Env, market: str, job: bytes) -> int:
    """Slot 1 of an Open reverse job's record: the one word its posting wrote (state Open in the low byte)."""
    from eth_abi import encode
    from web3 import Web3

    root = _storage_root()
    for index in range(root, root + 64):
        slot = int.from_bytes(Web3.keccak(encode(["bytes32", "uint256"], [job, index])), "big") + 1
        word = int(env.chain.rpc("eth_getStorageAt", [market, hex(slot), "latest"]), 16)
        if word & 0xFF == 1 and word >> 8:
            return slot
    raise AssertionError("Open word not found")
