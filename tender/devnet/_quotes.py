"""The devnet's quote-market requests (the RFQ path, :mod:`tender.client._rfq`).

They run beside the reverse and Dutch workload (which stays as it was: same seed, same
requests) and go through the same solvers and providers: ``Client.request(..., auction="quote")``
returns the provisional output (recorded as ``result_ms``), then the devnet awaits settlement
(``settle_ms``).
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import TYPE_CHECKING, Any

from tender.chain import JobState
from tender.devnet._chain import TOKEN
from tender.devnet._summary import RequestRecord, request_state
from tender.devnet._workload import Planned
from tender.errors import RequestError, TenderError
from tender.logs import log

if TYPE_CHECKING:
    from tender.client import Client

__all__ = ["QUOTE_WINDOW_MS", "plan_quotes", "run_quote"]

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


async def run_quote(client: Client, planned: Planned, record: RequestRecord, data: Any) -> None:
    """Send one quote request and follow it to its end, filling ``record``."""
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
