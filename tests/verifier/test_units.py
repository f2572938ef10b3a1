"""Pure units: config, report rendering, instances, calldata decoding, tolerance."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from tender.errors import ConfigError
from tender.paths import ROOT
from verifier import AuditReport, JobAudit, Status, load_config
from verifier._audit import instances_for, output_hash
from verifier._calldata import CallDecoder
from verifier._report import Check


def test_example_config_loads() -> None:
    config = load_config(ROOT / "examples" / "verifier.toml")
    assert config.verifier.challenge
    assert config.verifier.relay_listen == "127.0.0.1:7301"
    assert config.verifier.store_path(31337).name == "verifier-31337.db"


def test_config_errors_name_the_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[verifier]\npoll_interval_s = -1\n")
    with pytest.raises(ConfigError, match=r"verifier\.poll_interval_s"):
        load_config(path)
    path.write_text("[verifier]\nunknown = 1\n")
    with pytest.raises(ConfigError, match=r"verifier\.unknown"):
        load_config(path)


def _report(ok: bool) -> AuditReport:
    job = JobAudit("0x" + "ab" * 32, "dutch", "settled", "zk")
    job.add("events", Status.OK, "fine")
    job.add("proof", Status.OK if ok else Status.FAIL, "verifier contract REJECTS")
    job.add("input", Status.SKIP, "not inline")
    report = AuditReport(chain_id=31337, from_block=1, to_block=9, jobs=[job])
    report.global_checks.append(Check("escrow.dutch", Status.OK, "balanced"))
    return report


def test_report_json_and_table() -> None:
    good, bad = _report(True), _report(False)
    assert good.ok
    assert not bad.ok
    data = bad.to_json()
    assert data["failed"] == ["0x" + "ab" * 32]
    assert data["results"][0]["checks"][1] == {
        "name": "proof",
        "status": "fail",
        "detail": "verifier contract REJECTS",
    }
    out = io.StringIO()
    Console(file=out, width=140).print(bad)
    text = out.getvalue()
    assert "Mismatches" in text
    assert "REJECTS" in text
    assert "audit FAILED" in text


def test_instances_and_output_hash() -> None:
    info = {"instanceCount": 5, "commitmentIndex": 0, "outputOffset": 2, "outputLength": 2}
    assert instances_for(info, 7, [8, 9]) == [7, 0, 8, 9, 0]
    from eth_abi import encode
    from web3 import Web3

    assert output_hash([1, 2]) == bytes(Web3.keccak(encode(["uint256[]"], [[1, 2]])))


def test_call_decoder_round_trip() -> None:
    from eth_abi import encode
    from eth_utils import function_signature_to_4byte_selector

    abi = [
        {
            "type": "function",
            "name": "deliver",
            "inputs": [
                {"name": "jobId", "type": "bytes32"},
                {"name": "output", "type": "uint256[]"},
                {"name": "proof", "type": "bytes"},
            ],
        }
    ]
    data = function_signature_to_4byte_selector("deliver(bytes32,uint256[],bytes)") + encode(
        ["bytes32", "uint256[]", "bytes"], [b"\x01" * 32, [3, 4], b"\xbe\xef"]
    )
    name, args = CallDecoder(abi).decode(data)  # type: ignore[misc]
    assert name == "deliver"
    assert args == {"jobId": b"\x01" * 32, "output": (3, 4), "proof": b"\xbe\xef"}
    assert CallDecoder(abi).decode(b"\x00\x00\x00\x00") is None
