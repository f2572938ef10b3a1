"""Helpers of the provider tests: an in-memory chain gateway and a running node.

The in-memory gateway stands in for the market only in the HTTP-layer tests; the integration
tests (``test_provider_market.py``) run the real contracts on Anvil.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import fields, replace
from typing import Any

import httpx
from eth_account import Account

from provider import ChainGateway, ProviderNode
from tender.chain import Job, JobState
from tender.daemon import supervise
from tender.errors import ContractRevert
from tender.intents import ProofMode

MARKET = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
OTHER = "0x000000000000000000000000000000000000dEaD"


def job_record(
    job_id: str,
    *,
    provider: str,
    model_id: str,
    commitment: int,
    proof_mode: int = 0,
    state: JobState = JobState.AWARDED,
    deadline: int | None = None,
) -> Job:
    """A ``tender.chain.Job`` as the market would return it (fields not named here are zero)."""
    now = int(time.time())
    zero: dict[str, Any] = {"int": 0, "bool": False, "bytes": b"\0" * 32, "str": "0x" + "00" * 20}
    values = {f.name: zero.get(str(f.type), 0) for f in fields(Job)}
    values.update(
        job_id=bytes.fromhex(job_id[2:]), requester=OTHER, state=state, proof_mode=ProofMode(proof_mode),
        max_price=10**18, posted_at=now, auction_end=now, deadline=deadline or now + 600, awarded_at=now,
        latency=300, provider=provider, price=5 * 10**17, model_id=bytes.fromhex(model_id[2:]),
        input_commitment=commitment,
    )  # fmt: skip
    return Job(**values)


class LedgerGateway(ChainGateway):
    """An in-memory market: tests put jobs in ``jobs``; ``deliver`` settles zk jobs at once.

    A settlement credits the job's price (``credit``, what ``owed`` reads); ``withdraw`` pays it
    out (``withdrawals``) or, with ``refuse_withdraw`` or nothing owed, reverts ``NothingOwed``.
    """

    def __init__(self, key: str, *, model_ids: Sequence[tuple[str, str, str]] = ()) -> None:
        self.address = Account.from_key(key).address
        self.markets = frozenset({MARKET})
        self.chain_id = 31337
        self.jobs: dict[str, Job] = {}
        self.delivered: dict[str, tuple[list[int], bytes]] = {}
        self.proved: dict[str, bytes] = {}
        self._models = list(model_ids)
        self.credit = 0
        self.withdrawals: list[int] = []
        self.refuse_withdraw = False

    def _settle(self, job_id: str) -> None:
        self.jobs[job_id] = replace(self.jobs[job_id], state=JobState.SETTLED)
        self.credit += self.jobs[job_id].price

    async def job(self, market: str, job_id: str) -> Job:
        found = self.jobs.get(job_id.lower())
        return found or job_record(job_id, provider=OTHER, model_id="0x" + "00" * 32, commitment=0,
                                   state=JobState.NONE)  # fmt: skip

    async def deliver(self, market: str, job_id: str, output: Sequence[int], proof: bytes) -> str:
        job = self.jobs[job_id]
        assert job.state is JobState.AWARDED
        self.delivered[job_id] = (list(output), proof)
        self.jobs[job_id] = replace(job, state=JobState.DELIVERED, dispute_end=int(time.time()) + 3600)
        if job.proof_mode is ProofMode.ZK:
            self._settle(job_id)
        return "0x" + "aa" * 32

    async def prove(self, market: str, job_id: str, proof: bytes) -> str:
        self.proved[job_id] = proof
        self._settle(job_id)
        return "0x" + "bb" * 32

    async def finalize(self, market: str, job_id: str) -> str:
        self._settle(job_id)
        return "0x" + "cc" * 32

    async def owed(self, market: str) -> int:
        return self.credit

    async def withdraw(self, market: str) -> tuple[int, str]:
        if self.refuse_withdraw or not self.credit:
            raise ContractRevert("NothingOwed", {"account": self.address})
        amount, self.credit = self.credit, 0
        self.withdrawals.append(amount)
        return amount, "0x" + "dd" * 32

    async def now(self) -> int:
        return int(time.time())

    async def registered_models(self) -> list[tuple[str, str, str]]:
        return list(self._models)


@contextlib.asynccontextmanager
async def running(node: ProviderNode) -> AsyncIterator[httpx.AsyncClient]:
    """Run ``node`` under the daemon supervisor; yield an HTTP client once ``/health`` answers."""
    task = asyncio.create_task(supervise(node))
    base = f"http://{node.config.listen}"
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        deadline = time.monotonic() + 120
        while True:
            if task.done():
                raise RuntimeError(f"node exited with {task.result()}")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/health")).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError("node did not answer /health")
            await asyncio.sleep(0.05)
        try:
            yield client
        finally:
            node.request_stop()
            code = await asyncio.wait_for(task, 60)
            assert code == 0, f"node exited with {code}"


async def wait_state(
    client: httpx.AsyncClient,
    job_id: str,
    states: set[str],
    *,
    within: float = 120,
    allow_failed: bool = False,
) -> dict[str, Any]:
    """Poll ``GET /jobs/{id}`` until the job is in one of ``states``."""
    deadline = time.monotonic() + within
    while True:
        body: dict[str, Any] = (await client.get(f"/jobs/{job_id}")).json()
        if body.get("state") in states:
            return body
        if (body.get("state") == "failed" and not allow_failed) or time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} is {body}, waited for {states}")
        await asyncio.sleep(0.05)


@contextlib.contextmanager
def serving(node: ProviderNode) -> Iterator[str]:
    """Run ``node`` on its own event loop in a thread (for synchronous clients such as
    schemathesis); yields its base URL once ``/health`` answers, stops it on exit."""
    ready = threading.Event()
    done = threading.Event()
    failure: list[BaseException] = []

    async def main() -> None:
        async with running(node):
            ready.set()
            await asyncio.get_running_loop().run_in_executor(None, done.wait)

    def target() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # handed to the test thread
            failure.append(exc)
        finally:
            ready.set()

    thread = threading.Thread(target=target, name="provider-node", daemon=True)
    thread.start()
    ready.wait()
    try:
        if failure:
            raise failure[0]
        yield f"http://{node.config.listen}"
    finally:
        done.set()
        thread.join(120)
    if failure:
        raise failure[0]
