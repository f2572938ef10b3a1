"""The provider's side of the quote path (``QuoteMarket``, see :mod:`tender.rfq`).

``POST /rfq/quote`` answers a solver with a firm EIP-712 :class:`~tender.quotes.Quote` signed by
the node's key (priced from memory, like ``/quote``). ``POST /rfq/run`` is the requester taking
that quote: the node checks it is its own unexpired quote for this intent, that the requester
accepted it (its signature of the quote's digest) and that the inline input matches the intent's
commitment; then it signs a result commitment to the output as the proof will carry it (EZKL's
witness) and answers at once. The witness is started as the node begins its quote, in its own
process (:class:`~provider._proving.WitnessWorker`: EZKL holds the GIL) beside the input check
and the pricing, and kept per job like the input check, so ``/rfq/run`` finds it ready: a node
spends one witness (milliseconds) on each job it quotes and is not given, and hands the output
out only on ``/rfq/run``. The input check is the commitment basis's arithmetic, on the event
loop (``provider._bundles``). Proving and delivery run in the background:

- the proof starts at once, before the award is mined (the node may spend a proof on a job
  that is never awarded: see ``docs/PROTOCOL.md``, "Provisional results");
- the node waits for ``QuoteAwarded``; if the requester has not sent ``openAwarded`` a few
  seconds before the quote expires, the node sends it itself with the requester's acceptance
  (the requester pays as if it had sent it: an output handed out is never free);
- then it delivers the proof (``deliver``), which settles the job;
- and it follows the chain, not the receipt, until the settlement is :data:`SETTLED_DEPTH`
  blocks deep: a reorg that took the delivery back (the job Awarded again) is answered by
  delivering again, one that took the award back (no job) by sending ``openAwarded`` again
  while the quote is valid (past it, nothing of the job is on chain: nothing is owed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, FastAPI

from provider._batch_proofs import BatchCollector, BatchJob, collector_for, promise_s
from provider._bundles import input_commitment
from provider._errors import BadRequest, InputRejected, ModelNotServed, NotAwarded
from provider._inputs import check_input
from provider._proving import WitnessWorker
from tender.chain import AsyncQuoteMarket, JobState, QuoteAwarded, QuoteMarket
from tender.errors import IntentError, TenderError
from tender.intents import Intent, check_signature, decode_input_uri, job_id
from tender.logs import log
from tender.quotes import Quote, output_hash, recover_quote_signer, sign_commitment, sign_quote
from tender.rfq import CommittedOutput, FirmQuote, RunQuoted
from tender.wire import QuoteRefusal, SignedIntentWire

if TYPE_CHECKING:
    from provider._node import ProviderNode, ServedModel

__all__ = ["RfqDesk", "add_rfq_routes"]

logger = logging.getLogger("provider.rfq")

#: chain seconds before a taken quote expires at which the node sends ``openAwarded`` itself
RELAY_MARGIN_S = 5
#: seconds between looks for the award
POLL_S = 0.25
#: seconds between looks at a settled quoted job (for a reorg that took it back): two RPC calls
#: a look, for every job followed, in the process whose ``/rfq/run`` is on requesters' clocks
FOLLOW_POLL_S = 1.0
#: blocks a quoted job's settlement must lie under before the node stops following it (a reorg
#: deeper than this is not answered; ``benchmarks/faults.py`` reorgs to depth 6)
SETTLED_DEPTH = 12
#: RPC failures in a row after which the node stops following a settled quoted job
FOLLOW_FAILURES = 20
#: A quoted job is proved at once but behind every proof already queued, on a machine other work
#: may slow down, and missing its due time costs the whole lock: the quote promises
#: ``LATENCY_SLACK`` times the priced latency plus ``LATENCY_PAD_S``, within the deadline.
LATENCY_SLACK = 2
#: how many quoted jobs' input checks the node remembers
CHECKED_KEPT = 4096
LATENCY_PAD_S = 10


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def _consume(future: asyncio.Future[Any]) -> None:
    """Retrieve the error of a witness nobody asked for (a job quoted and not taken)."""
    if not future.cancelled():
        future.exception()


class RfqDesk:
    """The quote path of one :class:`~provider._node.ProviderNode`."""

    def __init__(self, node: ProviderNode) -> None:
        self.node = node
        self._market: AsyncQuoteMarket | None = None
        #: the jobs this node handed an output for, by job id (the background settlement)
        self.runs: dict[str, asyncio.Task[None]] = {}
        #: settled quoted jobs followed until their settlement is deep (not counted as load)
        self.following: set[asyncio.Task[None]] = set()
        #: each quoted job's input check (``None``: the inline input matches its commitment; else
        #: why not), newest last. The job id binds the input and the commitment, so the check is
        #: made once per job: the second solver's ``/rfq/quote`` for the same job (often at the
        #: same moment: it awaits the first one's) and ``/rfq/run`` reuse it.
        self._checked: dict[str, asyncio.Future[str | None]] = {}
        self._bundles: dict[str, Any] = {}
        #: each quoted job's output as field elements (the witness), started when the node quotes
        #: it, newest last (at most ``CHECKED_KEPT``)
        self._outputs: dict[str, asyncio.Future[list[int]]] = {}
        #: the process the witnesses are made in (off the event loop and the GIL)
        self.witnesses = WitnessWorker()
        self._taking: set[str] = set()
        #: batch models' collectors, by :attr:`ServedModel.key`
        self._collectors: dict[str, BatchCollector] = {}

    @property
    def market(self) -> AsyncQuoteMarket:
        """The quote market, sending from the node's account."""
        chain = self.node.chain
        if chain is None:
            raise BadRequest("this node has no chain: it takes no quoted jobs", code="no_chain")
        if self._market is None:
            deployment = getattr(chain, "deployment", None)
            address = deployment.markets.get("quote") if deployment is not None else None
            if address is None:
                raise BadRequest("this node's deployment has no quote market", code="no_quote_market")
            sync = QuoteMarket(chain.w3, address, sender=chain.contracts.reverse.sender)
            self._market = AsyncQuoteMarket(sync)
        return self._market

    def _intent(self, wire: SignedIntentWire) -> tuple[Intent, bytes, ServedModel]:
        market = self.market
        if wire.chainId != market.chain_id or wire.market.lower() != market.address.lower():
            raise BadRequest(
                f"this node quotes on the quote market {market.address}",
                field="market",
                code="unknown_market",
            )
        try:
            intent = Intent.from_json(wire.intent.model_dump())
        except IntentError as exc:
            raise BadRequest(str(exc), field="intent", code="invalid_intent") from exc
        job = job_id(intent, chain_id=market.chain_id, market=market.address)
        if _hex(job) != wire.jobId.lower():
            raise BadRequest(f"the intent's job id is {_hex(job)}", field="jobId", code="wrong_job_id")
        served = self.node.by_model_id.get(wire.intent.modelId.lower())
        if served is None:
            raise ModelNotServed(f"unknown model {wire.intent.modelId}", field="intent.modelId")
        return intent, job, served

    async def quote(self, wire: SignedIntentWire) -> FirmQuote | QuoteRefusal:
        """A firm quote for ``wire``'s intent on the quote market, or a refusal."""
        node = self.node
        started = time.perf_counter()

        def refuse(reason: str, outcome: str) -> QuoteRefusal:
            node.metrics.quotes.labels(outcome).inc()
            return QuoteRefusal(jobId=wire.jobId, provider=node.address, reason=reason)

        try:  # like /quote: a well-formed request is answered, with a refusal naming the problem
            intent, job, served = self._intent(wire)
        except BadRequest as exc:
            return refuse(exc.message, exc.code)

        if node._active() + len(self.runs) >= node.config.max_jobs:
            return refuse("no capacity", "no_capacity")
        # the output first: its witness process runs beside the input check and the pricing
        with contextlib.suppress(InputRejected, ModelNotServed):  # /rfq/run names the problem
            self._output(served, wire.jobId.lower(), intent.input_location)
        mismatch = await self._input_check(
            served, _hex(job), wire.intent.inputLocation, intent.input_commitment
        )
        if mismatch is not None:
            return refuse(mismatch, "input_mismatch")
        now = node.clock.now()
        queued = node.pool.in_flight if node.pool else 0
        offer = node.pricer.offer(
            served.entry.name,
            max_price=intent.max_price,
            queued=queued,
            now=now,
            deadline=intent.deadline,
            ahead=node.proofs_ahead(),
        )
        if offer.refusal is not None:
            return refuse(offer.refusal, offer.refusal.split(":")[0].replace(" ", "_"))
        priced = offer.latency_s
        if served.batch > 1:  # its batch's proof, and the longest it may wait for its batch
            priced = promise_s(served, node.pricer.latency_s(served.key, ahead=node.proofs_ahead()))
            if now + priced > intent.deadline:
                return refuse(
                    f"deadline too tight: need {priced}s, {intent.deadline - now}s left", "deadline_too_tight"
                )
        room = intent.deadline - now - LATENCY_PAD_S
        latency = max(priced, min(LATENCY_SLACK * priced + LATENCY_PAD_S, room))
        quote = Quote(
            job_id=job,
            provider=node.address,
            price=offer.price,
            latency=latency,
            expiry=now + node.config.pricing.quote_ttl_s,
        )
        market = self.market
        signature = sign_quote(quote, node._signing_key, chain_id=market.chain_id, market=market.address)
        node.metrics.quotes.labels("quoted").inc()
        log(
            logger,
            "rfq.quoted",
            job_id=wire.jobId,
            price=offer.price,
            latency_s=offer.latency_s,
            ms=round(1000 * (time.perf_counter() - started), 1),
        )
        return FirmQuote(quote=quote.to_json(), signature=_hex(signature), url="")

    async def _input_check(self, served: ServedModel, key: str, location: str, commitment: int) -> str | None:
        """Why job ``key``'s inline input cannot be served as committed, or ``None``: checked
        once per job (see :attr:`_checked`)."""
        known = self._checked.get(key)
        if known is None:
            known = asyncio.ensure_future(self.node._input_mismatch(served, location, commitment))
            self._checked[key] = known
            while len(self._checked) > CHECKED_KEPT:
                del self._checked[next(iter(self._checked))]
        try:
            return await asyncio.shield(known)
        except Exception:
            if self._checked.get(key) is known:  # a failed check is made again next time
                del self._checked[key]
            raise

    def _output(self, served: ServedModel, key: str, location: bytes) -> asyncio.Future[list[int]]:
        """Job ``key``'s output felts (EZKL's witness of its inline input), computed once per job
        in the witness process (see :attr:`_outputs`)."""
        known = self._outputs.get(key)
        if known is not None:
            return known
        if served.bundle is None:
            raise ModelNotServed(
                f"model {served.entry.name} has no bundle to prove with", field="intent.modelId"
            )
        data = decode_input_uri(location)
        if data is None:
            raise InputRejected("the quote path takes inline inputs only", field="intent.inputLocation")
        row = check_input(served.spec.input, data).tolist()
        from tender.models import Bundle

        if served.key not in self._bundles:  # its card: the output's scale
            self._bundles[served.key] = Bundle.load(served.bundle.path)
        known = asyncio.ensure_future(self.witnesses.felts(str(served.bundle.path), row))
        known.add_done_callback(_consume)
        self._outputs[key] = known
        while len(self._outputs) > CHECKED_KEPT:
            del self._outputs[next(iter(self._outputs))]
        return known

    async def run(self, body: RunQuoted) -> CommittedOutput:
        """Take a quoted job: check it, compute and commit to the output, settle in the background."""
        node = self.node
        intent, job, served = self._intent(body.signed)
        market = self.market
        try:
            quote = Quote.from_json(body.quote)
            check_signature(
                intent,
                bytes.fromhex(body.signed.signature[2:]),
                chain_id=market.chain_id,
                market=market.address,
            )
            signer = recover_quote_signer(
                quote, bytes.fromhex(body.quoteSignature[2:]), chain_id=market.chain_id, market=market.address
            )
            accepted_by = recover_quote_signer(
                quote, bytes.fromhex(body.acceptance[2:]), chain_id=market.chain_id, market=market.address
            )
        except IntentError as exc:
            raise BadRequest(str(exc), field="quote", code="invalid_quote") from exc
        if quote.job_id != job or signer != node.address or quote.provider != node.address:
            raise NotAwarded("this node did not sign this quote for this job", field="quote")
        if accepted_by != intent.requester:
            raise BadRequest(
                "the acceptance is not the requester's signature of the quote",
                field="acceptance",
                code="bad_acceptance",
            )
        if quote.expiry <= node.clock.now():
            raise BadRequest("the quote has expired", field="quote.expiry", code="quote_expired")
        key = _hex(job)
        if key in self.runs or key in self._taking:
            raise BadRequest("this job was taken already", field="jobId", code="taken")
        self._taking.add(key)
        try:
            return await self._take(intent, job, served, quote, body)
        finally:
            self._taking.discard(key)

    async def _take(
        self, intent: Intent, job: bytes, served: ServedModel, quote: Quote, body: RunQuoted
    ) -> CommittedOutput:
        node, market, key = self.node, self.market, _hex(job)
        if served.bundle is None:
            raise ModelNotServed(
                f"model {served.entry.name} has no bundle to prove with", field="intent.modelId"
            )
        data = decode_input_uri(intent.input_location)
        if data is None:
            raise InputRejected("the quote path takes inline inputs only", field="intent.inputLocation")
        mismatch = await self._input_check(served, key, _hex(intent.input_location), intent.input_commitment)
        if mismatch is not None:
            raise InputRejected(mismatch, field="intent.inputLocation")
        row = check_input(served.spec.input, data).tolist()
        from tender.models import dequantize

        started = time.perf_counter()
        try:
            felts = await asyncio.shield(self._output(served, key, intent.input_location))
        except TenderError as exc:
            raise InputRejected(
                f"the circuit refused the input: {exc}", field="intent.inputLocation"
            ) from exc
        out_hash = output_hash(felts)
        commitment = sign_commitment(
            job, out_hash, node._signing_key, chain_id=market.chain_id, market=market.address
        )
        task = asyncio.get_running_loop().create_task(
            self._settle(
                intent,
                quote,
                bytes.fromhex(body.quoteSignature[2:]),
                bytes.fromhex(body.acceptance[2:]),
                served,
                row,
                out_hash,
            ),
            name=f"rfq-{key[:10]}",
        )
        self.runs[key] = task
        task.add_done_callback(lambda _: self.runs.pop(key, None))
        log(
            logger,
            "rfq.committed",
            job_id=key,
            output_hash=_hex(out_hash),
            witness_ms=round(1000 * (time.perf_counter() - started), 1),
        )
        scale = self._bundles[served.key].card.output_scale
        return CommittedOutput(
            jobId=key,
            provider=node.address,
            output=[dequantize(f, scale) for f in felts],
            outputFelts=[str(f) for f in felts],
            outputHash=_hex(out_hash),
            commitment=_hex(commitment),
        )

    async def _settle(
        self,
        intent: Intent,
        quote: Quote,
        quote_sig: bytes,
        acceptance: bytes,
        served: ServedModel,
        row: Any,
        committed: bytes,
    ) -> None:
        node = self.node
        assert node.pool is not None
        assert served.bundle is not None
        key = _hex(quote.job_id)
        if served.batch > 1:
            await self._settle_in_batch(intent, quote, quote_sig, acceptance, served, row)
            return
        bundle, model = str(served.bundle.path), served.entry.name
        try:
            # its place among the node's proofs: by when the quote promised the delivery
            due = time.time() + quote.latency
            proving = asyncio.ensure_future(node.pool.prove(bundle, row, deadline=due, model=model))
            awarded = await self._await_award(intent, quote, quote_sig, acceptance)
            if awarded is None:
                proving.cancel()
                return
            proof = await proving
            felts = [int(x) for x in proof.output_felts]
            if output_hash(felts) != committed:  # never on an honest node: EZKL is deterministic
                log(logger, "rfq.output_differs", level=logging.ERROR, job_id=key)
            receipt = await self.market.deliver_quoted(quote.job_id, awarded.terms, felts, proof.proof)
            log(
                logger,
                "rfq.delivered",
                job_id=key,
                tx=receipt["transactionHash"].hex(),
                proof_s=round(proof.seconds, 3),
            )
        except asyncio.CancelledError:
            raise
        except (TenderError, OSError) as exc:
            log(logger, "rfq.failed", level=logging.ERROR, job_id=key, error=repr(exc))
            return
        follow = asyncio.get_running_loop().create_task(
            self._stay_settled(
                intent, quote, quote_sig, acceptance, felts, proof.proof, int(receipt["blockNumber"])
            ),
            name=f"rfq-follow-{key[:10]}",
        )
        self.following.add(follow)
        follow.add_done_callback(self.following.discard)

    async def _stay_settled(
        self,
        intent: Intent,
        quote: Quote,
        quote_sig: bytes,
        acceptance: bytes,
        felts: list[int],
        proof: bytes,
        settled_in: int,
    ) -> None:
        """Follow the chain until the job's settlement (first seen in block ``settled_in``) is
        :data:`SETTLED_DEPTH` blocks deep: a delivery a reorg took back is sent again (the job is
        Awarded to us again), an award a reorg took back is sent again while the quote is valid.
        The terms of each delivery are those of the award that stands (read from its event)."""
        market = self.market
        key = _hex(quote.job_id)
        failures = 0
        while failures < FOLLOW_FAILURES:
            await asyncio.sleep(FOLLOW_POLL_S)
            try:
                head = await asyncio.to_thread(lambda: int(market.sync.w3.eth.block_number))
                state = await market.job_state(quote.job_id)
                if state is JobState.SETTLED:
                    if head - settled_in >= SETTLED_DEPTH:
                        return
                elif state is JobState.NONE:
                    if self.node.clock.now() >= quote.expiry:
                        log(
                            logger, "rfq.award_reorged_out", level=logging.WARNING, job_id=key, after="expiry"
                        )
                        return  # nothing of the job stands on chain: nothing is owed either way
                    log(logger, "rfq.award_reorged_out", level=logging.WARNING, job_id=key)
                    await market.open_awarded(intent, quote, quote_sig, acceptance)
                elif state is JobState.AWARDED:
                    awarded = await self._award_event(quote)
                    if awarded is None or awarded.provider != self.node.address:
                        return
                    log(logger, "rfq.delivery_reorged_out", level=logging.WARNING, job_id=key)
                    receipt = await market.deliver_quoted(quote.job_id, awarded.terms, felts, proof)
                    settled_in = int(receipt["blockNumber"])
                    log(logger, "rfq.delivered", job_id=key, tx=receipt["transactionHash"].hex(), again=True)
                else:
                    return  # expired or slashed: the chain has spoken
                failures = 0
            except asyncio.CancelledError:
                raise
            except (TenderError, OSError) as exc:
                failures += 1
                log(logger, "rfq.follow_failed", level=logging.WARNING, job_id=key, error=repr(exc))

    async def _award_event(self, quote: Quote) -> QuoteAwarded | None:
        """The ``QuoteAwarded`` of ``quote``'s job on the chain that stands (recent blocks)."""
        market = self.market

        def find() -> QuoteAwarded | None:
            start = max(0, int(market.sync.w3.eth.block_number) - 256)
            events = market.sync.events(start, names=["QuoteAwarded"], job_id=quote.job_id)
            return next((e for e in events if isinstance(e, QuoteAwarded)), None)

        return await asyncio.to_thread(find)

    async def _settle_in_batch(
        self, intent: Intent, quote: Quote, quote_sig: bytes, acceptance: bytes, served: ServedModel, row: Any
    ) -> None:
        """A batch model's job: once awarded, it waits for its batch (:mod:`provider._batch_proofs`),
        which one proof and one ``deliverBatch`` settle."""
        key = _hex(quote.job_id)
        try:
            awarded = await self._await_award(intent, quote, quote_sig, acceptance)
            if awarded is None:
                return
            settled = await self.collector(served).submit(BatchJob(quote.job_id, awarded.terms, row))
            log(logger, "rfq.delivered", job_id=key, tx=settled.tx, batch=settled.jobs, slot=settled.slot)
        except asyncio.CancelledError:
            raise
        except (TenderError, OSError) as exc:
            log(logger, "rfq.failed", level=logging.ERROR, job_id=key, error=repr(exc))

    def collector(self, served: ServedModel) -> BatchCollector:
        """The batch collector of a batch model (made on first use)."""
        found = self._collectors.get(served.key)
        if found is None:
            found = self._collectors[served.key] = collector_for(self.node, served, lambda: self.market)
        return found

    async def _await_award(
        self, intent: Intent, quote: Quote, quote_sig: bytes, acceptance: bytes
    ) -> QuoteAwarded | None:
        """The job's ``QuoteAwarded``, sending ``openAwarded`` with the requester's acceptance
        when the requester has not by ``RELAY_MARGIN_S`` before the quote expires."""
        market = self.market
        key = _hex(quote.job_id)
        start = max(0, await asyncio.to_thread(lambda: int(market.sync.w3.eth.block_number)) - 64)

        def find() -> QuoteAwarded | None:
            events = market.sync.events(start, names=["QuoteAwarded"], job_id=quote.job_id)
            return next((e for e in events if isinstance(e, QuoteAwarded)), None)

        while True:
            found = await asyncio.to_thread(find)
            if found is not None:
                return found if found.provider == self.node.address else None
            if self.node.clock.now() >= quote.expiry - RELAY_MARGIN_S:
                break
            await asyncio.sleep(POLL_S)
        log(logger, "rfq.relaying", level=logging.WARNING, job_id=key)
        try:
            receipt = await market.open_awarded(intent, quote, quote_sig, acceptance)
        except TenderError as exc:
            found = await asyncio.to_thread(find)
            if found is None:
                log(logger, "rfq.never_awarded", level=logging.WARNING, job_id=key, error=repr(exc))
            return found if found is not None and found.provider == self.node.address else None
        awarded = [e for e in market.sync.events_in(receipt) if isinstance(e, QuoteAwarded)]
        return awarded[0] if awarded else None

    async def warm(self) -> None:
        """Build the quote market's contract wrapper, compute one input commitment per model
        (checking its commitment basis against EZKL) and one witness (starting the witness
        process, which keeps the loaded bundle), so that the first quote and the first output
        do not pay for the ABI, the SRS, the circuit or a process start."""
        import numpy as np

        from tender.models import Bundle

        if self.node.chain is not None:
            with contextlib.suppress(BadRequest):  # no quote market: /rfq refuses, as it would
                _ = self.market
        for served in [*self.node.models.values(), *self.node.batch_models.values()]:
            if served.bundle is None:
                continue
            zeros = np.zeros(served.spec.input.single_shape(), dtype=served.spec.input.dtype).tolist()
            try:
                await asyncio.to_thread(input_commitment, served.bundle, zeros)
                if served.key not in self._bundles:
                    self._bundles[served.key] = Bundle.load(served.bundle.path)
                await self.witnesses.felts(str(served.bundle.path), zeros)
            except (TenderError, OSError, RuntimeError) as exc:
                log(
                    logger, "rfq.warm_failed", level=logging.WARNING, model=served.entry.name, error=repr(exc)
                )

    async def state(self, job: bytes) -> JobState:
        return await self.market.job_state(job)

    async def close(self) -> None:
        tasks = [*self.runs.values(), *self.following]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for collector in self._collectors.values():
            await collector.close()
        self.witnesses.close()


def add_rfq_routes(
    app: FastAPI, node: ProviderNode, json_only: Any, errors: dict[int | str, dict[str, Any]]
) -> None:
    """``POST /rfq/quote`` and ``POST /rfq/run`` on the node's app (``errors``: the refusals the
    OpenAPI schema lists)."""
    desk = node.rfq
    rfq = APIRouter(
        dependencies=[Depends(json_only)],
        responses={**errors, 503: {"description": "the chain or the prover failed us: retry"}},
    )

    @rfq.post(
        "/rfq/quote",
        response_model=FirmQuote | QuoteRefusal,
        summary="A firm quote on the quote market (EIP-712, for openAwarded)",
    )
    async def rfq_quote(request: SignedIntentWire) -> FirmQuote | QuoteRefusal:
        return await desk.quote(request)

    @rfq.post(
        "/rfq/run",
        response_model=CommittedOutput,
        summary="Take a quote: the output at once, with a signed result commitment",
    )
    async def rfq_run(request: RunQuoted) -> CommittedOutput:
        started = time.perf_counter()
        out = await desk.run(request)
        log(logger, "rfq.answered", job_id=out.jobId, ms=round(1000 * (time.perf_counter() - started), 1))
        return out

    app.include_router(rfq)
