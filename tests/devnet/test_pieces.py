"""Devnet pieces without a chain: configs, workload, supervisor, live view."""

from __future__ import annotations

import http.server
import os
import signal
import sys
import threading
import time
import tomllib
from pathlib import Path

import pytest
from rich.console import Console

from provider import MisbehaveSection, ModelEntry, ProviderConfig
from provider import load_config as load_provider
from solver import ProviderEntry, SolverConfig
from tender.chain import JobState
from tender.devnet._configs import (
    ProviderPlan,
    dump_config,
    provider_config,
    solver_config,
    verifier_config,
    write_config,
)
from tender.devnet._live import STATE_STYLE, render
from tender.devnet._summary import TERMINAL, RequestRecord, request_state
from tender.devnet._supervisor import ChildFailed, Supervisor
from tender.devnet._workload import plan_workload
from verifier import load_config as load_verifier


def test_generated_configs_load_back_through_the_roles_own_models(tmp_path: Path) -> None:
    plan = ProviderPlan(
        "gpu-c", 3, "0x0003", 0.6, misbehave=MisbehaveSection(silent_on_job=1, wrong_output_on_job=2)
    )
    models = [
        ModelEntry(name="mlp", onnx=Path("models/mlp/model.onnx"), bundle=tmp_path, model_id="0x" + "ab" * 32)
    ]
    entry = ProviderEntry(name="gpu-c", url="http://127.0.0.1:7001", address="0x" + "11" * 20)
    deployment = tmp_path / "d.json"
    provider_file = provider_config(
        plan,
        rpc_url="http://x",
        deployment=deployment,
        port=7001,
        models=models,
        run_dir=tmp_path,
        proving_warmup=False,
    )
    solver_file = solver_config(
        rpc_url="http://x",
        deployment=deployment,
        port=7100,
        run_dir=tmp_path,
        name="s",
        margin_bps=100,
        providers=[entry],
    )
    verifier_file = verifier_config(
        rpc_url="http://x", deployment=deployment, run_dir=tmp_path, relay_listen="127.0.0.1:7301"
    )

    # each file reads back, through the role's own loader, as the model it was written from
    chain, section = load_provider(write_config(tmp_path / "p.toml", provider_file))
    assert ProviderConfig(chain=chain, provider=section) == provider_file
    assert section.misbehave.silent_on_job == 1
    assert section.models[0].model_id == "0x" + "ab" * 32
    assert section.proving_warmup is False
    assert section.store == tmp_path / "gpu-c.db"
    text = write_config(tmp_path / "s.toml", solver_file).read_text()
    assert SolverConfig.model_validate(tomllib.loads(text)) == solver_file
    assert solver_file.solver.providers == [entry]
    assert load_verifier(write_config(tmp_path / "v.toml", verifier_file)) == verifier_file

    for config in (provider_file, solver_file, verifier_file):
        text = dump_config(config)
        assert "key" not in text.lower()  # no secrets in files (keys come from the environment)
        assert tomllib.loads(text)["chain"] == {
            "rpc_url": "http://x",
            "deployment": str(deployment),
            "poll_interval_s": 0.1,
        }
    # a healthy provider has no [provider.misbehave] knobs set
    healthy = provider_config(
        ProviderPlan("gpu-a", 1, "0x0001", 1.0),
        rpc_url="http://x",
        deployment=deployment,
        port=7002,
        models=models,
        run_dir=tmp_path,
    )
    assert tomllib.loads(dump_config(healthy))["provider"].get("misbehave", {}) == {}


def test_workload_is_deterministic_and_puts_faults_first() -> None:
    a, b = plan_workload(40, seed=7), plan_workload(40, seed=7)
    assert a == b
    assert len(a) == 40
    assert [p.kind for p in a[:3]] == ["silent", "wrong", "lowball"]
    assert a[1].proof_mode == "optimistic"
    assert {p.auction for p in a} == {"reverse", "dutch"}
    assert {p.proof_mode for p in a} == {"zk", "optimistic"}
    assert {"signed", "onchain", "agent"} <= {p.source for p in a}
    assert any(p.source == "agent" for p in plan_workload(6, faults=False))  # even a small run has one
    assert not any(p.source == "agent" for p in plan_workload(6, faults=False, agent_share=0))
    assert [p.delay_s for p in a] == sorted(p.delay_s for p in a)
    small = plan_workload(6, faults=False)
    assert all(p.kind == "normal" for p in small)
    assert plan_workload(40, seed=8) != a


def test_supervisor_stops_whole_process_groups(tmp_path: Path) -> None:
    script = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); print('up', flush=True); time.sleep(60)"
    with Supervisor(logs=tmp_path, grace_s=2) as sup:
        child = sup.start("sleeper", [sys.executable, "-c", script], tender=False)
        sup.wait_log("sleeper", "up", timeout=20)
        sup.check()
        pgid = os.getpgid(child.pid)
        assert pgid == child.pid  # its own group: a terminal's Ctrl-C does not reach it
    assert not child.alive
    time.sleep(0.2)
    assert _live_members(pgid) == []  # the grandchild went with it


def _live_members(pgid: int) -> list[int]:
    """Processes of group ``pgid`` that are still running (zombies awaiting a reaper excluded)."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(entry.name))
    return alive


def test_supervisor_reports_a_child_that_dies(tmp_path: Path) -> None:
    with Supervisor(logs=tmp_path) as sup:
        sup.start("crasher", [sys.executable, "-c", "print('boom'); raise SystemExit(3)"], tender=False)
        with pytest.raises(ChildFailed, match="boom"):
            sup.wait_http("crasher", "http://127.0.0.1:9/health", timeout=10)
        with pytest.raises(ChildFailed, match="code 3"):
            sup.check()


def test_supervisor_waits_for_http(tmp_path: Path) -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with Supervisor(logs=tmp_path) as sup:
            sup.start("idle", [sys.executable, "-c", "import time; time.sleep(30)"], tender=False)
            sup.wait_http("idle", f"http://127.0.0.1:{server.server_port}/nothing", timeout=10)
            codes = sup.stop_all()
        assert codes["idle"] == -signal.SIGTERM
    finally:
        server.shutdown()


def test_live_view_renders_records() -> None:
    records = [
        RequestRecord(
            index=0,
            model="mlp",
            auction="reverse",
            proof_mode="zk",
            source="signed",
            max_price=10**17,
            job_id="0x" + "ab" * 32,
            state="settled",
            provider="0xP",
            price_paid=5 * 10**16,
            bids=3,
            e2e_ms=2500.0,
        ),
        RequestRecord(
            index=1,
            model="cnn",
            auction="dutch",
            proof_mode="optimistic",
            source="agent",
            max_price=10**17,
            state="refunded",
            challenged=True,
            slashed=True,
            callback="none",
        ),
        RequestRecord(
            index=2, model="cnn", auction="dutch", proof_mode="zk", source="agent", max_price=10**17
        ),
        RequestRecord(
            index=3,
            model="mlp",
            auction="reverse",
            proof_mode="zk",
            source="agent",
            max_price=10**17,
            job_id="0x" + "cd" * 32,
            state="settled",
            callback="ok",
            callback_gas_limit=330_000,
        ),
        RequestRecord(
            index=4,
            model="mlp",
            auction="dutch",
            proof_mode="zk",
            source="agent",
            max_price=10**17,
            job_id="0x" + "ef" * 32,
            state="awarded",
            callback="pending",
        ),
    ]
    console = Console(record=True, width=140)
    console.print(render(records, started=time.monotonic(), providers={"0xP": "gpu-a"}))
    text = console.export_text()
    assert "gpu-a" in text
    assert "0.0500 / 0.1000" in text
    assert "3/5 done" in text
    assert "callback ✓" in text
    assert "agent callbacks 1/4" in text


def test_request_states_are_the_chain_job_states() -> None:
    assert {"settled", "refunded", "expired"} == TERMINAL  # the summary's JSON keys
    assert request_state(JobState.NONE) == "sent"
    assert request_state(JobState.SLASHED) == "refunded"  # counted with ``RequestRecord.slashed``
    assert request_state(JobState.PROOF_REQUIRED) == "proof_required"
    assert {request_state(s) for s in JobState} | {"pending", "failed"} == STATE_STYLE.keys()


def test_the_client_and_devnet_read_the_chain_through_tender_chain_only() -> None:
    root = Path(__file__).resolve().parents[2] / "tender"
    for path in [*(root / "client").glob("*.py"), *(root / "devnet").glob("*.py")]:
        text = path.read_text()
        assert "get_logs" not in text, path  # one log loop: tender.chain.EventFeed
        assert "class JobState" not in text, path  # one JobState: tender.chain's


def test_live_view_fits_80_columns() -> None:
    """At 80 columns (COLUMNS=80) every column is whole: no row wraps and nothing is cut to '…'."""
    records = [
        RequestRecord(
            index=i,
            model=("mlp", "cnn")[i % 2],
            auction=("reverse", "dutch")[i % 2],
            proof_mode=("zk", "optimistic")[i % 2],
            source=("signed", "onchain", "agent")[i % 3],
            max_price=10**17,
            job_id="0x" + "ab" * 32,
            state=state,
            provider="0xP",
            bids=12,
            price_paid=8 * 10**15,
            e2e_ms=123_456.0,
            challenged=state == "refunded",
            slashed=state == "refunded",
            callback="ok" if i % 3 == 2 else None,
        )
        for i, state in zip(
            range(995, 1001), ("settled", "expired", "refunded", "delivered", "awarded", "open"), strict=True
        )
    ]
    console = Console(record=True, width=80)
    console.print(render(records, started=time.monotonic(), providers={"0xP": "gpu-a"}))
    lines = console.export_text().splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert "…" not in "\n".join(lines)
    rows = [line for line in lines if "gpu-a" in line]
    assert len(rows) == 6  # one line per request
    assert any("refunded ⚔ ✂" in row and "123.5s" in row for row in rows)
    assert any("✓" in row and "0.0080/0.10" in row for row in rows)
    assert any(row.split()[1:3] == ["1000", "chain"] for row in rows)


def test_an_installed_sdk_finds_the_devnet_through_network_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`pip install .` puts tender outside the checkout: `source network.env` must be enough to
    find the devnet's deployment (TENDER_DEPLOYMENT) and its model bundles (TENDER_CACHE)."""
    from tender.chain import Deployment
    from tender.devnet._network import Network
    from tender.errors import DeploymentError

    address = "0x" + "11" * 20
    record = Deployment(31337, address, address, address, {"reverse": address}, 0)
    named = record.save(tmp_path / "elsewhere" / "net.json")
    monkeypatch.setenv("TENDER_DEPLOYMENTS", str(tmp_path / "empty"))
    monkeypatch.setenv("TENDER_DEPLOYMENT", str(named))
    assert Deployment.load(31337) == record
    with pytest.raises(DeploymentError, match="not 1"):
        Deployment.load(1)  # a record for another chain is refused, not used
    monkeypatch.setenv("TENDER_CACHE", str(tmp_path / "cache"))
    network = Network(
        rpc_url="http://127.0.0.1:8545",
        chain_id=31337,
        deployment=named,
        token=address,
        run_dir=tmp_path,
        pid=1,
    )
    variables = network.variables()
    assert variables["TENDER_DEPLOYMENT"] == str(named)
    assert variables["TENDER_CACHE"] == str(tmp_path / "cache")


def test_missing_deployment_names_a_command_that_exists_and_the_file_it_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from tender.chain import Deployment
    from tender.chain._deployment import default_path
    from tender.cli import cli
    from tender.errors import DeploymentError

    monkeypatch.setenv("TENDER_DEPLOYMENTS", str(tmp_path))
    monkeypatch.delenv("TENDER_DEPLOYMENT", raising=False)
    assert default_path(31337) == tmp_path / "31337.json"  # where tools look, and the devnet writes
    with pytest.raises(DeploymentError) as caught:
        Deployment.load(31337)
    message = str(caught.value)
    assert str(tmp_path / "31337.json") in message
    assert "`tender devnet --keep-running`" in message
    assert "make deploy" not in message
    help_text = CliRunner().invoke(cli, ["devnet", "--help"]).output
    assert "--keep-running" in help_text
    assert ".cache/tender/devnet/<time>" in help_text


def test_token_windows_grow_with_the_block_time() -> None:
    """Under interval mining (``--block-time``) the token market's challenge and vote windows
    grow by a few block times, so the watcher's challenge and the re-executors' votes, sent as
    soon as a delivery is read back, land inside them (6 s closed before a 2-s-block devnet's
    watcher came to the first job)."""
    from tender.devnet._tokens import CHALLENGE_WINDOW, VOTE_WINDOW, WINDOW_BLOCKS, TokenPhase

    def step(_: str) -> None:
        return None

    instant = TokenPhase(None, "0x", step)  # type: ignore[arg-type]
    l2 = TokenPhase(None, "0x", step, block_time=2.0)  # type: ignore[arg-type]
    assert instant._slack == 0
    assert l2._slack == WINDOW_BLOCKS * 2
    assert CHALLENGE_WINDOW + l2._slack > 2 * 2.0  # room for the challenge's own block and the next
    assert VOTE_WINDOW + l2._slack > CHALLENGE_WINDOW + l2._slack
