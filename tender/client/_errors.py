"""How a request bought through the SDK can fail: one typed error for each way.

Every error derives from :class:`tender.errors.RequestError`, so ``except RequestError``
catches them all, and each carries the job id and what the requester got back::

    RequestError                    (tender.errors) a request did not settle
    ├── RequestRejected             nobody took the intent: the market reverted it, or every
    │   │                           solver refused it (``reasons`` by solver URL)
    │   └── AgentRejected           a TenderAgent's ``ask`` reverted (``error``: the custom
    │                               error, e.g. ``NoCallbackGas``, ``InsufficientBalance``)
    ├── RequestRefunded             never awarded; the escrow was credited back after the
    │                               auction window
    ├── RequestExpired              awarded, but the provider missed its deadline; escrow and
    │                               compensation from its locked stake credited
    ├── ProviderSlashed             the provider cheated (a challenged optimistic output was never
    │                               proved); escrow and compensation from its stake credited
    ├── ProofInvalid                the job settled but its proof does not verify here, or the
    │                               output does not match the proof's public instances
    ├── CallbackFailed              an agent's job settled (the provider was paid) but the
    │                               consumer callback reverted or ran out of gas: no stored result
    ├── RequestFailed               the request could not be made or followed: the chain did not
    │                               answer, the deployment or model is unknown, a transaction
    │                               failed (``__cause__`` holds the original error)
    └── RequestTimeout              no terminal state seen in time (the job may still finish;
                                    ``last_state`` says where it stood)

Amounts are token base units. ``refund`` is the escrow returned and ``compensation`` what came
from the provider's stake; ``received`` (= ``credited``) is their sum. Neither is sent: the
market credits the refund to the requester (``Market.owed``, in the market at ``market``; it
pays the requester's next escrow there first) and ``Staking`` credits the compensation
(``Staking.claimable``); :meth:`Client.withdraw` collects both::

    try:
        result = await client.request("mlp", x, max_price=10**18, deadline=60)
    except RequestExpired as exc:
        print(f"provider late: got {exc.received} back ({exc.compensation} compensation)")
        await client.withdraw()  # collect the credited refund and compensation
    except RequestError as exc:
        print(f"{exc.job_id}: {exc}")
"""

from __future__ import annotations

from collections.abc import Mapping

from tender.client._result import RequestResult
from tender.errors import RequestError

__all__ = [
    "AgentRejected",
    "CallbackFailed",
    "ProofInvalid",
    "ProviderSlashed",
    "RequestError",
    "RequestExpired",
    "RequestFailed",
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


class AgentRejected(RequestRejected):
    """A TenderAgent refused to post the intent: its ``ask`` reverted.

    Attributes:
        job_id: the intent's job id. agent: the agent contract's address.
        error: the custom error's name: the agent's (``NotRequester``, ``NoCallbackGas``,
            ``NoMarket``, ``InsufficientBalance``), ``OwnableUnauthorizedAccount`` (the sender
            does not own the agent) or the market's, bubbled up (``CallbackGasTooHigh``...).
        args: the error's decoded arguments, by name.
    """

    def __init__(
        self,
        message: str,
        *,
        agent: str,
        error: str,
        args: Mapping[str, object] | None = None,
        job_id: str | None = None,
    ) -> None:
        self.agent = agent
        self.error = error
        self.args_by_name = dict(args or {})
        super().__init__(message, job_id=job_id, reasons={"agent": error})


class _Outcome(RequestError):
    """A request that reached a terminal state other than ``settled`` (money came back).

    ``refund`` (the escrow) is credited to the requester in ``market`` (``Market.owed``) and
    ``compensation`` (from a slashed stake) in ``Staking`` (``claimable``): collect both with
    :meth:`Client.withdraw` (or let the refund pay the next escrow in ``market``).
    """

    verb = "ended"

    def __init__(
        self,
        *,
        job_id: str,
        refund: int = 0,
        compensation: int = 0,
        tx_hash: str | None = None,
        detail: str = "",
        market: str | None = None,
    ) -> None:
        self.job_id = job_id
        self.refund = refund
        self.compensation = compensation
        self.tx_hash = tx_hash
        self.market = market
        text = f"{_short(job_id)} {self.verb}: refund {refund}"
        text += " credited in the market"
        if compensation:
            text += f" + compensation {compensation} credited in Staking"
        text += " (withdraw to collect)"
        if detail:
            text += f" ({detail})"
        super().__init__(text)

    @property
    def received(self) -> int:
        """Everything the requester got back: refund plus compensation."""
        return self.refund + self.compensation

    @property
    def credited(self) -> int:
        """What the requester was credited for this job (refund plus compensation): the refund
        stays in ``market`` until withdrawn or spent on a later escrow, the compensation in
        ``Staking`` until claimed."""
        return self.refund + self.compensation


class RequestRefunded(_Outcome):
    """The intent was never awarded (no bid, no fill); the escrow was credited back.

    Attributes:
        job_id: the job id. refund: escrow credited back (``Market.owed``). market: the market
        holding the credit. tx_hash: the ``refund`` transaction.
    """

    verb = "was refunded (never awarded)"


class RequestExpired(_Outcome):
    """The awarded provider missed the deadline; the job was expired.

    Attributes:
        job_id: the job id. refund: escrow credited back (``Market.owed``). market: the market
        holding the credit. compensation: taken from the provider's locked stake and credited to
        the requester in ``Staking``. tx_hash: the ``expire`` transaction. provider: the provider that was late.
    """

    verb = "expired (provider missed its deadline)"

    def __init__(self, *, provider: str | None = None, **kwargs: object) -> None:
        self.provider = provider
        super().__init__(**kwargs)  # type: ignore[arg-type]


class ProviderSlashed(_Outcome):
    """The provider's optimistic output was challenged and never proved: its stake was slashed.

    Attributes:
        job_id: the job id. refund: escrow credited back (``Market.owed``). market: the market
        holding the credit. compensation: the requester's share of the slashed stake (credited).
        provider: the slashed provider. tx_hash: the slashing transaction.
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


class CallbackFailed(RequestError):
    """An agent's job settled, but the agent holds no result: its callback failed.

    The provider was paid and the output verified (or unchallenged); the market called the
    agent's ``onTenderResult`` with the intent's ``callbackGasLimit`` gas and it reverted or ran
    out of gas (the market logged ``CallbackFailed``), or was never called (no callback gas).
    The output is still on ``result``; give the next intent more ``callback_gas``.

    Attributes:
        job_id: the job id. agent: the agent's address. reason: the callback's revert data
        (at most 128 bytes; empty for out-of-gas or no call). result: the settled request.
    """

    def __init__(
        self, *, job_id: str, agent: str, reason: bytes, result: RequestResult | None = None
    ) -> None:
        self.job_id = job_id
        self.agent = agent
        self.reason = reason
        self.result = result
        why = f"reverted with 0x{reason.hex()}" if reason else "reverted or ran out of gas"
        super().__init__(f"{_short(job_id)} settled but the agent's callback {why}: no stored result")


class RequestFailed(RequestError):
    """The request could not be made, or its job could not be followed: the chain did not
    answer, the deployment or the model is unknown, a transaction (an approval) failed.

    Nothing was escrowed when it happened before the intent was sent (``job_id`` is then
    ``None``); otherwise the job may still end on chain.

    Attributes:
        job_id: the job id once the intent was built, else ``None``. The original error is
        ``__cause__``.
    """

    def __init__(self, message: str, *, job_id: str | None = None) -> None:
        self.job_id = job_id
        super().__init__(f"{_short(job_id)}: {message}" if job_id else message)


class RequestTimeout(RequestError):
    """No terminal state was seen before the client gave up waiting.

    The job may still finish (or be expired by anyone, including :meth:`Client.expire`).

    Deadlines and auction windows close on chain time, which moves only when a block is mined:
    when the chain's clock moved less than half as much as the wall clock while the client
    followed the job, the message says so (a hand-started Anvil without ``--block-time`` mines
    only on transactions, so an open job never ends there).

    Attributes:
        job_id: the job id. last_state: the last :class:`~tender.chain.JobState` seen, lower-case
            (``"none"``: not on the market yet, ``"open"``, ``"awarded"``...).
        waited_s: how long the client waited.
        chain_moved_s: how far chain time moved while the client followed the job (``None``:
            not known).
        stalled: chain time moved less than half the wall time it was followed for.
    """

    def __init__(
        self,
        *,
        job_id: str,
        last_state: str,
        waited_s: float,
        chain_moved_s: int | None = None,
        followed_s: float | None = None,
    ) -> None:
        self.job_id = job_id
        self.last_state = last_state
        self.waited_s = waited_s
        self.chain_moved_s = chain_moved_s
        followed = waited_s if followed_s is None else followed_s
        self.stalled = chain_moved_s is not None and followed >= 2 and chain_moved_s < followed / 2
        message = f"{_short(job_id)}: no terminal state after {waited_s:.1f}s (last seen: {last_state})"
        if self.stalled:
            message += (
                f"; chain time moved only {chain_moved_s}s in {followed:.0f}s: the chain mines no blocks "
                "on its own, so deadlines never pass (start Anvil with `anvil --block-time 1`, or use "
                "`tender devnet --keep-running`)"
            )
        super().__init__(message)
