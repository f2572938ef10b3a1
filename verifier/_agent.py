"""The verifier agent: a :class:`~tender.daemon.Daemon` that keeps the markets honest.

One loop, one pass every ``poll_interval_s``:

1. **scan** the markets' events from the stored cursor to the head (a
   :class:`~tender.chain.EventFeed` whose cursor is the SQLite store: the events and the cursor
   are stored together) and fold each job's state with :class:`~tender.chain.JobView`'s rule; a
   reorg rebuilds the jobs it touched;
2. **judge** each new optimistic delivery: fetch the input from the intent's
   ``inputLocation``, check it against the commitment, re-execute the model and compare
   (:func:`verifier._models.judge`);
3. **act** on the chain clock: ``challenge`` wrong outputs while the window is open (with a
   safety margin), ``expire`` jobs past their provider deadline and challenged jobs past their
   proof deadline, ``finalize`` unchallenged deliveries whose window closed, and **keep**: a job
   still open ``keeper_grace_s`` after its auction ended (its solver never closed it, or a reorg
   took its award back) is awarded (a reverse auction with bids, before its deadline) or else
   refunded, so no escrow stays stuck (the market's rules: ``award`` from the auction's end to
   the deadline; ``refund`` once no award is possible: no bids, past the deadline, or a Dutch
   auction past its window).

Every transaction goes through :class:`verifier._actions.ActionSender`: signed, stored, then
broadcast, at most once per (job, duty). A restarted agent rebroadcasts what it had stored,
rescans from its cursor and finds every open duty again, so killing it between a wrong
delivery and its challenge loses nothing but the time it was down. An action whose transaction
a reorg took back is forgotten when the job is rebuilt, so the duty is done again on the new chain.

A small HTTP relay (optional) lets providers hand in proofs for challenged jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Coroutine, Sequence
from typing import Any

from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import TransactionNotFound, Web3RPCError

from tender.chain import (
    AuditRequired,
    Awarded,
    Challenged,
    Delivered,
    Deployment,
    Event,
    EventFeed,
    FailedOver,
    FeedCursor,
    IntentPosted,
    JobState,
    JobView,
    Market,
    Proved,
    Registry,
    Slashed,
    Staking,
    Token,
    TxSender,
    connect,
)
from tender.daemon import Daemon
from tender.errors import ChainError, ContractRevert, TenderError, TransactionFailed
from tender.intents import AuctionType, Intent, ProofMode
from tender.logs import log
from tender.models import Bundle, Proof, verify
from verifier._actions import ActionSender, Outcome
from verifier._audit import instances_for
from verifier._config import VerifierConfig
from verifier._errors import CommitmentMismatch, InputUnavailable
from verifier._inputs import fetch_input
from verifier._models import Catalogue, commitment_of, judge
from verifier._relay import RelayRefused, make_app, start_site
from verifier._store import JobRow, Store

logger = logging.getLogger("verifier.agent")

#: Exit code of the ``fault_crash_after_persist`` test fault.
EXIT_CRASHED = 3

#: Reverts that only mean "someone else got there first" or "not due yet".
_EXPECTED_REVERTS = frozenset(
    {
        "InvalidState",
        "NotExpired",
        "ChallengeWindowOpen",
        "ChallengeWindowClosed",
        "ProofDeadlinePassed",
        "AuctionNotEnded",
        "DeadlinePassed",
        "NoBids",
        "NotRefundable",
    }
)

#: Awards of one open job the keeper sends at most (one that fails, e.g. mined in the same block
#: as its solver's, is decided again on the chain that follows).
_KEEPER_AWARDS = 3


class Agent(Daemon):
    """The verifier agent.

    Args:
        config: the ``[chain]`` and ``[verifier]`` sections.
        key: the signing key (default: ``config.chain.private_key()``: env or keystore).
        catalogue: where model bundles are found (default: the cache's ``models/``).
    """

    name = "verifier"

    def __init__(
        self, config: VerifierConfig, *, key: str | None = None, catalogue: Catalogue | None = None
    ) -> None:
        super().__init__()
        self.config = config
        self.settings = config.verifier
        self._key = key
        self.catalogue = catalogue or Catalogue(config.verifier.bundles)
        self._models: dict[bytes, tuple[dict[str, Any], Bundle | None]] = {}
        self._relay_runner: Any = None
        self.passes = 0
        #: why the last pass could not read or write the chain (``None``: it could)
        self.chain_error: str | None = None
        self._answered_at = time.monotonic()
        #: (job, kind) of each action signed but not known mined -> since when (monotonic)
        self._pending_since: dict[tuple[str, str], float] = {}

    # -- lifecycle ------------------------------------------------------------------------

    async def setup(self) -> None:
        await asyncio.to_thread(self._setup_sync)
        if self.settings.relay_listen:
            app = make_app(
                relay=self.relay,
                health=self.health,
                rewards=self.store.rewards,
                max_proof_bytes=self.settings.relay_max_proof_bytes,
            )
            self._relay_runner = await start_site(app, self.settings.relay_listen)
            log(logger, "relay.listening", listen=self.settings.relay_listen)

    def _setup_sync(self) -> None:
        chain = self.config.chain
        self.w3: Web3 = connect(chain.rpc_url)
        self.chain_id = int(self.w3.eth.chain_id)
        self.deployment = Deployment.load(self.chain_id, path=chain.deployment)
        self.sender = TxSender(self.w3, self._key or chain.private_key(), confirmations=chain.confirmations)
        self.address = self.sender.address
        self.markets: dict[str, Market] = {}
        for name in self.settings.markets:
            if name in self.deployment.markets:
                auction = AuctionType.DUTCH if name == "dutch" else AuctionType.REVERSE
                self.markets[name] = Market(
                    self.w3, self.deployment.market(name), auction=auction, sender=self.sender
                )
        self._by_address = {m.address: name for name, m in self.markets.items()}
        self.registry = Registry(self.w3, self.deployment.registry)
        self.staking = Staking(self.w3, self.deployment.staking)
        self.token = Token(self.w3, self.deployment.token, sender=self.sender)
        self.store = Store(self.settings.store_path(self.chain_id))
        self.store.bind(chain_id=self.chain_id, markets={n: m.address for n, m in self.markets.items()})
        cursor: FeedCursor = self.store  # the events and the cursor are stored together
        self.feed = EventFeed(
            self.w3,
            [m.address for m in self.markets.values()],
            cursor=cursor,
            confirmations=chain.confirmations,
            chunk=self.settings.log_chunk,
            start_block=self.settings.from_block or self.deployment.block,
        )
        self.actions = ActionSender(
            self.sender,
            self.store,
            on_persisted=self._crash if self.settings.fault_crash_after_persist else None,
        )
        resumed = self.actions.resume()
        if resumed:
            log(logger, "actions.resumed", count=len(resumed), statuses=[o.status for o in resumed])
        if self.settings.challenge:
            balance = self.token.balance_of(self.address)
            for market in self.markets.values():
                bond = market.params().challenge_bond
                # A bond comes from the agent's credit in the market (returned bonds) when that
                # covers all of it, else from the allowance: approve once here, since a credit
                # that covers this bond may be spent by the time the next challenge is due.
                credit = market.owed(self.address)
                if self.token.allowance(self.address, market.address) < bond:
                    self.token.approve(market.address, 2**256 - 1)
                if balance < bond and credit < bond:
                    log(
                        logger,
                        "agent.cannot_challenge",
                        level=logging.WARNING,
                        market=market.address,
                        balance=str(balance),
                        credit=str(credit),
                        bond=str(bond),
                    )
        log(
            logger,
            "agent.ready",
            address=self.address,
            chain_id=self.chain_id,
            markets=list(self.markets),
            cursor=self.store.cursor,
            state=str(self.store.path),
        )

    def _crash(self, job_id: str, kind: str) -> None:
        """The ``fault_crash_after_persist`` test fault: die like a killed process would."""
        log(logger, "fault.crash_after_persist", level=logging.ERROR, job_id=job_id, kind=kind)
        logging.shutdown()
        os._exit(EXIT_CRASHED)

    def tasks(self) -> list[Coroutine[Any, Any, None]]:
        return [self._run()]

    async def stop(self) -> None:
        if self._relay_runner is not None:
            await self._relay_runner.cleanup()
        store = getattr(self, "store", None)
        if store is not None:
            log(logger, "agent.rewards", rewards={k: str(v) for k, v in store.rewards().items()})
            store.close()

    async def _run(self) -> None:
        while not self.stopping.is_set():
            await asyncio.to_thread(self.step)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), timeout=self.settings.poll_interval_s)

    def step(self) -> None:
        """One pass: resume pending actions, scan, judge, act (synchronous; the loop runs it in a
        worker thread). An RPC outage fails the pass, not the agent: the next pass tries again,
        resuming from the feed's cursor and re-sending what was signed but never got out."""
        try:
            self.resume_pending()
            self.scan()
            self.judge_pending()
            self.act(int(self.w3.eth.get_block("latest")["timestamp"]))
        except (ChainError, OSError, Web3RPCError) as exc:  # the node did not answer
            if self.chain_error is None:
                log(logger, "chain.unreachable", level=logging.WARNING, error=repr(exc))
            self.chain_error = repr(exc)[:300]
            log(logger, "agent.pass_failed", level=logging.WARNING, error=str(exc))
        else:
            if self.chain_error is not None:
                log(logger, "chain.back", was=self.chain_error)
            self.chain_error = None
            self._answered_at = time.monotonic()
        self.passes += 1

    def resume_pending(self) -> None:
        """Broadcast again, and confirm, the actions signed but not known to be mined (a
        broadcast an outage interrupted); then the nonce is read from the chain."""
        pending = {(a.job_id, a.kind) for a in self.store.pending_actions()}
        now = time.monotonic()
        self._pending_since = {k: self._pending_since.get(k, now) for k in pending}
        if not pending:
            return
        outcomes = self.actions.resume()
        log(logger, "actions.resumed", count=len(outcomes), statuses=[o.status for o in outcomes])
        self._pending_since = {
            (a.job_id, a.kind): self._pending_since.get((a.job_id, a.kind), now)
            for a in self.store.pending_actions()
        }

    # -- 1. scan --------------------------------------------------------------------------

    def scan(self) -> int:
        """Record the events of the blocks after the cursor, up to the head less the confirmations;
        returns how many job events were handled. A reorg rolls back the jobs it touched first."""
        handled = 0

        def record(events: list[Event]) -> None:
            nonlocal handled
            for event in events:
                if isinstance(getattr(event, "job_id", None), bytes):
                    self.handle(event)
                    handled += 1

        while self.feed.step(record, self.rebuild):
            pass
        return handled

    def rebuild(self, fork: int, touched: Sequence[Any]) -> None:
        """After a reorg back to block ``fork``: fold each job it touched again from its events up to
        the fork (the feed then reads the new chain after it)."""
        for job in touched:
            job_id = bytes.fromhex(str(job)[2:])
            events = self.feed.read(self.feed.start_block, fork, job_id=job_id)
            with self.store.transaction():
                self.store.forget_job(str(job))
                for event in events:
                    self.handle(event)
            log(logger, "job.rebuilt", level=logging.WARNING, job_id=job, fork=fork, events=len(events))
            self._forget_dropped_actions(str(job))

    def _forget_dropped_actions(self, job_id: str) -> None:
        """Forget the job's actions whose transaction the reorg took back (no receipt on the chain
        that stands): the duty is decided again from the rebuilt job, so a dropped ``finalize``
        (or ``expire``, ``challenge``) is sent again if the chain still asks for it. The account's
        nonce went back with them: it is read from the chain again."""
        dropped = []
        for action in self.store.actions(job_id=job_id):
            if action.status not in ("mined", "failed") or action.tx_hash is None:
                continue
            try:
                self.w3.eth.get_transaction_receipt(HexBytes(action.tx_hash))
            except TransactionNotFound:
                self.store.forget_action(job_id, action.kind)
                dropped.append(action.kind)
        if dropped:
            self.actions.sender.nonces.resync()
            log(logger, "action.dropped_by_reorg", level=logging.WARNING, job_id=job_id, kinds=dropped)

    def handle(self, event: Event) -> None:
        """Fold one market event into the stored job: its state by the lifecycle's rule
        (:class:`~tender.chain.JobView`), and what the agent's duties need (deadlines, output, challenger)."""
        job_id = getattr(event, "job_id", None)
        if not isinstance(job_id, bytes):
            return
        job = "0x" + job_id.hex()
        market = self._by_address.get(Web3.to_checksum_address(event.address), "?")
        row = self.store.job(job)
        before = JobView(job_id, state=row.state if row is not None else JobState.NONE)
        fields: dict[str, Any] = {"state": before.apply(event).state}
        if isinstance(event, IntentPosted):
            wrapper = self.markets.get(market)
            if wrapper is not None and wrapper.auction is AuctionType.REVERSE:
                wrapper.remember(event)  # its terms, for the keeper's award or refund
            fields.update(
                proof_mode=int(event.intent.proof_mode),
                detail={
                    "intent": event.intent.to_json(),
                    "escrow": str(event.escrow),
                    "auctionEnd": event.auction_end,
                },
            )
        elif isinstance(event, Awarded):
            fields.update(provider=event.provider, deadline=event.provider_deadline)
        elif isinstance(event, FailedOver):  # its Awarded (same transaction, just before) set the deadline
            fields.update(provider=event.to)
        elif isinstance(event, Delivered):
            fields.update(
                challenge_deadline=event.dispute_end,
                verdict=None,
                detail={"output": [str(v) for v in event.output], "deliver_block": event.block_number},
            )
        elif isinstance(event, AuditRequired):
            fields.update(challenge_deadline=event.proof_deadline)
        elif isinstance(event, Challenged):
            fields.update(
                challenge_deadline=event.proof_deadline,
                detail={"challenger": event.challenger, "bond": str(event.bond)},
            )
        elif isinstance(event, Proved):
            if row is not None and row.detail.get("challenger") == self.address:
                self.store.add_reward(
                    tx_hash=Web3.to_hex(event.tx_hash),
                    log_index=event.log_index,
                    job_id=job,
                    kind="bonds_lost",
                    amount=-event.bond_paid,
                    block=event.block_number,
                )
        elif isinstance(event, Slashed):
            if row is not None and row.detail.get("challenger") == self.address and event.to_challenger:
                self.store.add_reward(
                    tx_hash=Web3.to_hex(event.tx_hash),
                    log_index=event.log_index,
                    job_id=job,
                    kind="challenge",
                    amount=event.to_challenger,
                    block=event.block_number,
                )
            log(
                logger,
                "job.slashed",
                job_id=job,
                to_challenger=event.to_challenger,
                to_requester=event.to_requester,
            )
        self.store.upsert_job(job, market, **fields)
        self.store.touch(job, event.block_number)

    # -- 2. judge -------------------------------------------------------------------------

    def model(self, model_id: bytes) -> tuple[dict[str, Any], Bundle | None]:
        """The registry record of a model and the local bundle that computes it (cached)."""
        if model_id not in self._models:
            info = self.registry.model(model_id)
            record = {
                "verifier": info.verifier,
                "inputBinding": info.input_binding,
                "commitmentIndex": info.commitment_index,
                "outputOffset": info.output_offset,
                "outputLength": info.output_length,
                "instanceCount": info.instance_count,
            }
            self._models[model_id] = (record, self.catalogue.find(info.onnx_sha256, info.settings_hash))
        return self._models[model_id]

    def judge_pending(self) -> None:
        for row in self.store.jobs(JobState.DELIVERED):
            if row.verdict is None and row.proof_mode == int(ProofMode.OPTIMISTIC):
                verdict, reason = self.judge_job(row.job_id, row.detail)
                self.store.upsert_job(row.job_id, row.market, verdict=verdict, detail={"reason": reason})
                log(
                    logger,
                    "job.judged",
                    level=logging.WARNING if verdict == "wrong" else logging.INFO,
                    job_id=row.job_id,
                    verdict=verdict,
                    reason=reason,
                )

    def judge_job(self, job_id: str, detail: dict[str, Any]) -> tuple[str, str]:
        """``(verdict, reason)``; verdict is ``right``, ``wrong`` or why it could not judge."""
        intent_json = detail.get("intent")
        if intent_json is None:
            return "unknown", "the intent was posted before the scanned range"
        intent = Intent.from_json(intent_json)
        _, bundle = self.model(bytes(intent.model_id))
        if bundle is None:
            return "no_bundle", "no local bundle for this model"
        try:
            fetched = fetch_input(
                bytes(intent.input_location),
                timeout=self.settings.input_timeout_s,
                max_bytes=self.settings.max_input_bytes,
            )
            actual = commitment_of(bundle, fetched.data)
        except InputUnavailable as exc:
            return "no_input", str(exc)
        except ValueError as exc:
            return "no_input", f"input does not fit the model: {exc}"
        if actual != intent.input_commitment:
            return "input_mismatch", str(CommitmentMismatch(intent.input_commitment, actual))
        output = [int(v) for v in detail.get("output", [])]
        try:
            judgement = judge(bundle, fetched.data, output)
        except (TenderError, RuntimeError, ValueError) as exc:
            return "error", f"re-execution failed: {exc}"
        return ("wrong" if judgement.wrong else "right"), judgement.reason

    # -- 3. act ---------------------------------------------------------------------------

    def act(self, now: int) -> None:
        """Send every duty that is due at chain time ``now``."""
        margin = self.settings.challenge_margin_s
        keeping = self.settings.award or self.settings.refund
        for row in self.store.jobs(
            *((JobState.OPEN,) if keeping else ()),
            JobState.AWARDED,
            JobState.DELIVERED,
            JobState.CHALLENGED,
            JobState.PROOF_REQUIRED,
        ):
            job = bytes.fromhex(row.job_id[2:])
            market = self.markets.get(row.market)
            if market is None:
                continue
            if row.state is JobState.OPEN:
                self.keep(row, market, now)
                continue
            if row.state is JobState.DELIVERED and row.verdict == "wrong" and self.settings.challenge:
                if row.challenge_deadline is not None and now < row.challenge_deadline - margin:
                    self._do(row.job_id, "challenge", market.fn.challenge(job))
                    continue
                if self.store.action(row.job_id, "challenge") is None:
                    self.store.record_skipped(row.job_id, "challenge", "the challenge window was closing")
                    log(logger, "challenge.missed", level=logging.ERROR, job_id=row.job_id)
            if row.state is JobState.AWARDED and self.settings.expire and row.deadline and now > row.deadline:
                self._do(row.job_id, f"expire:{row.provider}", market.fn.expire(job))
            elif (
                row.state is JobState.DELIVERED
                and self.settings.finalize
                and _due(row.challenge_deadline, now, at=True)
            ):
                # unchallenged (or too late to challenge) and the window has closed: settle it
                self._do(row.job_id, "finalize", market.fn.finalize(job))
            elif (
                row.state in (JobState.CHALLENGED, JobState.PROOF_REQUIRED)
                and self.settings.expire
                and _due(row.challenge_deadline, now)
            ):
                self._do(row.job_id, "slash", market.fn.expire(job))

    def keep(self, row: JobRow, market: Market, now: int) -> None:
        """The keeper's duty for a job the agent's feed shows open at chain time ``now``: once
        ``keeper_grace_s`` past its auction's end (its solver's turn), award it if it can still
        be awarded (a reverse auction with a bid on its book, before the deadline), else refund
        it once the market allows. The chain decides: the job is read from the market first (a
        reorg the feed has not read yet may have awarded or dropped it), and an action of ours
        whose transaction a reorg took back is forgotten, so it is decided again."""
        grace = self.settings.keeper_grace_s
        stored_end = row.detail.get("auctionEnd")
        if stored_end is not None and now < int(stored_end) + grace:
            return  # the usual case: the solver closes its own auction
        job_id = bytes.fromhex(row.job_id[2:])
        job = market.job(job_id)
        if job.state is not JobState.OPEN or now < job.auction_end + grace:
            return
        self._forget_dropped_actions(row.job_id)
        awardable = self.settings.award and market.auction == AuctionType.REVERSE and now < job.deadline
        if awardable and int(market.best_bid(job_id).provider, 16) != 0:
            tried = [a for a in self.store.actions(job_id=row.job_id) if a.kind.startswith("award")]
            if any(a.status in ("signed", "mined") for a in tried) or len(tried) >= _KEEPER_AWARDS:
                return  # on its way, or tried as often as we try: refunded after the deadline
            kind = "award" if not tried else f"award:{len(tried) + 1}"
            self._do(row.job_id, kind, market.award_fn(job_id))
            return
        if self.settings.refund:
            # reverse: no bid on the book, or past the deadline; Dutch: past the window
            self._do(row.job_id, "refund", market.refund_fn(job_id))

    def _do(self, job_id: str, kind: str, function: Any) -> Outcome | None:
        try:
            outcome = self.actions.send(job_id, kind, function)
        except ContractRevert as exc:
            # Would revert now (already done by someone else, or not yet due): nothing was sent.
            # A challenge that reverts for another reason (no bond money) is worth a warning.
            quiet = exc.name in _EXPECTED_REVERTS
            log(
                logger,
                "action.would_revert",
                level=logging.DEBUG if quiet else logging.WARNING,
                job_id=job_id,
                kind=kind,
                revert=str(exc),
            )
            return None
        except TransactionFailed as exc:
            log(logger, "action.pending", level=logging.WARNING, job_id=job_id, kind=kind, error=str(exc))
            return None
        if outcome.status in ("mined", "failed") and outcome.receipt is not None:
            receipt = outcome.receipt
            cost = int(receipt["gasUsed"]) * int(receipt.get("effectiveGasPrice", 0))
            self.store.add_reward(
                tx_hash=Web3.to_hex(receipt["transactionHash"]),
                log_index=-1,
                job_id=job_id,
                kind="gas_spent_wei",
                amount=-cost,
                block=int(receipt["blockNumber"]),
            )
        if outcome.status == "mined":
            log(logger, f"job.{kind.split(':')[0]}", job_id=job_id, gas=outcome.gas_used)
        elif outcome.status == "failed":
            log(
                logger,
                "action.reverted",
                level=logging.WARNING,
                job_id=job_id,
                kind=kind,
                error=outcome.error,
            )
        return outcome

    # -- relay ----------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """Whether the agent can do its duties (``ok``), and why not: the chain unreachable on
        the last pass, an action signed but unmined for ``stuck_after_s``, the feed more than
        ``max_feed_lag_blocks`` behind the head."""
        reasons: list[str] = []
        if self.chain_error is not None:
            reasons.append(f"chain unreachable: {self.chain_error}")
        now = time.monotonic()
        stuck = sorted(
            f"{kind} {job}"
            for (job, kind), since in self._pending_since.items()
            if now - since > self.settings.stuck_after_s
        )
        if stuck:
            reasons.append(f"{len(stuck)} action(s) not mined after {self.settings.stuck_after_s:g} s")
        lag = max(0, self.feed.head - self.config.chain.confirmations - self.feed.position)
        if lag > self.settings.max_feed_lag_blocks:
            reasons.append(f"feed {lag} blocks behind the head")
        return {
            "ok": not reasons,
            "reasons": reasons,
            "chainId": self.chain_id,
            "address": self.address,
            "cursor": self.store.cursor,
            "passes": self.passes,
            "chain": {
                "reachable": self.chain_error is None,
                "error": self.chain_error,
                "lastAnswerAgoS": round(now - self._answered_at, 3),
            },
            "feed": {"position": self.feed.position, "head": self.feed.head, "lagBlocks": lag},
            "actions": {"pending": len(self._pending_since), "stuck": stuck},
        }

    async def relay(self, job_id: bytes, market_address: str, proof: bytes) -> tuple[str, str | None]:
        """Check a provider's proof off-chain and send ``prove`` for it."""
        return await asyncio.to_thread(self._relay_sync, job_id, market_address, proof)

    def _relay_sync(self, job_id: bytes, market_address: str, proof: bytes) -> tuple[str, str | None]:
        name = self._by_address.get(Web3.to_checksum_address(market_address))
        if name is None:
            raise RelayRefused(
                404, "unknown_market", f"this agent does not follow market {market_address}", "market"
            )
        market = self.markets[name]
        job = market.job(job_id)
        if job.state not in (JobState.CHALLENGED, JobState.PROOF_REQUIRED):
            raise RelayRefused(
                409, "not_disputed", f"job is {job.state.name.lower()}, nothing to prove", "jobId"
            )
        if not self.staking.is_authorized(job.provider, self.address):
            raise RelayRefused(
                403,
                "not_authorized",
                f"provider {job.provider} has not authorised {self.address} "
                "(Staking.setSolver) to prove for it",
            )
        info, bundle = self.model(bytes(job.model_id))
        if bundle is not None:
            output = list(market.output_of(job_id))
            instances = instances_for(info, int(job.input_commitment), output)
            commitment = int(job.input_commitment)
            candidate = Proof.of(bundle.card, output, instances, proof, input_commitment=commitment)
            if not verify(bundle, candidate):
                raise RelayRefused(
                    422, "bad_proof", "the proof does not verify for this job's output", "proof"
                )
        job_hex = "0x" + job_id.hex()
        try:
            outcome = self.actions.send(job_hex, "prove", market.fn.prove(job_id, proof))
        except ContractRevert as exc:  # the market refuses it (the verifier disagrees, the deadline passed)
            raise RelayRefused(422, "would_revert", f"prove would revert: {exc}", "proof") from exc
        if outcome.status == "duplicate":
            action = self.store.action(job_hex, "prove")
            return "duplicate", action.tx_hash if action else None
        tx = Web3.to_hex(outcome.receipt["transactionHash"]) if outcome.receipt else None
        if outcome.status != "mined":
            raise RelayRefused(409, "reverted", outcome.error or "prove reverted")
        return "mined", tx


def _due(deadline: int | None, now: int, *, at: bool = False) -> bool:
    """Whether chain time ``now`` is past ``deadline`` (or at it, when ``at``)."""
    if deadline is None:
        return False
    return now >= deadline if at else now > deadline


def run_agent(config: VerifierConfig, *, key: str | None = None) -> int:
    """Serve the agent until SIGTERM/SIGINT; the exit code."""
    from tender.daemon import serve

    started = time.monotonic()
    code = serve(Agent(config, key=key))
    log(logger, "agent.exited", code=code, seconds=round(time.monotonic() - started, 1))
    return code
