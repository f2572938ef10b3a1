"""The solver through an RPC outage, on Anvil with the real markets: its JSON-RPC goes through an
:class:`~tests._proxy.OutageProxy` that refuses and resets connections while the job's auction
runs out. ``/health`` says 503 (chain unreachable) while it lasts and 200 after; the bid is kept,
the award is sent once the chain answers, and the job is handed over and settles."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

from solver._solver import Solver
from solver._store import Pursuit, Store, TxState
from tender.anvil import free_port
from tender.chain import JobState
from tender.intents import AuctionType
from tests._proxy import OutageProxy

from .conftest import SOLVER_KEYS, Env, Running, wait_until


def _health(port: int) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except urllib.error.URLError:
        return 0, {}  # not listening yet


def test_outage_while_the_auction_runs_out_keeps_the_bid_and_awards_after(env: Env, tmp_path: Path) -> None:
    db = tmp_path / "outage.sqlite"
    port = free_port()
    with OutageProxy(env.chain.rpc_url) as proxy:
        chain = env.chain_section().model_copy(update={"rpc_url": proxy.url})
        section = env.solver_section(db, listen=f"127.0.0.1:{port}")
        solver = Solver(section, chain, key=SOLVER_KEYS[0], deployment=env.deployment)
        store = Store(db)
        with Running([solver]):
            wait_until(lambda: _health(port)[0] == 200, timeout=60)
            job = env.post(env.intent(AuctionType.REVERSE, window=20))
            wait_until(lambda: any(t.state == TxState.MINED for t in store.job_txs(job, "bid")), timeout=60)
            auction_end = env.job(AuctionType.REVERSE, job).auction_end
            proxy.go_down()
            wait_until(lambda: _health(port)[0] == 503, timeout=60)
            status, body = _health(port)
            assert status == 503
            assert body["ok"] is False
            assert any("chain unreachable" in str(r) for r in body["reasons"])  # type: ignore[attr-defined]
            # the auction ends while the solver cannot reach the chain (blocks keep coming)
            wait_until(lambda: env.now() > auction_end + 2, timeout=120)
            assert env.job(AuctionType.REVERSE, job).state is JobState.OPEN  # nobody awarded it yet
            proxy.come_back()
            wait_until(lambda: _health(port)[0] == 200, timeout=60)
            wait_until(lambda: env.job(AuctionType.REVERSE, job).state is JobState.SETTLED, timeout=120)
            wait_until(lambda: (r := store.job(job)) is not None and r.pursuit == Pursuit.SETTLED, timeout=60)
            assert _health(port)[1]["ok"] is True
    assert proxy.outages == 1
    assert len(store.job_txs(job, "bid")) == 1  # the bid was kept, never sent twice
    assert [t.state for t in store.job_txs(job, "award")] == [TxState.MINED]
    assert job.lower() in {j.lower() for j in env.delivered}
