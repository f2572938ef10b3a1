"""The markets: one wrapper for both auction types (``ReverseAuctionMarket``, ``DutchAuctionMarket``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, ClassVar, Unpack

from web3 import Web3
from web3.types import TxReceipt

from tender.chain._base import ContractWrapper, WrapperOptions, view
from tender.chain._events import IntentPosted
from tender.chain._jobs import Job, JobState
from tender.chain._structs import DisputeTerms, MarketParams
from tender.chain._terms import OpenTerms
from tender.chain._token import Token
from tender.intents import AuctionType, Bid, Intent, ProofMode
from tender.intents import job_id as compute_job_id

_ARTIFACTS = {
    AuctionType.REVERSE: "ReverseAuctionMarket",
    AuctionType.DUTCH: "DutchAuctionMarket",
    # the shared views and payouts (owed, withdraw, params, events); its own steps: ``QuoteMarket``
    AuctionType.QUOTE: "QuoteMarket",
}


class Market(ContractWrapper):
    """A Tender market; the auction type picks the artefact (reverse by default).

    Example::

        market = Market(w3, deployment.market("dutch"), auction=AuctionType.DUTCH, sender=requester)
        receipt = market.post(intent)
        job = market.job(market.job_id(intent))

    Payments are pulled, never pushed: a settlement credits the provider (and the requester's
    unspent escrow), a refund or an expiry credits the requester (with the slashed stake as
    compensation), a successful challenger is credited its bond back and its reward.
    :meth:`owed` reads the credit, :meth:`withdraw` pays it out.
    An escrow or a challenge bond is taken from the payer's credit when that covers all of it,
    else from its token allowance (:meth:`ensure_funding` approves only when needed).
    """

    ARTIFACT = "ReverseAuctionMarket"
    #: the auction type when none is given (a subclass bound to one market kind sets its own)
    AUCTION: ClassVar[AuctionType] = AuctionType.REVERSE

    def __init__(
        self,
        w3: Web3,
        address: str,
        *,
        auction: AuctionType | None = None,
        **options: Unpack[WrapperOptions],
    ) -> None:
        self.auction = AuctionType(self.AUCTION if auction is None else auction)
        super().__init__(w3, address, **options)
        self._chain_id: int | None = None
        #: reverse jobs' terms, read once from their ``IntentPosted`` (:meth:`terms`)
        self._terms: dict[bytes, OpenTerms] = {}

    def _artifact_name(self) -> str:
        return _ARTIFACTS[self.auction]

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(self.w3.eth.chain_id)
        return self._chain_id

    # -- intents ------------------------------------------------------------------------

    def job_id(self, intent: Intent) -> bytes:
        """The job id of ``intent`` on this market, computed locally (no RPC)."""
        return compute_job_id(intent, chain_id=self.chain_id, market=self.address)

    def hash_intent(self, intent: Intent) -> bytes:
        """The job id as the contract computes it (``hashIntent``)."""
        return bytes(self._call(self.fn.hashIntent(intent.to_abi())))

    def post(self, intent: Intent) -> TxReceipt:
        """Post an intent from its requester (the sender), escrowing ``max_price`` plus the fee
        (from the requester's credit in the market when it covers that, else its allowance)."""
        return self._send(self.fn.post(intent.to_abi()))

    def submit_signed(self, intent: Intent, signature: bytes) -> TxReceipt:
        """Post an intent signed off-chain by its requester (anyone may relay it); the escrow is
        taken from the requester as :meth:`post` takes it."""
        return self._send(self.fn.submitSigned(intent.to_abi(), signature))

    def invalidate_nonces(self, word: int, mask: int) -> TxReceipt:
        """Burn the sender's nonces whose bits are set in ``mask`` within bitmap ``word``."""
        return self._send(self.fn.invalidateNonces(word, mask))

    def nonce_bitmap(self, owner: str, word: int) -> int:
        """The bitmap word ``word`` of ``owner``'s used nonces."""
        return int(self._call(self.fn.nonceBitmap(owner, word)))

    # -- reverse auction ----------------------------------------------------------------

    def terms(self, job_id: bytes) -> OpenTerms:
        """A reverse job's terms, rebuilt from its ``IntentPosted`` (read once, then cached).

        Raises:
            LookupError: no ``IntentPosted`` of ``job_id`` on this market.
        """
        job_id = bytes(job_id)
        cached = self._terms.get(job_id)
        if cached is not None:
            return cached
        for event in self.events(names=["IntentPosted"], job_id=job_id):
            if isinstance(event, IntentPosted):
                self.remember(event)
        if job_id not in self._terms:
            raise LookupError(f"no IntentPosted for job 0x{job_id.hex()} on {self.address}")
        return self._terms[job_id]

    def remember(self, event: IntentPosted) -> OpenTerms:
        """Keep the terms of the job ``event`` opened (a role that reads ``IntentPosted`` anyway
        saves :meth:`terms` its log query); a reorg that re-posts the job replaces them."""
        terms = OpenTerms.from_event(event)
        self._terms[bytes(event.job_id)] = terms
        return terms

    def forget(self, job_id: bytes) -> None:
        """Drop a job's cached terms (after ``TermsMismatch``: a reorg moved its posting)."""
        self._terms.pop(bytes(job_id), None)

    def bid_fn(self, job_id: bytes, bid: Bid) -> Any:
        """The ``bid`` call for ``job_id`` with its terms (to send through a transaction manager)."""
        return self.fn.bid(job_id, self.terms(job_id).auction.to_abi(), bid.to_abi())

    def award_fn(self, job_id: bytes) -> Any:
        """The ``award`` call for ``job_id`` with its terms."""
        terms = self.terms(job_id)
        return self.fn.award(job_id, terms.auction.to_abi(), terms.job.to_abi())

    def refund_fn(self, job_id: bytes) -> Any:
        """The ``refund`` call for ``job_id`` (a reverse job's with its terms)."""
        if self.auction is not AuctionType.REVERSE:
            return self.fn.refund(job_id)
        terms = self.terms(job_id)
        return self.fn.refund(job_id, terms.auction.to_abi(), terms.job.to_abi())

    def bid(self, job_id: bytes, bid: Bid) -> TxReceipt:
        """Offer ``bid`` on a reverse-auction job (sender: the provider or its solver)."""
        return self._send(self.bid_fn(job_id, bid))

    def award(self, job_id: bytes) -> TxReceipt:
        """Close a reverse auction after its window: the best bid wins at the second-score price."""
        return self._send(self.award_fn(job_id))

    def best_bid(self, job_id: bytes) -> Bid:
        return Bid.from_abi(self._call(self.fn.bestBid(job_id)))

    def runner_up(self, job_id: bytes) -> Bid:
        return Bid.from_abi(self._call(self.fn.runnerUp(job_id)))

    def score_of(self, job_id: bytes, price: int, latency: int) -> int:
        """A bid's score for the job (lower wins; 0 if the job is unknown)."""
        try:
            terms = self.terms(job_id)
        except LookupError:
            return 0
        return int(self._call(self.fn.scoreOf(terms.auction.to_abi(), price, latency)))

    def clearing_price(self, job_id: bytes) -> int:
        """The price the current best bid would be paid if awarded now (the job is Open)."""
        return int(self._call(self.fn.clearingPrice(job_id, self.terms(job_id).auction.to_abi())))

    # -- Dutch auction ------------------------------------------------------------------

    def fill(self, job_id: bytes, provider: str, latency: int) -> TxReceipt:
        """Take a Dutch-auction job at the current price for ``provider`` (sender: it or its solver)."""
        return self._send(self.fn.fill(job_id, provider, latency))

    def current_price(self, job_id: bytes) -> int:
        """A Dutch job's price at the latest block (``maxPrice`` after the window)."""
        return int(self._call(self.fn.currentPrice(job_id)))

    # -- delivery and settlement --------------------------------------------------------

    def deliver(self, job_id: bytes, output: Sequence[int], proof: bytes = b"") -> TxReceipt:
        """Hand in the output (field elements) and, in zk mode, the proof (zk: settles now)."""
        return self._send(self.fn.deliver(job_id, list(output), proof))

    def challenge(self, job_id: bytes) -> TxReceipt:
        """Dispute an optimistic delivery (the challenge bond is taken from the sender's credit
        in the market when it covers the bond, else pulled from its allowance)."""
        return self._send(self.fn.challenge(job_id))

    def prove(self, job_id: bytes, proof: bytes) -> TxReceipt:
        """Answer a challenge or audit with a proof; the job settles."""
        return self._send(self.fn.prove(job_id, proof))

    def finalize(self, job_id: bytes) -> TxReceipt:
        """Settle an unchallenged optimistic delivery once its window has closed."""
        return self._send(self.fn.finalize(job_id))

    def expire(self, job_id: bytes) -> TxReceipt:
        """Time out a job past its provider's deadline, or a dispute left unproven."""
        return self._send(self.fn.expire(job_id))

    def refund(self, job_id: bytes) -> TxReceipt:
        """Credit the escrow of a job that was never awarded back to its requester."""
        return self._send(self.refund_fn(job_id))

    def draw_audit(self, job_id: bytes) -> TxReceipt:
        """Draw whether an optimistic delivery is audited, from the hash of the block after it
        (anyone, from two blocks after the delivery on; ``finalize`` draws itself if nobody did)."""
        return self._send(self.fn.drawAudit(job_id))

    def decline(self, job_id: bytes) -> TxReceipt:
        """Give back an awarded job without penalty (the provider or its solver, within the
        first quarter of the promised latency): for an input that does not match its commitment.
        The job fails over to the runner-up or is refunded; the stake stays locked until the
        provider's deadline, then :meth:`release_declined` frees it."""
        return self._send(self.fn.decline(job_id))

    def release_declined(self, job_id: bytes, provider: str) -> TxReceipt:
        """Free the stake a declined job locked, once its provider deadline has passed (anyone)."""
        return self._send(self.fn.releaseDeclined(job_id, Web3.to_checksum_address(provider)))

    # -- what the market owes -----------------------------------------------------------

    def owed(self, account: str) -> int:
        """What the market owes ``account`` (payments, refunds, compensation, bonds and rewards), which
        :meth:`withdraw` pays out and which funds the account's next escrow or bond first."""
        return int(self._call(self.fn.owed(Web3.to_checksum_address(account))))

    def withdraw(self) -> TxReceipt:
        """Pay the sender everything the market owes it (works while the market is paused).

        Raises:
            ContractRevert: ``NothingOwed`` when the market owes the sender nothing.
        """
        return self._send(self.fn.withdraw())

    def withdrawn_in(self, receipt: TxReceipt) -> int:
        """What this market's ``Withdrawn`` events in ``receipt`` paid out."""
        return sum(int(getattr(e, "amount", 0)) for e in self.events_in(receipt) if e.name == "Withdrawn")

    def covered_by_credit(self, account: str, amount: int) -> bool:
        """Whether the market takes ``amount`` (an escrow, a bond) from ``account``'s credit:
        only when the credit covers all of it; otherwise all of it comes from the allowance."""
        return self.owed(account) >= amount

    def ensure_funding(self, amount: int) -> TxReceipt | None:
        """Make sure the market can take ``amount`` from the sender: nothing to do when the
        sender's credit covers it, else approve ``amount`` unless the allowance already does."""
        me = self._me()
        if self.covered_by_credit(me, amount):
            return None
        token = Token(self.w3, self.token(), sender=self.sender, artifacts_dir=self._artifacts_dir)
        return token.ensure_allowance(self.address, amount)

    # -- owner --------------------------------------------------------------------------

    def set_params(self, params: MarketParams) -> TxReceipt:
        """Schedule ``params``: they apply after the market's delay, through :meth:`apply_params`,
        and only to jobs posted after that (a live job keeps the terms it was posted with)."""
        return self._send(self.fn.setParams(params.to_abi()))

    def apply_params(self) -> TxReceipt:
        """Apply the scheduled parameters once their time has come (anyone)."""
        return self._send(self.fn.applyParams())

    def pending_params(self) -> tuple[MarketParams, int] | None:
        """The scheduled parameters and when they may be applied; ``None`` when none are."""
        params, effective_at = self._call(self.fn.pendingParams())
        return (MarketParams.from_abi(params), int(effective_at)) if int(effective_at) else None

    def set_treasury(self, treasury: str) -> TxReceipt:
        return self._send(self.fn.setTreasury(treasury))

    def withdraw_fees(self) -> TxReceipt:
        """Pay the fees accrued by settlements to the treasury (anyone may send it)."""
        return self._send(self.fn.withdrawFees())

    def pause(self) -> TxReceipt:
        return self._send(self.fn.pause())

    def unpause(self) -> TxReceipt:
        return self._send(self.fn.unpause())

    # -- views --------------------------------------------------------------------------

    def job(self, job_id: bytes) -> Job:
        """The job's record (``state`` is ``JobState.NONE`` for an unknown id). An Open reverse job's
        record holds only its state on chain: its terms fill the rest (:meth:`terms`)."""
        job = Job.from_abi(job_id, self._call(self.fn.job(job_id)), self._job_components)
        if job.state is not JobState.OPEN or self.auction is not AuctionType.REVERSE:
            return job
        terms = self.terms(job_id)
        t, j = terms.auction, terms.job
        return replace(
            job,
            requester=j.requester,
            proof_mode=ProofMode(j.proof_mode),
            allow_failover=j.allow_failover,
            price_weight_bps=t.price_weight_bps,
            fee_bps=j.fee_bps,
            callback_gas_limit=j.callback_gas_limit,
            max_price=t.max_price,
            min_stake=t.min_stake,
            posted_at=j.posted_at,
            stake_multiple=t.stake_multiple,
            auction_end=t.auction_end,
            deadline=t.deadline,
            model_id=j.model_id,
            input_commitment=j.input_commitment,
        )

    @property
    def _job_components(self) -> list[dict[str, Any]]:
        entry = next(e for e in self.artifact.entries("function") if e["name"] == "job")
        return list(entry["outputs"][0]["components"])

    def provider_deadline(self, job_id: bytes) -> int:
        """min(deadline, awardedAt + latency); 0 while not awarded."""
        return int(self._call(self.fn.providerDeadline(job_id)))

    def output_of(self, job_id: bytes) -> tuple[int, ...]:
        """The stored output of an optimistic delivery (empty for zk jobs)."""
        return tuple(int(x) for x in self._call(self.fn.outputOf(job_id)))

    def is_nonce_used(self, owner: str, nonce: int) -> bool:
        return bool(self._call(self.fn.isNonceUsed(owner, nonce)))

    def escrow_for(self, max_price: int) -> int:
        """What ``post`` escrows from the requester for ``max_price`` (the fee included)."""
        return int(self._call(self.fn.escrowFor(max_price)))

    params = view("params", MarketParams.from_abi, "The parameters new jobs are posted with.")

    def dispute_terms(self, job_id: bytes) -> DisputeTerms:
        """The dispute terms an optimistic job was posted with (all zero for a zk job)."""
        return DisputeTerms.from_abi(self._call(self.fn.disputeTerms(job_id)))

    domain_separator = view("DOMAIN_SEPARATOR", bytes)
    auction_type = view("auctionType", AuctionType)
    token = view("token", str)
    registry = view("registry", str)
    staking = view("staking", str)
    treasury = view("treasury", str)
    fees_owed = view("feesOwed", int, "Fees accrued by settlements and not yet paid to the treasury.")
