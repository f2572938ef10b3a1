"""An intent the solver accepted (``POST /intents`` answered 202) is never silently dropped, on
Anvil with the real markets and real processes:

* an RPC outage that hits while the solver relays the intent (``submitSigned`` signed, its
  broadcast refused): the intent stays in the store, is broadcast again once the chain answers,
  and the job settles;
* no provider reachable when the intent arrives, then the solver killed (``kill -9``) and
  restarted: the intent is in the store, the restarted solver posts it once a provider answers,
  and the job settles.

Before the fix the second was given up at once (no quote: "passed"), so the job never reached
the chain; the first already passed (the relay's broadcast was sent again when the chain came
back) and guards that the relay now waits the outage out instead.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

from solver._solver import Solver
from solver._store import Pursuit, Store, TxState
from tender.anvil import free_port
from tender.chain import JobState
from tender.intents import AuctionType, Intent, job_id
from tender.wire import SignedIntentWire
from tests._proxy import OutageProxy
from tests.harness.solver import start_solver_process

from .conftest import SOLVER_KEYS, Env, Running, wait_until


def _wire(env: Env, intent: Intent) -> bytes:
    market = env.markets[AuctionType.REVERSE].address
    return (
        SignedIntentWire.model_validate(
            {
                "intent": intent.to_json(),
                "signature": "0x" + env.sign(intent).hex(),
                "market": market,
                "chainId": 31337,
                "jobId": "0x" + job_id(intent, chain_id=31337, market=market).hex(),
            }
        )
        .model_dump_json()
        .encode()
    )


def _post(port: int, body: bytes) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/intents", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        return int(reply.status)


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5):
            return True
    except OSError:
        return False


def _quote_failures(port: int, provider: str) -> int:
    """Failed quote requests to ``provider`` in a row, from the solver's ``GET /status``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=10) as reply:
        status = json.loads(reply.read())
    return int(status["providers"][provider]["failures"])


class RelayOutageSolver(Solver):
    """A solver whose RPC proxy goes down the moment its first ``submitSigned`` is broadcast:
    the transaction is signed and stored, and its broadcast meets the outage."""

    proxy: OutageProxy
    hit = False

    async def setup(self) -> None:
        await super().setup()
        original = self.txm._broadcast

        async def broadcast(tx_id: int, raw: bytes, tx_hash: str, until: float | None = None) -> None:
            row = next(t for t in self.store.txs(sender=self.address) if t.id == tx_id)
            if row.purpose == "submit" and not self.hit:
                self.hit = True
                await asyncio.to_thread(self.proxy.go_down)
            await original(tx_id, raw, tx_hash, until)

        self.txm._broadcast = broadcast  # type: ignore[method-assign]


def test_an_outage_during_relay_is_waited_out_and_the_intent_posted_after(env: Env, tmp_path: Path) -> None:
    db = tmp_path / "relay.sqlite"
    port = free_port()
    with OutageProxy(env.chain.rpc_url) as proxy:
        chain = env.chain_section().model_copy(update={"rpc_url": proxy.url})
        section = env.solver_section(db, listen=f"127.0.0.1:{port}")
        solver = RelayOutageSolver(section, chain, key=SOLVER_KEYS[0], deployment=env.deployment)
        solver.proxy = proxy
        store = Store(db)
        with Running([solver]):
            wait_until(lambda: _answers(port), timeout=60)
            intent = env.intent(AuctionType.REVERSE, window=4)
            body = _wire(env, intent)
            job = SignedIntentWire.model_validate_json(body).jobId.lower()
            assert _post(port, body) == 202
            wait_until(lambda: proxy.down, timeout=60)  # the relay is signed; its broadcast meets the outage
            # while the chain is away: the intent is kept (not dropped), its relay signed, not on chain
            wait_until(lambda: solver.chain_error is not None, timeout=60)
            row = store.job(job)
            assert row is not None
            assert row.pursuit == Pursuit.SEEN
            submits = store.job_txs(job, "submit")
            assert len(submits) == 1
            assert submits[0].state in (TxState.SIGNED, TxState.SENT)
            assert not env.job(AuctionType.REVERSE, job).exists
            proxy.come_back()
            wait_until(lambda: env.job(AuctionType.REVERSE, job).state is JobState.SETTLED, timeout=300)
            wait_until(lambda: (r := store.job(job)) is not None and r.pursuit == Pursuit.SETTLED, timeout=60)
    assert solver.hit
    assert proxy.outages == 1
    # the relay signed before the outage was broadcast again, never signed anew
    assert [t.state for t in store.job_txs(job, "submit")] == [TxState.MINED]
    assert job in {j.lower() for j in env.delivered}


def _config(env: Env, tmp_path: Path, db: Path, port: int, provider_url: str) -> Path:
    deployment = env.deployment.save(tmp_path / "deployment.json")
    entry = env.fleet.entries()[0]
    text = f"""
[chain]
rpc_url = "{env.chain.rpc_url}"
deployment = "{deployment}"
key_env = "SOLVER_TEST_KEY"

[solver]
listen = "127.0.0.1:{port}"
store = "{db}"
margin_bps = 100
poll_interval_s = 0.1
job_poll_s = 0.2
quote_timeout_s = 2.0
start_block = {env.deployment.block}

[[solver.providers]]
name = "{entry.name}"
url = "{provider_url}"
address = "{entry.address}"
"""
    path = tmp_path / "solver.toml"
    path.write_text(text)
    return path


def test_an_accepted_intent_survives_kill9_and_is_posted_after_the_restart(env: Env, tmp_path: Path) -> None:
    db = tmp_path / "kill.sqlite"
    port = free_port()
    log = tmp_path / "solver.log"
    entry = env.fleet.entries()[0]
    process: subprocess.Popen[Any] | None = None
    with OutageProxy(entry.url) as provider:  # the solver's way to its one provider
        provider.go_down()
        config = _config(env, tmp_path, db, port, provider.url)
        process = start_solver_process(config, log)
        try:
            wait_until(lambda: _answers(port), timeout=60)
            body = _wire(env, env.intent(AuctionType.REVERSE, window=4))
            job = SignedIntentWire.model_validate_json(body).jobId.lower()
            assert _post(port, body) == 202
            # the solver asked its provider for a quote, found it unreachable, and kept the intent
            wait_until(lambda: _quote_failures(port, entry.name) >= 1, timeout=60)
            row = Store(db).job(job)
            assert row is not None
            assert row.pursuit == Pursuit.SEEN
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
            assert not env.job(AuctionType.REVERSE, job).exists
            provider.come_back()
            process = start_solver_process(config, log)
            wait_until(lambda: env.job(AuctionType.REVERSE, job).state is JobState.SETTLED, timeout=300)
            wait_until(lambda: Store(db).job(job).pursuit == Pursuit.SETTLED, timeout=60)  # type: ignore[union-attr]
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=30)
    assert process.returncode == 0, log.read_text()[-3000:]
    assert [t.state for t in Store(db).job_txs(job, "submit")] == [TxState.MINED]
    assert job in {j.lower() for j in env.delivered}
