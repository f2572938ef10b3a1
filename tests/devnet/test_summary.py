"""The devnet summary: counts, percentiles, invariants, JSON and PNG."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from tender.devnet._summary import (
    RequestRecord,
    Summary,
    check_invariants,
    percentile,
    summarize,
    summary_table,
    write_json,
    write_png,
)

T = 10**18


def _records() -> list[RequestRecord]:
    out = []
    for i in range(8):
        out.append(
            RequestRecord(
                index=i,
                model="mlp",
                auction="reverse" if i % 2 else "dutch",
                proof_mode="zk" if i < 5 else "optimistic",
                source="signed",
                max_price=T // 10,
                state="settled",
                price_paid=T // 20,
                verified_onchain=i < 5,
                auction_ms=100.0 * (i + 1),
                e2e_ms=1000.0 * (i + 1),
                gas={"awarded": 100_000, "delivered": 300_000},
            )
        )
    out.append(
        RequestRecord(
            index=8,
            model="cnn",
            auction="reverse",
            proof_mode="zk",
            source="signed",
            max_price=T // 10,
            state="expired",
            slashed=True,
            compensation=5,
        )
    )
    out.append(
        RequestRecord(
            index=9,
            model="mlp",
            auction="reverse",
            proof_mode="optimistic",
            source="signed",
            max_price=T // 10,
            state="refunded",
            slashed=True,
            challenged=True,
        )
    )
    out.append(
        RequestRecord(
            index=10,
            model="cnn",
            auction="reverse",
            proof_mode="zk",
            source="onchain",
            max_price=1,
            state="refunded",
        )
    )
    for i in (2, 6):  # two of the settled ones came from the on-chain agent and were called back
        out[i].source, out[i].callback, out[i].callback_gas_limit = "agent", "ok", 330_000
        out[i].job_id = f"0x{i:064x}"
    return out


def test_percentile_interpolates() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0], 95) == 3.0
    assert percentile([1, 2, 3, 4], 50) == pytest.approx(2.5)
    assert percentile(list(range(101)), 95) == pytest.approx(95.0)


def test_summary_counts_and_invariants_hold() -> None:
    summary = summarize(_records(), audit={"clean": True})
    d = summary.data
    assert (d["requests"], d["settled"], d["refunded"], d["expired"]) == (11, 8, 2, 1)
    assert d["slashed"] == 2
    assert d["challenged"] == 1
    assert d["proofs_verified_onchain"] == d["zk_settled"] == 5
    assert d["price_paid_over_max"] == pytest.approx(0.5)
    assert d["auction_latency_ms"]["p50"] == pytest.approx(450.0)
    assert d["e2e_latency_ms"]["p95"] == pytest.approx(7650.0)
    assert d["gas"]["delivered"] == {"total": 2_400_000, "count": 8, "mean": 300_000}
    assert (d["agent_requests"], d["agent_settled"], d["agent_callbacks"], d["agent_callbacks_failed"]) == (
        2,
        2,
        2,
        0,
    )
    assert check_invariants(summary, expect_faults=True) == []


def test_invariants_catch_a_settled_agent_job_without_its_callback() -> None:
    records = _records()
    records[2].callback = "failed"
    records[6].callback_gas_limit = 0
    problems = "\n".join(check_invariants(summarize(records, audit={"clean": True}), expect_faults=True))
    assert "1 settled agent job(s) without the agent's callback: #2 callback failed" in problems
    assert "posted without callback gas: #6" in problems
    # an agent job that never settled owes no callback
    records = _records()
    records[2].state, records[2].callback = "refunded", "none"
    assert check_invariants(summarize(records), expect_faults=True) == []


def test_invariants_catch_a_stuck_request_missing_faults_and_a_dirty_audit() -> None:
    records = _records()[:8]
    records[0].state = "awarded"
    records[1].verified_onchain = False
    problems = check_invariants(
        summarize(records, audit={"clean": False, "detail": "2 jobs"}), expect_faults=True
    )
    text = "\n".join(problems)
    assert "not terminal" in text
    assert "!= requests" in text
    assert "not verified on-chain" in text
    assert "expired" in text
    assert "challenged" in text
    assert "slashed" in text
    assert "audit not clean" in text


def test_json_png_and_table(tmp_path: Path) -> None:
    summary = summarize(_records(), wall_s=12.3)
    path = write_json(summary, tmp_path / "out" / "summary.json")
    data = json.loads(path.read_text())
    for key in (
        "requests",
        "settled",
        "refunded",
        "expired",
        "slashed",
        "challenged",
        "proofs_verified_onchain",
        "auction_latency_ms",
        "e2e_latency_ms",
        "gas",
        "price_paid_over_max",
    ):
        assert key in data
    assert data["records"][8]["compensation"] == "5"
    assert data["agent_callbacks"] == 2
    assert data["records"][2]["callback"] == "ok"
    png = write_png(_records(), tmp_path / "chart.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    console = Console(record=True, width=100)
    console.print(summary_table(summary))
    text = console.export_text()
    assert "settled" in text
    assert "agent callbacks / agent settled" in text


def test_payouts_show_what_each_role_withdrew_and_is_still_owed() -> None:
    payouts = {
        "providers": {
            "withdrawn": str(3 * T // 10),
            "owed": "0",
            "withdrawals": 3,
            "accounts": {
                "gpu-a": {"withdrawn": str(T // 5), "owed": "0"},
                "gpu-b": {"withdrawn": str(T // 10), "owed": "0"},
            },
        },
        "requesters": {"withdrawn": str(T), "owed": str(T // 100), "withdrawals": 2, "accounts": {}},
        "errors": ["gpu-c at 0xabc: boom"],
    }
    summary = summarize(_records(), extra={"payouts": payouts})
    assert summary["payouts"]["providers"]["withdrawn"] == str(3 * T // 10)
    console = Console(record=True, width=140)
    console.print(summary_table(summary))
    text = console.export_text()
    assert "withdrawn by providers / still owed (tokens)" in text
    assert "0.3000 / 0.0000" in text
    assert "gpu-a" in text
    assert "0.2000 / 0.0000" in text
    assert "1.0000 / 0.0100" in text  # the requesters
    assert "withdraw failed" in text
    assert check_invariants(summary) == []  # the payouts are reported, never a reason to fail the run


def test_requesters_withdrawals_say_how_much_was_slashing_compensation() -> None:
    records = _records()
    records[8].compensation = 4 * T  # the faulty provider's stake paid the requester 4 tokens
    payouts = {
        "requesters": {"withdrawn": str(4 * T + T // 10), "owed": "0", "withdrawals": 1, "accounts": {}},
        "errors": [],
    }
    summary = summarize(records, extra={"payouts": payouts})
    assert summary["compensation"] == {"requesters": str(4 * T), "agent": "0"}
    console = Console(record=True, width=80)
    console.print(summary_table(summary))
    lines = console.export_text().splitlines()
    row = lines.index(next(line for line in lines if "withdrawn by requesters" in line))
    assert "4.1000 / 0.0000" in lines[row]
    assert "of which slashing compensation" in lines[row + 1]
    assert "4.0000" in lines[row + 1]


def test_time_to_result_and_settle_per_auction_kind() -> None:
    records = _records()
    for i, (result, settle) in enumerate([(40.0, 6_000.0), (80.0, 9_000.0), (None, None)]):
        records.append(
            RequestRecord(
                index=11 + i,
                model="mlp",
                auction="quote",
                proof_mode="zk",
                source="signed",
                max_price=T // 10,
                state="settled" if result else "failed",
                price_paid=T // 20,
                verified_onchain=bool(result),
                result_ms=result,
                settle_ms=settle,
            )
        )
    d = summarize(records, extra={"honest_slashed": 0}).data
    quote = d["by_auction"]["quote"]
    # the quote path: the output with its commitment, then settlement, each timed from signing
    assert quote["time_to_result_ms"] == {"p50": 60.0, "p95": 78.0, "n": 2}
    assert quote["time_to_settle_ms"] == {"p50": 7_500.0, "p95": 8_850.0, "n": 2}
    # the auction paths: the output reaches the requester at settlement; optimistic apart
    dutch = d["by_auction"]["dutch"]
    assert dutch["time_to_result_ms"]["n"] == 4
    assert dutch["time_to_settle_ms"] == {"p50": 3_000.0, "p95": 4_800.0, "n": 3}
    assert dutch["time_to_settle_optimistic_ms"]["n"] == 1
    assert d["time_to_result_ms"]["n"] == 10
    assert d["time_to_settle_ms"]["n"] == 7
    assert d["auction_latency_ms"]["n"] == 8  # the existing keys stay
    assert not any("honest" in p for p in check_invariants(Summary(d)))
    d["honest_slashed"] = 1
    assert any("without an injected fault" in p for p in check_invariants(Summary(d)))
