"""The requester's side of the quote path (``Client.request(..., auction="quote")``).

One round: the signed intent goes to every solver's ``POST /rfq``; each answers within the
window (default 100 ms) with provider-signed EIP-712 quotes. The client checks them, takes the
best by the intent's own price/latency weight, and at once (concurrently):

sends the winner ``POST /rfq/run`` with its acceptance (its signature of the quote's digest).

The provider answers with the output as its proof will carry it and a signed result commitment.
The client checks that the hash is the output's, that the commitment is the quoted provider's,
and that its free stake covers the job, and returns a :class:`ProvisionalResult` at once. The
stake comes from the process's :class:`~tender.client._stakes.StakeView` (read when the
provider first quoted, kept up to ``Client.stake_max_age`` seconds, less this process's awards
in flight): no RPC call and no block stands between the provider's answer and the result. Only
then does the client send ``openAwarded`` itself (the requester submits: first price, no
relayer needed). Its :meth:`~ProvisionalResult.settled` awaits the chain: the
award, then the proof verified on chain (``Settled``); if the provider proved another output the
client slashes it with the commitment (``slashCommitment``), and past the due time it expires the
job itself (the lock goes to the requester).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import ValidationError

from tender.chain import Delivered, JobState, QuoteAwarded, QuoteMarket, Staking, Token
from tender.client._awards import AwardBatcher
from tender.client._stakes import StakeView, stake_view
from tender.errors import ContractRevert, IntentError, TenderError, TransactionFailed
from tender.intents import AuctionType, Intent, sign_digest
from tender.logs import log
from tender.quotes import (
    Quote,
    QuotedJob,
    output_hash,
    quote_digest,
    recover_commitment_signer,
    recover_quote_signer,
)
from tender.rfq import CommittedOutput, FirmQuotes, RunQuoted, rank

if TYPE_CHECKING:
    from tender.client._client import Client

__all__ = ["DEFAULT_WINDOW_MS", "ProvisionalResult", "QuoteSettlement", "request_quote"]

logger = logging.getLogger("tender.client.rfq")

DEFAULT_WINDOW_MS = 100
#: how many quotes, best first, the client tries before giving up on a round
MAX_TAKES = 3
#: the most a second round waits when the first returned no quote
RETRY_WINDOW_MS = 2_000
#: how many quoting providers' stakes a round has read while it still runs (the rest on taking)
STAKE_PREFETCH = 8
#: seconds between reads of a settling job's state when the event feed names it meanwhile not
SETTLE_RECHECK_S = 2.0
_MAX_UINT = 2**256 - 1
#: the quote market's stake multiple, by market (read once: a live job's terms never change)
_STAKE_MULTIPLE: dict[str, int] = {}


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def _consume(future: asyncio.Future[Any]) -> None:
    """Retrieve an unused check's error (the stake of a provider that then failed to answer)."""
    if not future.cancelled():
        future.exception()


@dataclass(frozen=True, slots=True)
class QuoteSettlement:
    """How a quoted job ended on chain.

    Attributes:
        job_id: the job.
        state: ``"settled"`` (proof verified on chain), ``"expired"`` (nothing delivered by the
            due time: the provider's lock went to the requester) or ``"slashed"`` (settled with
            another output than committed; the commitment took the provider's stake).
        matches: the proved output is the one committed to (the provisional output stands).
        delivered_hash: ``keccak256(abi.encode(output))`` of the proved output (``b""`` if none).
        taken: stake taken from the provider (expiry or commitment slash).
        tx_hashes: transaction hash by step (``award``, ``deliver``, ``expire``, ``slash``).
        settled_at: ``time.monotonic()`` when the client saw the end.
    """

    job_id: str
    state: str
    matches: bool
    delivered_hash: bytes
    taken: int = 0
    tx_hashes: dict[str, str] = field(default_factory=dict)
    settled_at: float = 0.0


@dataclass(slots=True)
class ProvisionalResult:
    """A quoted job's output, usable at once, backed by the provider's signed commitment and
    stake until the chain settles it (:meth:`settled`).

    Attributes:
        job_id: the job id (``0x``-hex).
        provider: the provider that committed to the output.
        price: the quoted (and paid) price.
        latency: the quoted seconds to delivery.
        output: the output as numbers (dequantized from ``output_felts``).
        output_felts: the output as field elements: what the proof will carry.
        output_hash: ``keccak256(abi.encode(output_felts))``, committed to.
        commitment: the provider's EIP-712 result commitment signature.
        stake: the provider's free stake that backs the job, as checked (see
            :class:`~tender.client._stakes.StakeView`).
        quotes: how many firm quotes the round returned.
        signed_at: ``time.monotonic()`` when the intent was signed.
        result_at: ``time.monotonic()`` when the commitment was verified.
        provisional: ``True``: the proof is not on chain yet.
        phases: milliseconds of the quote round (``round_ms``: signed intent to ranked quotes;
            of it ``solver_ms``, the slowest solver's answer as the client waited for it, and
            ``check_ms``, checking the quotes' signatures) and of taking the best quote
            (``run_ms``), of which the provider's HTTP answer (``provider_ms``) and the wait for
            the stake check after it (``stake_wait_ms``: 0 when the stake was known).
    """

    job_id: str
    provider: str
    price: int
    latency: int
    output: list[float]
    output_felts: list[int]
    output_hash: bytes
    commitment: bytes
    stake: int
    quotes: int
    signed_at: float
    result_at: float
    settlement: asyncio.Task[QuoteSettlement]
    provisional: bool = True
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def time_to_result_s(self) -> float:
        return self.result_at - self.signed_at

    async def settled(self) -> QuoteSettlement:
        """Wait for the chain: the proof verified (``Settled``), or the job expired or slashed."""
        return await asyncio.shield(self.settlement)


class _Round:
    """One quote request of one client."""

    def __init__(self, client: Client, intent: Intent, *, window_ms: int, timeout: float | None) -> None:
        self.client = client
        self.intent = intent
        self.window_ms = window_ms
        self.timeout = timeout
        d = client.deployment
        self.chain_id = d.chain_id
        self.market_address = d.market(AuctionType.QUOTE)
        self.market, self.staking = _contracts(client, self.market_address)
        self.job_hex = client.job_id(intent)
        self.job = bytes.fromhex(self.job_hex[2:])
        staking = self.staking
        #: the quoting providers' stakes: kept from earlier rounds, or read when they quote (so
        #: the read is done, or nearly, when the provider's output is: off the time to result)
        self.stakes: StakeView = stake_view(
            client.rpc, staking.address, staking.available_of, max_age=client.stake_max_age
        )
        self.warmed: set[str] = set()
        #: the slowest solver's answer, as this client waited for it (its HTTP hop and its round),
        #: and the time spent checking the quotes' signatures, over the rounds (``phases``)
        self.solver_ms = 0.0
        self.check_ms = 0.0

    async def quotes(self, http: httpx.AsyncClient, body: str) -> list[tuple[Quote, bytes, str]]:
        """Every valid firm quote from every solver's round."""
        # the solver waits up to EMPTY_WAIT_MS (1 s) past the window for a first quote
        limit = self.window_ms / 1000 + 2.0

        async def ask(url: str) -> list[tuple[Quote, bytes, str]]:
            sent = time.monotonic()
            try:
                reply = await http.post(
                    f"{url}/rfq",
                    params={"window_ms": self.window_ms},
                    content=body,
                    headers={"Content-Type": "application/json"},
                    timeout=limit,
                )
                answer = FirmQuotes.model_validate_json(reply.content) if reply.status_code == 200 else None
            except (httpx.HTTPError, ValidationError) as exc:
                log(logger, "rfq.solver_failed", level=logging.WARNING, solver=url, error=repr(exc))
                return []
            if answer is None:
                log(
                    logger,
                    "rfq.solver_refused",
                    level=logging.WARNING,
                    solver=url,
                    status=reply.status_code,
                    body=reply.text[:300],
                )
                return []
            answered = time.monotonic()
            self.solver_ms = max(self.solver_ms, 1000 * (answered - sent))
            out = []
            for firm in answer.quotes:
                try:
                    quote = firm.parsed()
                    signature = bytes.fromhex(firm.signature[2:])
                    signer = recover_quote_signer(
                        quote, signature, chain_id=self.chain_id, market=self.market_address
                    )
                except (IntentError, ValueError):
                    continue
                if signer == quote.provider and self._acceptable(quote):
                    out.append((quote, signature, firm.url))
                    if len(self.warmed) < STAKE_PREFETCH and quote.provider not in self.warmed:
                        self.warmed.add(quote.provider)
                        self.stakes.warm(quote.provider)
            self.check_ms += 1000 * (time.monotonic() - answered)
            return out

        rounds = await asyncio.gather(*(ask(url) for url in self.client.solvers))
        return [q for r in rounds for q in r]

    def _acceptable(self, quote: Quote) -> bool:
        i = self.intent
        now = int(time.time())
        return (
            quote.job_id == self.job
            and quote.price <= i.max_price
            and quote.expiry > now + 2
            and now + quote.latency <= i.deadline
        )

    async def stake_multiple(self) -> int:
        known = _STAKE_MULTIPLE.get(self.market_address)
        if known is None:
            known = (await asyncio.to_thread(self.market.params)).stake_multiple
            _STAKE_MULTIPLE[self.market_address] = known
        return known

    async def settle(self, award: asyncio.Task[Any], committed: CommittedOutput) -> QuoteSettlement:
        """Follow the job to its end on chain (see the module)."""
        txs: dict[str, str] = {}
        try:
            receipt = await award
        except BaseException:
            self.stakes.award_done(committed.provider, self.job_hex, mined=False)
            raise
        self.stakes.award_done(committed.provider, self.job_hex, mined=True)
        txs["award"] = _hex(bytes(receipt["transactionHash"]))
        # this job's (an award batch logs one per awarded job; a skipped job none)
        awarded = [
            e for e in self.market.events_in(receipt) if isinstance(e, QuoteAwarded) and e.job_id == self.job
        ]
        if not awarded:
            raise TenderError(f"{self.job_hex}: the award transaction logged no QuoteAwarded for it")
        terms: QuotedJob = awarded[0].terms
        start = int(receipt["blockNumber"])
        committed_hash = bytes.fromhex(committed.outputHash[2:])
        # The job's state is read when the client's one event feed names the job (one
        # eth_getLogs a poll for all its jobs), or every SETTLE_RECHECK_S in any case.
        hub = self.client._events()
        changed = hub.watch(self.job_hex)
        try:
            return await self._follow(terms, start, committed, committed_hash, changed, txs)
        finally:
            hub.forget(self.job_hex)

    async def _follow(
        self,
        terms: QuotedJob,
        start: int,
        committed: CommittedOutput,
        committed_hash: bytes,
        changed: asyncio.Event,
        txs: dict[str, str],
    ) -> QuoteSettlement:
        while True:
            changed.clear()
            state = await asyncio.to_thread(self.market.job_state, self.job)
            if state is JobState.SETTLED:
                break
            if state.final:
                return QuoteSettlement(
                    self.job_hex, state.name.lower(), False, b"", tx_hashes=txs, settled_at=time.monotonic()
                )
            if self.client.self_help and int(time.time()) > terms.due + 2:
                try:
                    r = await asyncio.to_thread(self.market.expire_quoted, self.job, terms)
                    txs["expire"] = _hex(bytes(r["transactionHash"]))
                    return QuoteSettlement(
                        self.job_hex, "expired", False, b"", terms.stake_locked, txs, time.monotonic()
                    )
                except (ContractRevert, TransactionFailed) as exc:
                    log(
                        logger, "rfq.expire_refused", level=logging.INFO, job_id=self.job_hex, error=repr(exc)
                    )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), SETTLE_RECHECK_S)
        delivered = await asyncio.to_thread(
            lambda: next(
                (
                    e
                    for e in self.market.events(start, names=["Delivered"], job_id=self.job)
                    if isinstance(e, Delivered)
                ),
                None,
            )
        )
        delivered_hash = delivered.output_hash if delivered is not None else b""
        if delivered_hash == committed_hash:
            return QuoteSettlement(
                self.job_hex, "settled", True, delivered_hash, tx_hashes=txs, settled_at=time.monotonic()
            )
        r = await asyncio.to_thread(
            self.market.slash_commitment,
            self.job,
            terms,
            delivered_hash,
            committed_hash,
            bytes.fromhex(committed.commitment[2:]),
        )
        txs["slash"] = _hex(bytes(r["transactionHash"]))
        log(logger, "rfq.slashed", level=logging.WARNING, job_id=self.job_hex, provider=terms.provider)
        return QuoteSettlement(
            self.job_hex, "slashed", False, delivered_hash, terms.stake_locked, txs, time.monotonic()
        )


async def warm_quotes(client: Client) -> None:
    """Build the client's quote market and staking wrappers and read the market's stake
    multiple (once a process), so a first quote request pays for neither (``Client.warm``)."""
    market = client.deployment.markets.get("quote")
    if market is None or not client._key:  # the quote path sends from the client's key
        return
    quote_market, _ = _contracts(client, market)
    if market not in _STAKE_MULTIPLE:
        _STAKE_MULTIPLE[market] = (await asyncio.to_thread(quote_market.params)).stake_multiple


#: each client's quote market and staking wrappers (built once: an ABI'd contract costs ms)
_CONTRACTS: weakref.WeakKeyDictionary[Client, tuple[QuoteMarket, Staking]] = weakref.WeakKeyDictionary()


def _contracts(client: Client, market: str) -> tuple[QuoteMarket, Staking]:
    found = _CONTRACTS.get(client)
    if found is None or found[0].address != market:
        found = (
            QuoteMarket(client.w3, market, sender=client.sender),
            Staking(client.w3, client.deployment.staking),
        )
        _CONTRACTS[client] = found
    return found


#: each client's award batcher (``Client.award_batch``), by quote market
_BATCHERS: weakref.WeakKeyDictionary[Client, AwardBatcher] = weakref.WeakKeyDictionary()


def _batcher(client: Client, market: QuoteMarket) -> AwardBatcher:
    found = _BATCHERS.get(client)
    if found is None or found.market is not market:
        found = AwardBatcher(market, max_batch=client.award_batch, max_wait_s=client.award_wait)
        _BATCHERS[client] = found
    return found


async def fund_quote_market(client: Client, amount: int) -> None:
    """Let the quote market take escrows from the client's account (approved once, to the maximum)."""
    spender = client.deployment.market(AuctionType.QUOTE)
    if spender in client._approved:
        return
    async with client._allowance_lock:
        if spender in client._approved:
            return
        token = Token(client.w3, client.deployment.token, sender=client.sender)
        await asyncio.to_thread(token.ensure_allowance, spender, amount, approve=_MAX_UINT)
        client._approved.add(spender)


async def request_quote(
    client: Client,
    model: str | bytes,
    data: Any,
    max_price: int,
    deadline: float,
    *,
    window_ms: int = DEFAULT_WINDOW_MS,
    timeout: float | None = None,  # noqa: ASYNC109 - on the round trip to the provider, documented
    **intent_options: Any,
) -> ProvisionalResult:
    """Buy one inference on the quote market and return its provisional result (see the module).

    Raises:
        RequestRejected: no solver returned a usable quote, or the provider refused the job or
            answered with an output its commitment does not bind.
    """
    from tender.client._errors import RequestRejected

    if not client._key:
        raise RequestRejected("the quote path sends openAwarded from this client: it needs a key")
    intent_options.pop("auction_window", None)
    intent, _ = await client.build_intent(
        model, data, max_price=max_price, deadline=deadline, proof="zk", auction_window=1, **intent_options
    )
    intent = intent.replace(auction_type=AuctionType.QUOTE, start_price=0)
    await fund_quote_market(client, 2 * max_price)
    job = client.job_id(intent)
    rnd = _Round(client, intent, window_ms=window_ms, timeout=timeout)
    if client._http is None:
        client._http = httpx.AsyncClient(timeout=client._http_timeout)
    http = client._http
    signature = client.sign(intent)
    signed_at = time.monotonic()
    body = client.signed_wire(intent, signature=signature).model_dump_json()
    quotes = await rnd.quotes(http, body)
    if not quotes:  # a cold or loaded round: one more, with a longer window
        rnd.window_ms = min(RETRY_WINDOW_MS, 4 * window_ms)
        quotes = await rnd.quotes(http, body)
    if not quotes:
        raise RequestRejected("no solver returned a quote", job_id=job, reasons={"quotes": "none"})
    ranked = rank(quotes, intent, now=int(time.time()))
    phases = {
        "round_ms": 1000 * (time.monotonic() - signed_at),
        "solver_ms": rnd.solver_ms,
        "check_ms": rnd.check_ms,
    }
    # The best quote first; a provider that does not answer, or answers with an output its
    # commitment does not bind, is passed over for the next (the intent's nonce allows one award).
    refusals: dict[str, str] = {}
    for quote, quote_sig, url in ranked[:MAX_TAKES]:
        try:
            committed, felts, out_hash, commitment, backing = await _take(
                client, rnd, http, body, (quote, quote_sig, url), timeout, phases
            )
            break
        except RequestRejected as exc:
            refusals[quote.provider] = str(exc)
            log(
                logger,
                "rfq.passed_over",
                level=logging.WARNING,
                job_id=job,
                provider=quote.provider,
                error=str(exc),
            )
    else:
        raise RequestRejected(
            "no quoted provider answered with a committed output", job_id=job, reasons=refusals
        )
    phases["run_ms"] = 1000 * (time.monotonic() - signed_at) - phases["round_ms"]
    result_at = time.monotonic()
    # The award is sent once the output is in hand: the provider runs on the requester's
    # acceptance (with which it may send the award itself), so the transaction, its gas
    # estimate and signing stay off the time to result.
    rnd.stakes.hold(quote.provider, job, max(intent.min_stake, quote.price * await rnd.stake_multiple()))
    award = asyncio.ensure_future(_batcher(client, rnd.market).award(intent, quote, quote_sig))
    settlement = asyncio.ensure_future(rnd.settle(award, committed))
    log(
        logger,
        "rfq.provisional",
        job_id=job,
        provider=quote.provider,
        price=quote.price,
        quotes=len(quotes),
        ms=round(1000 * (result_at - signed_at), 1),
        round_ms=round(phases["round_ms"], 1),
        run_ms=round(phases.get("run_ms", 0.0), 1),
    )
    return ProvisionalResult(
        job_id=job,
        provider=quote.provider,
        price=quote.price,
        latency=quote.latency,
        output=list(committed.output),
        output_felts=felts,
        output_hash=out_hash,
        commitment=commitment,
        stake=backing,
        quotes=len(quotes),
        signed_at=signed_at,
        result_at=result_at,
        settlement=settlement,
        phases={k: round(v, 1) for k, v in phases.items()},
    )


def json_of(body: str) -> dict[str, Any]:
    import json

    data: dict[str, Any] = json.loads(body)
    return data


async def _take(
    client: Client,
    rnd: _Round,
    http: httpx.AsyncClient,
    body: str,
    taken: tuple[Quote, bytes, str],
    timeout: float | None,  # noqa: ASYNC109 - on the provider's answer
    phases: dict[str, float],
) -> tuple[CommittedOutput, list[int], bytes, bytes, int]:
    """Take one quote: ``(answer, output felts, output hash, commitment, stake)``, or
    :class:`RequestRejected` naming what was wrong with the provider's answer. ``phases`` gets
    ``provider_ms`` and ``stake_wait_ms``."""
    from tender.client._errors import RequestRejected

    quote, quote_sig, url = taken
    intent, job = rnd.intent, rnd.job_hex
    assert client._key is not None
    acceptance = sign_digest(
        quote_digest(quote, chain_id=rnd.chain_id, market=rnd.market_address), client._key
    )
    stake = asyncio.ensure_future(rnd.stakes.backing(quote.provider))
    stake.add_done_callback(_consume)
    multiple = asyncio.ensure_future(rnd.stake_multiple())  # read once a process: off the path
    multiple.add_done_callback(_consume)
    run = RunQuoted.model_validate(
        {
            "signed": json_of(body),
            "quote": quote.to_json(),
            "quoteSignature": _hex(quote_sig),
            "acceptance": _hex(acceptance),
        }
    )
    asked = time.monotonic()
    try:
        reply = await http.post(
            f"{url}/rfq/run",
            content=run.model_dump_json(),
            headers={"Content-Type": "application/json"},
            timeout=timeout if timeout is not None else client._http_timeout,
        )
        if reply.status_code != 200:
            raise RequestRejected(
                f"the provider refused the job: {reply.status_code} {reply.text[:300]}",
                job_id=job,
                reasons={"provider": reply.text[:300]},
            )
        committed = CommittedOutput.model_validate_json(reply.content)
    except (httpx.HTTPError, ValidationError) as exc:
        raise RequestRejected(
            f"the provider did not answer: {exc!r}", job_id=job, reasons={"provider": repr(exc)}
        ) from exc
    phases["provider_ms"] = 1000 * (time.monotonic() - asked)
    felts = [int(f) for f in committed.outputFelts]
    out_hash = output_hash(felts)
    if _hex(out_hash) != committed.outputHash.lower() or committed.jobId.lower() != job:
        raise RequestRejected(
            "the provider's output hash is not its output's", job_id=job, reasons={"provider": "output hash"}
        )
    try:
        signer = recover_commitment_signer(
            rnd.job,
            out_hash,
            bytes.fromhex(committed.commitment[2:]),
            chain_id=rnd.chain_id,
            market=rnd.market_address,
        )
    except IntentError as exc:
        raise RequestRejected(
            f"bad result commitment: {exc}", job_id=job, reasons={"provider": str(exc)}
        ) from exc
    if signer != quote.provider:
        raise RequestRejected(
            f"the result commitment is signed by {signer}, not {quote.provider}",
            job_id=job,
            reasons={"provider": "commitment signer"},
        )
    waited = time.monotonic()
    backing = await stake
    needed = max(intent.min_stake, quote.price * await multiple)
    phases["stake_wait_ms"] = 1000 * (time.monotonic() - waited)
    if backing < needed:
        # a kept read that may have gone stale is read once more before refusing
        backing = await rnd.stakes.backing(quote.provider, fresh=True)
    if backing < needed:
        raise RequestRejected(
            f"the provider's stake ({backing}) does not back the job",
            job_id=job,
            reasons={"provider": "stake"},
        )
    return committed, felts, out_hash, bytes.fromhex(committed.commitment[2:]), backing
