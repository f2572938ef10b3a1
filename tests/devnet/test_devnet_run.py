"""The whole devnet with a small workload: every request ends, the books balance.

Runs ``tender devnet --requests 6`` as a user would (a separate process, so its Ctrl-C and
process-group handling are the real ones) and checks the JSON summary's invariants.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tender.anvil import free_port
from tender.chain import load_artifact
from tender.errors import ArtifactError
from tender.paths import ROOT, cache_dir


def _contracts_built() -> bool:
    try:
        for name in ("ReverseAuctionMarket", "DutchAuctionMarket", "Staking", "ModelRegistry", "TestToken"):
            load_artifact(name)
    except ArtifactError:
        return False
    return True


needs_contracts = pytest.mark.skipif(not _contracts_built(), reason="contracts not built (make contracts)")
TENDER = [sys.executable, "-c", "from tender.cli import main; main()"]


@pytest.mark.slow
@pytest.mark.timeout(900)
@needs_contracts
def test_small_devnet_run_ends_every_request(tmp_path: Path) -> None:
    out = tmp_path / "summary.json"
    done = subprocess.run(
        [
            *TENDER,
            "devnet",
            "--requests",
            "6",
            "--no-live",
            "--no-faults",
            "--json",
            str(out),
            "--png",
            str(tmp_path / "chart.png"),
            "--run-dir",
            str(tmp_path / "run"),
            "--concurrency",
            "6",
            "--quotes",
            "2",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=880,
        check=False,
    )
    assert out.exists(), done.stdout[-4000:] + done.stderr[-4000:]
    summary = json.loads(out.read_text())
    assert summary["requests"] == 6 + 2  # the workload and two quote-market (RFQ) requests
    assert summary["all_terminal"], [
        r for r in summary["records"] if r["state"] not in ("settled", "refunded", "expired")
    ]
    assert summary["settled"] + summary["refunded"] + summary["expired"] == summary["requests"]
    assert summary["proofs_verified_onchain"] == summary["zk_settled"]
    assert summary["settled"] >= 1
    # the on-chain agent's share went through TenderAgent and every settled one was called back
    assert summary["agent_requests"] >= 1
    assert summary["agent_callbacks"] == summary["agent_settled"]
    agent = [r for r in summary["records"] if r["source"] == "agent"]
    assert all(r["callback_gas_limit"] > 0 for r in agent)
    assert all(r["callback"] == "ok" for r in agent if r["state"] == "settled")
    assert summary["e2e_latency_ms"]["p50"] is not None
    # the quote path: the output with a verified commitment first, then the proof settles it
    quote = summary["by_auction"]["quote"]
    assert quote["requests"] == 2
    assert quote["time_to_result_ms"]["n"] >= quote["time_to_settle_ms"]["n"] == quote["settled"] >= 1
    # ... sent by a requester process of its own, from its own accounts, as a real requester would
    requester_log = (tmp_path / "run" / "logs" / "quotes.log").read_text()
    assert requester_log.count('"rfq.provisional"') == quote["time_to_result_ms"]["n"]
    assert {"requester-3", "requester-4"} <= set(summary["payouts"]["requesters"]["accounts"])
    assert summary["honest_slashed"] == 0
    # the markets credit payments and refunds; by the end every role has withdrawn its credit
    payouts = summary["payouts"]
    assert payouts["errors"] == []
    assert int(payouts["providers"]["withdrawn"]) > 0
    assert all(int(payouts[role]["owed"]) == 0 for role in ("providers", "requesters", "verifier"))
    assert (tmp_path / "chart.png").read_bytes()[:4] == b"\x89PNG"
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]


@pytest.mark.slow
@pytest.mark.timeout(900)
@needs_contracts
def test_ctrl_c_stops_every_process(tmp_path: Path) -> None:
    """Ctrl-C a devnet that is kept running (so it cannot have ended by itself, however fast or
    slow the machine): exit code 130, every process gone, and what it published withdrawn."""
    cache, deployments, run_dir = tmp_path / "cache", tmp_path / "deployments", tmp_path / "run"
    cache.mkdir()
    for entry in cache_dir().iterdir():  # the bundles and SRS, so that nothing is rebuilt
        if entry.name in ("models", "srs"):
            (cache / entry.name).symlink_to(entry)
    env = {**os.environ, "TENDER_CACHE": str(cache), "TENDER_DEPLOYMENTS": str(deployments)}
    log = (tmp_path / "devnet.out").open("w")
    process = subprocess.Popen(
        [
            *TENDER,
            "devnet",
            "--keep-running",
            "--port",
            str(free_port()),
            "--no-live",
            "--run-dir",
            str(run_dir),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    marker = cache / "network.json"  # written once every role answers: the readiness marker
    deadline = time.monotonic() + 840
    while not (marker.exists() and json.loads(marker.read_text()).get("pid") == process.pid):
        if process.poll() is not None or time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail(f"the network never came up:\n{(tmp_path / 'devnet.out').read_text()[-4000:]}")
        time.sleep(0.5)
    network = json.loads(marker.read_text())
    assert Path(str(network["TENDER_DEPLOYMENT"])) == deployments / "31337.json"
    assert (deployments / "31337.json").exists()
    assert (cache / "network.env").read_text().count("export TENDER_") == len(
        network
    ) - 2  # less pid, chain_id
    pids = _children(process.pid)
    assert len(pids) >= 7  # anvil, 3 providers, 2 solvers, the verifier agent
    assert all(_running(pid) for pid in pids)
    os.killpg(process.pid, signal.SIGINT)
    process.wait(timeout=120)
    log.close()
    assert process.returncode == 130, (tmp_path / "devnet.out").read_text()[-4000:]
    deadline = time.monotonic() + 30  # reaped children may linger a moment as zombies
    while [pid for pid in pids if _running(pid)] and time.monotonic() < deadline:
        time.sleep(0.2)
    alive = [pid for pid in pids if _running(pid)]
    assert alive == [], f"still running after Ctrl-C: {alive}"
    # what it published is gone with it: no tool is pointed at a chain that no longer runs
    assert not marker.exists()
    assert not (cache / "network.env").exists()
    assert not (deployments / "31337.json").exists()


def _children(root: int) -> list[int]:
    """Every descendant of ``root`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    found, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        kids = [pid for pid, ppid in parents.items() if ppid == parent]
        found += kids
        frontier += kids
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
