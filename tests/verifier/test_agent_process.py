"""The agent as a real process (`tender verifier run`): killed between a wrong delivery and
its challenge, restarted, it still challenges in time; a crash after the challenge was
stored but before it was sent does not produce a second challenge."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from test_agent import wrong_output

from tender.anvil import free_port
from tender.chain import JobState
from tender.intents import ProofMode
from tender.paths import ROOT
from tests.harness.verifier import Env, samples

pytestmark = pytest.mark.slow

TENDER = str(Path(sys.executable).parent / "tender")


def write_config(env: Env, deployment_file: Path, tmp_path: Path, port: int, *, crash: bool = False) -> Path:
    path = tmp_path / "verifier.toml"
    path.write_text(
        f"""
[chain]
rpc_url = "{env.chain.rpc_url}"
deployment = "{deployment_file}"

[verifier]
store = "{tmp_path / "agent.db"}"
poll_interval_s = 0.1
relay_listen = "127.0.0.1:{port}"
fault_crash_after_persist = {"true" if crash else "false"}
"""
    )
    return path


@contextmanager
def agent_process(config: Path, env: Env, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    environment = {**os.environ, "TENDER_PRIVATE_KEY": env.agent_key}
    with log.open("ab") as out:
        process = subprocess.Popen(
            [TENDER, "verifier", "run", "--config", str(config), "--json-logs"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=environment,
            cwd=ROOT,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_ready(port: int, process: subprocess.Popen[bytes], log: Path, *, passes: int = 1) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"agent exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            health = httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1).json()
            if health["passes"] >= passes:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"agent not ready:\n{log.read_text()[-3000:]}")


def wait_for(condition: Callable[[], bool], log: Path, *, timeout: float = 90) -> None:
    """Wait for ``condition`` (generous: the machine may be busy); fail with the agent's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"condition not reached in {timeout}s; agent log:\n{log.read_text()[-4000:]}")


def test_killed_agent_restarts_and_still_challenges_in_time(
    env: Env, deployment_file: Path, tmp_path: Path
) -> None:
    port = free_port()
    config = write_config(env, deployment_file, tmp_path, port)
    log = tmp_path / "agent.log"
    x = samples()[1]
    job = env.open_job(x, mode=ProofMode.OPTIMISTIC)
    with agent_process(config, env, log) as process:
        wait_ready(port, process, log, passes=2)
        process.kill()  # SIGKILL: no cleanup at all
        process.wait()
    env.deliver_optimistic(job, wrong_output(env, x))  # while the agent is down
    env.advance(40)  # a third of the challenge window passes
    assert env.requester.market.job(job).state is JobState.DELIVERED
    with agent_process(config, env, log) as process:
        wait_ready(port, process, log)
        wait_for(lambda: env.requester.market.job(job).state is JobState.CHALLENGED, log)
        assert env.requester.market.job(job).challenger == env.agent.address
        env.advance(121)
        wait_for(lambda: env.requester.market.job(job).state is JobState.SLASHED, log)
        # the agent books its reward once it has scanned the Slashed event
        rewards = f"http://127.0.0.1:{port}/v1/rewards"
        wait_for(lambda: int(httpx.get(rewards, timeout=5).json().get("challenge", 0)) > 0, log)


def test_crash_after_persisting_the_challenge_sends_it_once(
    env: Env, deployment_file: Path, tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "agent.log"
    x = samples()[2]
    job = env.open_job(x, mode=ProofMode.OPTIMISTIC)
    env.deliver_optimistic(job, wrong_output(env, x))
    sent_before = env.w3.eth.get_transaction_count(env.agent.address)
    crashing = write_config(env, deployment_file, tmp_path, port, crash=True)
    with agent_process(crashing, env, log) as process:
        assert process.wait(timeout=120) == 3  # died right after storing the signed challenge
    assert env.requester.market.job(job).state is JobState.DELIVERED  # nothing reached the chain
    config = write_config(env, deployment_file, tmp_path, port)
    with agent_process(config, env, log) as process:
        wait_ready(port, process, log, passes=2)
        assert env.requester.market.job(job).state is JobState.CHALLENGED
    # exactly one transaction left the agent's account: the stored challenge, rebroadcast
    assert env.w3.eth.get_transaction_count(env.agent.address) - sent_before == 1
    challenges = [
        e for e in env.requester.market.events(names=["Challenged"]) if getattr(e, "job_id", None) == job
    ]
    assert len(challenges) == 1
