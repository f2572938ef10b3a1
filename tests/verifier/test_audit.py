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
from verifier import Status
from verifier._audit import Auditor
from verifier._calldata import DecodedCall
from verifier._history import ChainSource
from verifier.cli import audit as audit_command
from verifier.testing import Env, History, build_history

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
    assert states == {"zk": {"settled"}, "finalized": {"settled"}, "slashed": {"slashed"}, "proved": {"settled"},
                      "expired": {"expired"}, "refunded": {"refunded"}}  # fmt: skip
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


def _job_slot(env: Env, job: bytes) -> int:
    """The storage slot of ``_jobs[job]`` (found by its requester word, no layout file needed)."""
    from eth_abi import encode
    from web3 import Web3

    market = env.deployment.market("dutch")
    for index in range(64):
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
