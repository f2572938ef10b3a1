"""Helpers of the provider tests: an in-memory chain and a running node.

The in-memory chain stands in for the market only in the HTTP-layer tests; the integration
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
from hexbytes import HexBytes

from provider import ProviderNode
from tender.chain import DisputeTerms, Job, JobState
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
        job_id=bytes.fromhex(job_id[2:]),
        requester=OTHER,
        state=state,
        proof_mode=ProofMode(proof_mode),
        max_price=10**18,
        posted_at=now,
        auction_end=now,
        deadline=deadline or now + 600,
        awarded_at=now,
        latency=300,
        provider=provider,
        price=5 * 10**17,
        model_id=bytes.fromhex(model_id[2:]),
        input_commitment=commitment,
    )
    return Job(**values)


class LedgerMarket:
    """An in-memory stand-in for :class:`tender.chain.AsyncMarket` (what the node calls of it):
    tests put jobs in ``jobs``; ``deliver`` settles zk jobs at once.

    A settlement credits the job's price (``credit``, what ``owed`` reads); ``withdraw`` pays it
    out (``withdrawals``) or, with ``refuse_withdraw`` or nothing owed, reverts ``NothingOwed``.
    ``decline`` reverts ``DeclineWindowClosed``.
    """

    def __init__(self, provider: str) -> None:
        self.address = MARKET
        self.provider = provider
        self.jobs: dict[str, Job] = {}
        #: the contract's providerDeadline per job (default: the intent's deadline)
        self.deadlines: dict[str, int] = {}
        self.delivered: dict[str, tuple[list[int], bytes]] = {}
        self.proved: dict[str, bytes] = {}
        self.credit = 0
        self.withdrawals: list[int] = []
        self.refuse_withdraw = False

    @staticmethod
    def _key(job_id: bytes) -> str:
        return "0x" + job_id.hex()

    @staticmethod
    def _receipt(byte: str, **fields: Any) -> dict[str, Any]:
        return {"transactionHash": HexBytes("0x" + byte * 32), **fields}

    def _settle(self, key: str) -> None:
        self.jobs[key] = replace(self.jobs[key], state=JobState.SETTLED)
        self.credit += self.jobs[key].price

    async def job(self, job_id: bytes) -> Job:
        found = self.jobs.get(self._key(job_id))
        return found or job_record(
            self._key(job_id), provider=OTHER, model_id="0x" + "00" * 32, commitment=0, state=JobState.NONE
        )

    async def provider_deadline(self, job_id: bytes) -> int:
        key = self._key(job_id)
        return self.deadlines.get(key, self.jobs[key].deadline if key in self.jobs else 0)

    async def deliver(self, job_id: bytes, output: Sequence[int], proof: bytes = b"") -> dict[str, Any]:
        key = self._key(job_id)
        job = self.jobs[key]
        assert job.state is JobState.AWARDED
        self.delivered[key] = (list(output), proof)
        self.jobs[key] = replace(job, state=JobState.DELIVERED, dispute_end=int(time.time()) + 3600)
        if job.proof_mode is ProofMode.ZK:
            self._settle(key)
        return self._receipt("aa")

    async def prove(self, job_id: bytes, proof: bytes) -> dict[str, Any]:
        self.proved[self._key(job_id)] = proof
        self._settle(self._key(job_id))
        return self._receipt("bb")

    async def finalize(self, job_id: bytes) -> dict[str, Any]:
        self._settle(self._key(job_id))
        return self._receipt("cc")

    async def decline(self, job_id: bytes) -> dict[str, Any]:
        raise ContractRevert("DeclineWindowClosed", {"jobId": job_id})

    async def dispute_terms(self, job_id: bytes) -> DisputeTerms:
        return DisputeTerms(0, 0, 0, 0, 0, False)

    async def owed(self, account: str) -> int:
        return self.credit

    async def withdraw(self) -> dict[str, Any]:
        if self.refuse_withdraw or not self.credit:
            raise ContractRevert("NothingOwed", {"account": self.provider})
        amount, self.credit = self.credit, 0
        self.withdrawals.append(amount)
        return self._receipt("dd", amount=amount)

    async def withdrawn_in(self, receipt: dict[str, Any]) -> int:
        return int(receipt["amount"])


class LedgerChain:
    """An in-memory stand-in for :class:`provider.ProviderChain`: one :class:`LedgerMarket` at
    ``MARKET``, the local clock, and the registered models given."""

    def __init__(self, key: str, *, model_ids: Sequence[tuple[str, str, str]] = ()) -> None:
        self.address = Account.from_key(key).address
        self.chain_id = 31337
        self.ledger = LedgerMarket(self.address)
        self.markets = {MARKET: self.ledger}
        self._models = list(model_ids)
        #: reads of the head's timestamp (``now``), and seconds the chain runs ahead of this clock
        self.head_reads = 0
        self.ahead_s = 0
        #: the transactions ``sender.stuck`` reports (none unless a test says so)
        self.stuck_now: list[Any] = []

    def market(self, address: str) -> LedgerMarket:
        return self.markets[address]

    #: ``ProviderChain.send``'s function names -> the ledger's methods
    _SENDS = {"deliver": "deliver", "prove": "prove", "finalize": "finalize", "drawAudit": "draw_audit"}

    async def send(self, market: LedgerMarket, function: str, *args: Any, until: float) -> dict[str, Any]:
        """``ProviderChain.send``: the ledger's method of that name (``until`` unused: no RPC)."""
        result: dict[str, Any] = await getattr(market, self._SENDS[function])(*args)
        return result

    async def follow(self, cursor: Any, *, names: Sequence[str]) -> LedgerChain:
        """``ProviderChain.follow``: a feed with no events (the ledger has no blocks)."""
        return self

    async def step(self, handler: Any, on_rollback: Any = None) -> int:
        return 0

    @property
    def sender(self) -> LedgerChain:
        """The transaction sender, whose :meth:`stuck` ``/health`` reads (never any here)."""
        return self

    def stuck(self, older_than: float) -> list[Any]:
        """``TxSender.stuck``: what a test put in :attr:`stuck_now`."""
        return list(self.stuck_now)

    async def now(self) -> int:
        self.head_reads += 1
        return int(time.time()) + self.ahead_s

    async def registered_models(self) -> list[tuple[str, str, str]]:
        return list(self._models)

    async def explain(self, exc: Exception) -> None:
        pass

    async def close(self) -> None:
        pass


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
