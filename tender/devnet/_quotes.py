"""The devnet's quote-market requests (the RFQ path, :mod:`tender.client._rfq`).

They run beside the reverse and Dutch workload (which stays as it was: same seed, same
requests) and go through the same solvers and providers: ``Client.request(..., auction="quote")``
returns the provisional output (recorded as ``result_ms``), then the devnet awaits settlement
(``settle_ms``).

A real requester is a process of its own, not the one that drives 40 other requests, follows
their jobs and draws the live view. So the quote requests are sent by a requester process
(``python -m tender.devnet._quotes SPEC``, :class:`QuoteRequester` starts it): it builds its
clients from the spec (a JSON file), warms them and approves the quote market, says ``ready``,
waits for ``go`` on stdin (the workload's start: every request keeps its planned offset), then
writes each request's record as one JSON line when its output arrives and when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tender.chain import JobState
from tender.devnet._chain import TOKEN
from tender.devnet._summary import RequestRecord, request_state
from tender.devnet._workload import Planned, sample_input
from tender.errors import RequestError, TenderError
from tender.logs import log

if TYPE_CHECKING:
    from tender.chain import Deployment
    from tender.client import Client

__all__ = ["QUOTE_WINDOW_MS", "QuoteRequester", "plan_quotes", "requester_client", "run_quote"]

logger = logging.getLogger("tender.devnet")

#: the quote round's window on the devnet (the SDK's default)
QUOTE_WINDOW_MS = 100
#: a hang guard on settlement (a proof queue on a loaded machine), not a measurement
SETTLE_GUARD_S = 600


def plan_quotes(count: int, *, first_index: int, seed: int = 0, rate_per_s: float = 2.0) -> list[Planned]:
    """``count`` zk requests on the quote market, signed, for both sample models."""
    rng = random.Random(seed + 18)
    plan = []
    t = 0.0
    for i in range(count):
        model = "mlp" if rng.random() < 0.6 else "cnn"
        max_price = rng.randint(10, 20) * TOKEN // 100
        plan.append(Planned(first_index + i, model, "quote", "zk", "signed", max_price, t, "quote"))
        t += rng.expovariate(rate_per_s)
    return plan


async def run_quote(
    client: Client,
    planned: Planned,
    record: RequestRecord,
    data: Any,
    on_result: Callable[[RequestRecord], None] | None = None,
) -> None:
    """Send one quote request and follow it to its end, filling ``record`` (``on_result`` is
    called with it once the provisional output is in)."""
    from tender.client._rfq import ProvisionalResult

    record.state = request_state(JobState.NONE)
    try:
        result = await client.request(
            planned.model,
            data,
            planned.max_price,
            planned.deadline_s,
            auction="quote",
            window_ms=QUOTE_WINDOW_MS,
        )
        assert isinstance(result, ProvisionalResult)
        record.job_id, record.provider, record.bids = result.job_id, result.provider, result.quotes
        record.result_ms = round(result.time_to_result_s * 1000, 2)
        record.note = "quote " + " ".join(f"{k}={v:g}" for k, v in result.phases.items())
        record.state = request_state(JobState.AWARDED)
        if on_result is not None:
            on_result(record)
        settled = await asyncio.wait_for(result.settled(), SETTLE_GUARD_S)
    except (RequestError, TenderError, TimeoutError) as exc:
        record.state, record.error = "failed", f"{type(exc).__name__}: {exc}"
        log(logger, "devnet.quote_failed", level=logging.ERROR, index=planned.index, error=repr(exc))
        return
    record.settle_ms = round((settled.settled_at - result.signed_at) * 1000, 2)
    record.tx_hashes = dict(settled.tx_hashes)
    record.compensation = settled.taken
    if settled.state in ("settled", "slashed"):
        record.state = request_state(JobState.SETTLED)
        record.price_paid = result.price
        record.verified_onchain = True  # the quote market settles only on a proof it verified
        record.slashed = settled.state == "slashed"
    elif settled.state == "expired":
        record.state = request_state(JobState.EXPIRED)
        record.slashed = settled.taken > 0
    else:
        record.state, record.error = "failed", f"the job ended {settled.state}"


# -- the requester process ----------------------------------------------------------------

#: how long the requester process may take to build, warm and approve (a loaded machine)
READY_GUARD_S = 120


class QuoteRequester:
    """The devnet side of the requester process: start it, let it go, fold its records in.

    Args:
        spec: what the process needs (:func:`requester_main` reads it): ``rpc_url``, ``keys``,
            ``solvers``, ``deployment`` (its JSON), ``bundles``, ``model_ids``, ``concurrency``
            and ``plan`` (:class:`Planned` as dicts).
        records: the devnet's records, updated in place by index from the process's lines.
        spec_path: where the spec is written. log_path: the process's stderr.
    """

    def __init__(
        self, spec: dict[str, Any], records: Sequence[RequestRecord], *, spec_path: Path, log_path: Path
    ) -> None:
        self.spec, self.records = spec, records
        self.spec_path, self.log_path = spec_path, log_path
        self._process: asyncio.subprocess.Process | None = None

    @property
    def concurrency(self) -> int:
        """Requests the process has in flight at most (settlement included)."""
        return int(self.spec["concurrency"])

    async def start(self) -> None:
        """Start the process and wait until its clients are warm."""
        self.spec_path.write_text(json.dumps(self.spec))
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as err:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tender.devnet._quotes",
                str(self.spec_path),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
            )
        line = await asyncio.wait_for(self._line(), READY_GUARD_S)
        if line != {"ready": True}:
            raise TenderError(f"the quote requester did not start (see {self.log_path}): {line!r}")

    async def run(self) -> None:
        """Say ``go`` and fold every line into the records until the process ends; a record the
        process left unfinished is marked failed (a failed record fails the run)."""
        process = self._process
        assert process is not None
        assert process.stdin is not None
        process.stdin.write(b"go\n")
        await process.stdin.drain()
        while (line := await self._line()) is not None:
            fields = line["record"]
            record = self.records[fields.pop("index")]
            for name, value in fields.items():
                setattr(record, name, value)
        code = await process.wait()
        for planned in self.spec["plan"]:
            record = self.records[planned["index"]]
            if not record.terminal:
                record.state = "failed"
                record.error = f"the quote requester exited with {code} (see {self.log_path})"

    async def stop(self) -> None:
        """Stop the process if it is still running."""
        if self._process is not None and self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
            await self._process.wait()

    async def _line(self) -> Any:
        assert self._process is not None
        assert self._process.stdout is not None
        raw = await self._process.stdout.readline()
        return json.loads(raw) if raw else None


def requester_client(
    rpc_url: str,
    key: str,
    *,
    deployment: Deployment,
    bundles: Mapping[str, Path],
    model_ids: Mapping[str, str],
    solvers: Sequence[str] = (),
) -> Client:
    """A devnet requester's SDK client (the devnet's requesters and this process's alike): its
    jobs followed every 0.15 s."""
    from tender.client import Client

    return Client(
        rpc_url,
        key,
        solvers=list(solvers),
        deployment=deployment,
        bundles=dict(bundles),
        model_ids=dict(model_ids),
        poll_interval=0.15,
    )


def _emit(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def _emit_record(record: RequestRecord) -> None:
    _emit({"record": dataclasses.asdict(record)})


async def requester_main(spec: dict[str, Any]) -> int:
    """The requester process: the spec's quote requests, each on its planned offset from ``go``."""
    from tender.chain import Deployment
    from tender.client._rfq import fund_quote_market

    deployment = Deployment.from_json(spec["deployment"])
    bundles = {name: Path(path) for name, path in spec["bundles"].items()}
    clients = [
        requester_client(
            spec["rpc_url"],
            key,
            solvers=spec["solvers"],
            deployment=deployment,
            bundles=bundles,
            model_ids=spec["model_ids"],
        )
        for key in spec["keys"]
    ]
    plan = [Planned(**p) for p in spec["plan"]]
    records = {p.index: RequestRecord.of(p) for p in plan}
    try:
        await asyncio.gather(*(client.warm() for client in clients))
        # approve the quote market here, before the workload's own transactions from these keys
        escrow = sum(p.max_price for p in plan) * 2
        await asyncio.gather(*(fund_quote_market(client, escrow) for client in clients))
        _emit({"ready": True})
        if (await asyncio.to_thread(sys.stdin.readline)).strip() != "go":
            return 1
        started = time.monotonic()
        limit = asyncio.Semaphore(int(spec["concurrency"]))

        async def one(p: Planned) -> None:
            await asyncio.sleep(max(0.0, p.delay_s - (time.monotonic() - started)))
            async with limit:
                record = records[p.index]
                await run_quote(
                    clients[p.index % len(clients)], p, record, sample_input(p.model, p.index), _emit_record
                )
                _emit_record(record)

        await asyncio.gather(*(one(p) for p in plan))
    finally:
        for client in clients:
            await client.aclose()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tender.devnet._quotes SPEC``."""
    from tender.logs import setup_logging

    args = sys.argv[1:] if argv is None else list(argv)
    setup_logging(json_lines=True)  # stderr: stdout carries the records
    spec = json.loads(Path(args[0]).read_text())
    return asyncio.run(requester_main(spec))


if __name__ == "__main__":
    sys.exit(main())
