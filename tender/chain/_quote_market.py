"""The quote market (``QuoteMarket``): one-transaction award from a signed quote, zk settlement,
result commitments. Its shared views and payouts are those of :class:`~tender.chain.Market`."""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum

from web3 import Web3
from web3.types import TxReceipt

from tender.chain._events import BatchAwardSkipped, BatchDelivered, BatchJobSkipped, QuoteAwarded
from tender.chain._jobs import JobState
from tender.chain._market import Market
from tender.errors import ChainError
from tender.intents import AuctionType, Intent
from tender.quotes import Quote, QuotedJob, commitment_digest, quote_digest

#: ``deliverBatch``'s padding slot: a proof slot that is nobody's job.
PADDING_JOB = bytes(32)


class BatchSkip(IntEnum):
    """Why ``deliverBatch`` skipped a job (``BatchJobSkipped.reason``; ``SKIP_*`` in
    ``IQuoteMarket.sol``). The job stays as it was."""

    NOT_AWARDED = 1  # settled (also earlier in the same batch), expired, slashed or never opened
    TERMS_MISMATCH = 2
    OTHER_MODEL = 3
    NOT_AUTHORIZED = 4  # the sender is not the job's provider nor its solver
    LATE = 5
    INPUT_MISMATCH = 6  # polycommit: the slot's point is not the job's input commitment


class AwardSkip(IntEnum):
    """Why ``openAwardedBatch`` skipped an entry (``BatchAwardSkipped.reason``; ``AWARD_SKIP_*``
    in ``IQuoteMarket.sol``): what the clock and other accounts decided after the batch was
    built. Nothing of the entry was recorded; the others were awarded."""

    LATE = 1  # the intent or the quote expired, or the deadline no longer leaves the latency
    SIGNATURE = 2  # the acceptance or the quote signature no longer checks (solver, ERC-1271)
    NONCE = 3  # used or cancelled (also by an earlier entry of the same batch)
    STAKE = 4  # the provider cannot hold it beside its earlier entries
    ESCROW = 5  # the requester cannot pay it beside its earlier entries


class QuoteMarket(Market):
    """A ``QuoteMarket`` deployment (``deployment.market("quote")``).

    Example::

        market = QuoteMarket(w3, deployment.market("quote"), sender=requester)
        receipt = market.open_awarded(intent, quote, quote_signature)
        terms = market.terms_in(receipt)          # what deliver/expire/slash_commitment pass back
        market.using(provider).deliver(job_id, terms, output, proof)

    The market stores one word per job (its state and a hash of its :class:`QuotedJob` terms);
    later calls pass the terms again, as read from the ``QuoteAwarded`` event.
    """

    ARTIFACT = "QuoteMarket"
    AUCTION = AuctionType.QUOTE

    # -- digests (computed locally; the contract's hash* views agree, see the tests) ----------

    def quote_digest(self, quote: Quote) -> bytes:
        """What the provider signs (and the requester, to accept the quote for a relayer)."""
        return quote_digest(quote, chain_id=self.chain_id, market=self.address)

    def commitment_digest(self, job_id: bytes, output_hash: bytes) -> bytes:
        return commitment_digest(job_id, output_hash, chain_id=self.chain_id, market=self.address)

    def hash_quote(self, quote: Quote) -> bytes:
        """``hashQuote`` as the contract computes it."""
        return bytes(self._call(self.fn.hashQuote(quote.to_abi())))

    def hash_commitment(self, job_id: bytes, output_hash: bytes) -> bytes:
        return bytes(self._call(self.fn.hashCommitment(job_id, output_hash)))

    # -- steps --------------------------------------------------------------------------

    def open_awarded(
        self, intent: Intent, quote: Quote, quote_signature: bytes, acceptance: bytes = b""
    ) -> TxReceipt:
        """Open ``intent`` and award it to ``quote.provider`` in one transaction. The sender is
        the requester (``acceptance`` empty) or a relayer carrying the requester's signature of
        :meth:`quote_digest` as ``acceptance``. Charges price + fee to the requester."""
        return self._send(self.fn.openAwarded(intent.to_abi(), quote.to_abi(), quote_signature, acceptance))

    def open_awarded_batch(
        self,
        intents: Sequence[Intent],
        quotes: Sequence[Quote],
        quote_signatures: Sequence[bytes],
        acceptances: Sequence[bytes] | None = None,
    ) -> TxReceipt:
        """:meth:`open_awarded` for many entries in one transaction (entry i: ``intents[i]``,
        ``quotes[i]``, ``quote_signatures[i]``, ``acceptances[i]``; without ``acceptances`` the
        sender is every entry's requester). Any mix of requesters, providers and models; each
        requester is charged once. An entry spoiled after the batch was built (expired, a
        signature or nonce no longer good, too little stake or escrow beside the entries before
        it) is skipped (:meth:`award_outcome`) and the others are awarded; a malformed entry
        reverts the batch with :meth:`open_awarded`'s error."""
        # none: the contract takes the sender as every entry's requester (64 calldata bytes less each)
        accepts = [] if acceptances is None else list(acceptances)
        if not len(intents) == len(quotes) == len(quote_signatures) == (len(accepts) or len(intents)):
            raise ChainError(
                f"open_awarded_batch: {len(intents)} intents, {len(quotes)} quotes, "
                f"{len(quote_signatures)} quote signatures, {len(accepts)} acceptances"
            )
        return self._send(
            self.fn.openAwardedBatch(
                [i.to_abi() for i in intents],
                [q.to_abi() for q in quotes],
                [bytes(s) for s in quote_signatures],
                [bytes(a) for a in accepts],
            )
        )

    def award_outcome(self, receipt: TxReceipt) -> tuple[dict[int, QuotedJob], dict[int, AwardSkip]]:
        """The entries an ``open_awarded_batch`` receipt awarded (index -> the job's terms, what
        its later calls pass back), and the skipped ones with their reason."""
        awarded: list[QuotedJob] = []
        skipped: dict[int, AwardSkip] = {}
        for event in self.events_in(receipt):
            if isinstance(event, QuoteAwarded):
                awarded.append(event.terms)
            elif isinstance(event, BatchAwardSkipped):
                skipped[event.index] = AwardSkip(event.reason)
        # every entry has one of the two events, in entry order
        indices = [i for i in range(len(awarded) + len(skipped)) if i not in skipped]
        return dict(zip(indices, awarded, strict=True)), skipped

    def deliver_quoted(
        self, job_id: bytes, terms: QuotedJob, output: Sequence[int], proof: bytes
    ) -> TxReceipt:
        """Hand in the output with its proof (sender: the provider or its solver); settles at once."""
        return self._send(self.fn.deliver(job_id, terms.to_abi(), list(output), proof))

    def deliver_batch(
        self,
        model_id: bytes,
        job_ids: Sequence[bytes],
        terms: Sequence[QuotedJob],
        outputs: Sequence[Sequence[int]],
        proof: bytes,
    ) -> TxReceipt:
        """Settle up to ``batchSize`` jobs of the batch model ``model_id`` with one proof (sender:
        their provider or its solver). Slot i is ``job_ids[i]`` (:data:`PADDING_JOB` for a slot
        that is nobody's job) with ``terms[i]`` and ``outputs[i]`` (field elements), every slot of
        the proof given. A job failing its own checks is skipped (:meth:`batch_outcome`), the
        others settle; reverts when none can or the proof fails."""
        if not len(job_ids) == len(terms) == len(outputs):
            raise ChainError(
                f"deliver_batch: {len(job_ids)} job ids, {len(terms)} terms, {len(outputs)} outputs"
            )
        return self._send(
            self.fn.deliverBatch(
                model_id,
                [bytes(j) for j in job_ids],
                [t.to_abi() for t in terms],
                [[int(v) for v in out] for out in outputs],
                proof,
            )
        )

    def batch_outcome(self, receipt: TxReceipt) -> tuple[list[int], dict[int, BatchSkip]]:
        """The slots a ``deliver_batch`` receipt settled, and the skipped ones with their reason."""
        settled: list[int] = []
        skipped: dict[int, BatchSkip] = {}
        for event in self.events_in(receipt):
            if isinstance(event, BatchDelivered):
                settled = [i for i in range(event.settled.bit_length()) if event.settled >> i & 1]
            elif isinstance(event, BatchJobSkipped):
                skipped[event.slot] = BatchSkip(event.reason)
        return settled, skipped

    def expire_quoted(self, job_id: bytes, terms: QuotedJob) -> TxReceipt:
        """Past ``terms.due`` with nothing delivered: slash the lock to the requester, refund it."""
        return self._send(self.fn.expire(job_id, terms.to_abi()))

    def slash_commitment(
        self, job_id: bytes, terms: QuotedJob, delivered_hash: bytes, committed_hash: bytes, signature: bytes
    ) -> TxReceipt:
        """Penalise a provider whose signed result commitment differs from the output it proved."""
        return self._send(
            self.fn.slashCommitment(job_id, terms.to_abi(), delivered_hash, committed_hash, signature)
        )

    # -- views --------------------------------------------------------------------------

    def job_state(self, job_id: bytes) -> JobState:
        state, _ = self._call(self.fn.jobState(job_id))
        return JobState(int(state))

    def terms_in(self, receipt: TxReceipt) -> QuotedJob:
        """The terms of the job an ``open_awarded`` receipt awarded."""
        for event in self.events_in(receipt):
            if isinstance(event, QuoteAwarded):
                return event.terms
        raise ChainError("no QuoteAwarded event in this receipt")

    def is_nonce_used(self, owner: str, nonce: int) -> bool:
        return bool(self._call(self.fn.isNonceUsed(Web3.to_checksum_address(owner), nonce)))
