"""How a request bought through the SDK can fail: one typed error for each way.

Every error derives from :class:`tender.errors.RequestError`, so ``except RequestError``
catches them all, and each carries the job id and what the requester got back::

    RequestError                    (tender.errors) a request did not settle
    ├── RequestRejected             nobody took the intent: the market reverted it, or every
    │                               solver refused it (``reasons`` by solver URL)
    ├── RequestRefunded             never awarded; the escrow came back after the auction window
    ├── RequestExpired              awarded, but the provider missed its deadline; refunded and
    │                               compensated from the provider's locked stake
    ├── ProviderSlashed             the provider cheated (a challenged optimistic output was never
    │                               proved); refunded and compensated from its stake
    ├── ProofInvalid                the job settled but its proof does not verify here, or the
    │                               output does not match the proof's public instances
    └── RequestTimeout              no terminal state seen in time (the job may still finish;
                                    ``last_state`` says where it stood)

Amounts are token base units. ``refund`` is the escrow returned, ``compensation`` what came
from the provider's stake; ``received`` is their sum::

    try:
        result = await client.request("mlp", x, max_price=10**18, deadline=60)
    except RequestExpired as exc:
        print(f"provider late: got {exc.received} back ({exc.compensation} compensation)")
    except RequestError as exc:
        print(f"{exc.job_id}: {exc}")
"""

from __future__ import annotations

from collections.abc import Mapping

from tender.errors import RequestError

__all__ = [
    "ProofInvalid",
    "ProviderSlashed",
    "RequestError",
    "RequestExpired",
    "RequestRefunded",
    "RequestRejected",
    "RequestTimeout",
]


def _short(job_id: str | None) -> str:
    return f"job {job_id[:10]}…" if job_id else "request"


class RequestRejected(RequestError):
    """Nobody took the intent: the market reverted it, or every solver refused it.

    Attributes:
        job_id: the intent's job id (``0x``-hex), when it was computed.
        reasons: why, by where it was sent (solver URL, or ``"market"``).
    """

    def __init__(
        self, message: str, *, job_id: str | None = None, reasons: Mapping[str, str] | None = None
    ) -> None:
        self.job_id = job_id
        self.reasons = dict(reasons or {})
        super().__init__(message)


class _Outcome(RequestError):
    """A request that reached a terminal state other than ``settled`` (money came back)."""

    verb = "ended"

    def __init__(
        self,
        *,
        job_id: str,
        refund: int = 0,
        compensation: int = 0,
        tx_hash: str | None = None,
        detail: str = "",
    ) -> None:
        self.job_id = job_id
        self.refund = refund
        self.compensation = compensation
        self.tx_hash = tx_hash
        text = f"{_short(job_id)} {self.verb}: refunded {refund}"
        if compensation:
            text += f" + compensation {compensation}"
        if detail:
            text += f" ({detail})"
        super().__init__(text)

    @property
    def received(self) -> int:
        """Everything the requester got back: refund plus compensation."""
        return self.refund + self.compensation


class RequestRefunded(_Outcome):
    """The intent was never awarded (no bid, no fill); the escrow came back.

    Attributes:
        job_id: the job id. refund: escrow returned. tx_hash: the ``refund`` transaction.
    """

    verb = "was refunded (never awarded)"


class RequestExpired(_Outcome):
    """The awarded provider missed the deadline; the job was expired.

    Attributes:
        job_id: the job id. refund: escrow returned. compensation: taken from the provider's
        locked stake and paid to the requester. tx_hash: the ``expire`` transaction.
        provider: the provider that was late.
    """

    verb = "expired (provider missed its deadline)"

    def __init__(self, *, provider: str | None = None, **kwargs: object) -> None:
        self.provider = provider
        super().__init__(**kwargs)  # type: ignore[arg-type]


class ProviderSlashed(_Outcome):
    """The provider's optimistic output was challenged and never proved: its stake was slashed.

    Attributes:
        job_id: the job id. refund: escrow returned. compensation: the requester's share of the
        slashed stake. provider: the slashed provider. tx_hash: the slashing transaction.
        output: the (wrong) output the provider had delivered, if seen.
    """

    verb = "failed: provider slashed"

    def __init__(
        self, *, provider: str | None = None, output: list[int] | None = None, **kwargs: object
    ) -> None:
        self.provider = provider
        self.output = output
        super().__init__(**kwargs)  # type: ignore[arg-type]


class ProofInvalid(RequestError):
    """The job settled but its proof does not verify locally, or does not bind its output.

    The on-chain verifier accepted it, so this means the local verification key differs from
    the registered one, or the chain is not the one you think: do not trust the output.

    Attributes:
        job_id: the job id. reason: what failed.
    """

    def __init__(self, reason: str, *, job_id: str) -> None:
        self.job_id = job_id
        self.reason = reason
        super().__init__(f"{_short(job_id)}: proof does not verify locally: {reason}")


class RequestTimeout(RequestError):
    """No terminal state was seen before the client gave up waiting.

    The job may still finish (or be expired by anyone, including :meth:`Client.expire`).

    Attributes:
        job_id: the job id. last_state: the last state seen (``"open"``, ``"awarded"``...).
        waited_s: how long the client waited.
    """

    def __init__(self, *, job_id: str, last_state: str, waited_s: float) -> None:
        self.job_id = job_id
        self.last_state = last_state
        self.waited_s = waited_s
        super().__init__(
            f"{_short(job_id)}: no terminal state after {waited_s:.1f}s (last seen: {last_state})"
        )
