"""Gas of every market step, measured from real receipts on Anvil.

Runs each lifecycle once on a fresh Anvil (reverse auction with zk settlement, signed intent
with a Dutch fill, optimistic delivery with challenge/prove and with finalize, a silent
provider's expiry, a withdrawal) and writes ``benchmarks/results/gas.json``; prints a rich table.

The markets pay by crediting ``owed`` and paying it out on ``withdraw``. Figures are steady
state, as for any active account: every slot a step credits is already non-zero from an earlier
job (a warm-up job on the Dutch market, a first job on the reverse one), and payees already hold
tokens. ``settle_zk_first`` is the same zk settlement as ``settle_zk`` crediting two empty
slots (the provider's and the requester's first credit in that market: 2 x ~17k more);
``settle_overhead_first`` its overhead. ``withdraw`` pays a provider what it is owed;
``post_from_credit`` is a ``post`` whose escrow the requester's credit covers (no transfer).
``bid_pushout`` is a third provider's bid that pushes the runner-up off a full reverse-auction
book at the runner-up's latency (on a job of its own, run last); ``bid_pushout_lead`` the costliest
bid: a third provider that takes the lead at a new latency (both book slots, both latencies and
two Staking accounts written).
Nonces are sequential, as the SDK picks them: ``post`` is the requester's second intent on the
reverse market (its nonce word already non-zero); ``post_fresh_nonce_word`` its first (a fresh
word, ~17k more).

The zk steps use the sample EZKL verifier when a built ``mlp`` bundle sits in the cache
(``tender models build``): a real proof of a real inference is delivered and verified on
chain. Without a bundle a 42-byte raw-EVM mock verifier stands in and the JSON says so.

``verifier_call`` is the gas of the ``verifyProof`` call inside the settling ``deliver``
(``debug_traceTransaction`` with the call tracer); ``verifier_tx`` is the same proof verified
by a transaction sent straight to the verifier (21,000 base and the proof's calldata
included). ``settle_overhead = settle_zk - verifier_tx`` compares like with like: what
settling through the market costs beyond verifying the same proof alone (instance building,
the provider's and the requester's credits, fee, stake unlock, events, the output's calldata).
``settle_overhead_vs_inner_call`` also counts the base fee and the proof's calldata.

``batch{N}_per_query`` (N = 4, 16): the whole lifecycle of N queries on the quote market settled
by one proof, divided by N: one ``openAwardedBatch`` (N entries, each from its own signed quote;
one requester, one provider: one escrow pull, one stake check) and one ``deliverBatch`` with a
real EZKL proof of N inferences from the cached ``mlp-batch{N}`` bundle (hashed inputs;
``tender model build --batch N --input-visibility hashed``), after the single-query quote
lifecycle (warm provider and nonce-word slots). ``open_awarded_batch{N}`` is the
``openAwardedBatch`` transaction alone (``open_awarded_batch{N}_per_query`` / N, against
``open_awarded`` for one job per transaction); ``batch{N}_deliver`` the ``deliverBatch``
transaction alone; ``batch_calldata_bytes_per_query`` the lifecycle's calldata / N.
Skipped (no key) with ``--mock`` or when the bundle cannot be built.

Run: ``python benchmarks/gas.py [--mock] [--strict]`` (``--strict``: exit 1 on a missed target).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from eth_utils import keccak
from eth_utils.abi import abi_to_signature
from rich.console import Console
from rich.table import Table
from web3 import Web3

from tender.anvil import DEV_KEYS, Anvil
from tender.chain import (
    TENDER_CONTRACTS,
    Awarded,
    Deployment,
    Market,
    ModelInfo,
    QuoteMarket,
    Registry,
    Staking,
    Token,
    TxSender,
    deploy,
    load_artifact,
)
from tender.intents import AuctionType, Bid, Intent, NonceSequence, ProofMode, sign_intent
from tender.quotes import Quote, sign_quote

RESULTS = Path(__file__).resolve().parent / "results" / "gas.json"
UNIT = 10**18
MOCK_VERIFIER = bytes.fromhex(
    "602a80600b6000396000f3600435600401803515601e576020013560f81c60011460005260206000f35b50600060005260206000f3"
)
TARGETS = {
    "post": 150_001,  # at most 150k
    "bid": 60_000,
    "dutch_fill": 150_000,
    "settle_overhead": 60_000,
    "open_awarded": 160_001,  # at most 160k
    "lifecycle_zk": 600_000,
    "batch16_per_query": 150_001,  # at most 150k
}
#: Jobs per proof of the batched lifecycles (``batch{N}_per_query``).
BATCH_SIZES = (4, 16)
#: Their input binding: hashed, the cheaper batch at N = 16 (docs/MODELS.md, "Batched settlement").
BATCH_BINDING: Final = "hashed"
#: The bids measured by ``Bench.pushout``: key, the bids in order ((bidder: 0 and 1 the providers,
#: 2 the newcomer), price, latency) of which the last is measured, and the rank it must get. The book
#: of the common cases is that of ``reverse_zk`` (4 and 6 tokens at 60 s); at 80% price weight,
#: 10 tokens cap and 3,540 s latency cap one token weighs as much as ~1,416 s.
PUSHOUT_CASES: Final = (
    # a third provider pushes the runner-up off a full book, at the runner-up's latency / at another
    ("bid_pushout", ((0, 4 * UNIT, 60), (1, 6 * UNIT, 60), (2, 5 * UNIT, 60)), 2),
    ("bid_pushout_new_latency", ((0, 4 * UNIT, 60), (1, 6 * UNIT, 60), (2, 5 * UNIT, 45)), 2),
    # ... and takes the lead, at a new latency / at the old leader's
    ("bid_pushout_lead", ((0, 4 * UNIT, 60), (1, 6 * UNIT, 60), (2, 3 * UNIT, 30)), 1),
    ("bid_pushout_lead_same_latency", ((0, 4 * UNIT, 60), (1, 6 * UNIT, 60), (2, 3 * UNIT, 60)), 1),
    # the lead changed once before (the runner-up is the first bidder): pushed out, by a runner-up / a leader
    ("bid_pushout_after_lead", ((0, 4 * UNIT, 60), (1, 3 * UNIT, 30), (2, 7 * UNIT // 2, 45)), 2),
    ("bid_pushout_lead_after_lead", ((0, 4 * UNIT, 60), (1, 3 * UNIT, 30), (2, 2 * UNIT, 45)), 1),
    # a second provider takes the lead from the first (no push-out)
    ("bid_lead", ((0, 4 * UNIT, 60), (1, 3 * UNIT, 30)), 1),
    # the runner-up lowers its own bid: staying runner-up / taking the lead
    ("bid_runner_up_replace", ((0, 4 * UNIT, 60), (1, 6 * UNIT, 60), (1, 5 * UNIT, 45)), 2),
    ("bid_runner_up_takes_lead", ((0, 4 * UNIT, 60), (1, 6 * UNIT, 60), (1, 3 * UNIT, 30)), 1),
    # the leader lowers its own bid at a new latency (bid_replace: at its latency)
    ("bid_replace_new_latency", ((0, 4 * UNIT, 60), (1, 6 * UNIT, 60), (0, 3 * UNIT, 30)), 1),
)
#: Every bid key (each must stay under the ``bid`` target).
BID_KEYS: Final = ("bid", "bid_runner_up", "bid_replace", *(case[0] for case in PUSHOUT_CASES))
#: The transactions of one zk query on each path (``lifecycle_zk*``, ``calldata_bytes``).
PATHS = {
    "quote": ("open_awarded", "settle_zk_quote"),
    "reverse": ("post", "bid", "bid_runner_up", "award", "settle_zk"),
    "dutch": ("submit_signed", "dutch_fill", "settle_zk_dutch"),
}


@dataclass
class ZkCase:
    """What a zk delivery needs: the verifier, the layout, and one valid (commitment, output, proof)."""

    verifier: str
    info: ModelInfo
    commitment: int
    output: list[int]
    proof: bytes
    instances: list[int]
    source: str


def _find_bundle() -> Path | None:
    """The sample MLP bundle (hashed input, as the market uses it), built or taken from the cache."""
    from tender import models
    from tender.paths import SAMPLE_MODELS

    onnx = SAMPLE_MODELS / "mlp" / "model.onnx"
    if not onnx.is_file():
        return None
    return models.build(onnx, SAMPLE_MODELS / "mlp" / "calibration.json").path


def _ezkl_case(w3: Web3, sender: TxSender, bundle_dir: Path) -> ZkCase:
    from tender import models

    bundle = models.Bundle.load(bundle_dir)
    verifier = models.deploy_verifier(w3, sender, bundle)
    x = [0.1 * ((i % 7) - 3) for i in range(bundle.card.input_size)]
    proof = models.prove(bundle, x)
    entry = models.registry_entry(bundle, verifier=verifier, owner=sender.address, chain_id=sender.chain_id)
    proof_bytes, instances = proof.calldata()
    assert proof.input_commitment is not None
    return ZkCase(
        verifier=verifier,
        info=ModelInfo.from_dict(entry),
        commitment=proof.input_commitment,
        output=list(proof.output_felts),
        proof=proof_bytes,
        instances=instances,
        source=f"ezkl bundle {bundle_dir.name} (logrows {bundle.card.logrows})",
    )


def _mock_case(sender: TxSender) -> ZkCase:
    verifier, _ = sender.deploy(MOCK_VERIFIER)
    output = [11, 22, 33]
    info = ModelInfo(
        onnx_sha256=b"\x01" * 32,
        settings_hash=b"\x02" * 32,
        verifier=verifier,
        commitment_index=0,
        output_offset=1,
        output_length=len(output),
        instance_count=1 + len(output),
    )
    return ZkCase(
        verifier=verifier,
        info=info,
        commitment=0xC0FFEE,
        output=output,
        proof=b"\x01" + bytes(31),
        instances=[0xC0FFEE, *output],
        source="mock verifier (raw EVM, accepts proofs starting 0x01): no EZKL bundle in the cache",
    )


class Bench:
    """One deployment and its actors; each method runs one lifecycle and records gas."""

    def __init__(self, chain: Anvil, *, use_ezkl: bool) -> None:
        self.chain = chain
        self.w3 = Web3(Web3.HTTPProvider(chain.rpc_url))
        self.d: Deployment = deploy(self.w3, DEV_KEYS[0])
        self.gas: dict[str, int] = {}
        #: bytes of transaction input (calldata) by step: what an L2 posts to L1 for it
        self.calldata: dict[str, int] = {}
        #: the requester's nonces, sequential as the SDK picks them (`TenderClient`): one bitmap word
        #: per market, which every intent after a market's first flips a bit of
        self.nonces = NonceSequence()
        self.batch_calldata: dict[str, int] = {}
        self.use_ezkl = use_ezkl
        owner = TxSender(self.w3, DEV_KEYS[0])
        self.owner = owner
        bundle = _find_bundle() if use_ezkl else None
        self.zk = _ezkl_case(self.w3, owner, bundle) if bundle else _mock_case(owner)
        self.model_id = Registry(self.w3, self.d.registry, sender=owner).register_model(self.zk.info)
        token = Token(self.w3, self.d.token, sender=owner)
        self.requester = TxSender(self.w3, DEV_KEYS[1])
        self.providers = [TxSender(self.w3, DEV_KEYS[i]) for i in (2, 3)]
        self.relayer = TxSender(self.w3, DEV_KEYS[4])
        #: a third provider, whose bid on the reverse market pushes the runner-up off the book
        self.newcomer = TxSender(self.w3, DEV_KEYS[5])
        for who in (self.requester, self.relayer):
            token.mint(who.address, 10_000 * UNIT)
            for market in self.d.markets.values():
                token.using(who).approve(market, 2**256 - 1)
        # Steady state: every payee (providers, treasury) already holds tokens, so a withdrawal
        # does not pay the one-off 20k of a zero-to-nonzero balance.
        token.mint(owner.address, UNIT)
        for provider in (*self.providers, self.newcomer):
            token.mint(provider.address, 10_000 * UNIT)
            token.using(provider).approve(self.d.staking, 2**256 - 1)
            Staking(self.w3, self.d.staking, sender=provider).stake(9_000 * UNIT)

    def market(self, auction: AuctionType, sender: TxSender) -> Market:
        return Market(self.w3, self.d.market(auction.name.lower()), auction=auction, sender=sender)

    def advance(self, seconds: int) -> None:
        self.chain.rpc("evm_increaseTime", [seconds])
        self.chain.rpc("evm_mine", [])

    def intent(self, auction: AuctionType, mode: ProofMode = ProofMode.ZK) -> Intent:
        now = int(self.w3.eth.get_block("latest")["timestamp"])
        return Intent(
            requester=self.requester.address,
            model_id=self.model_id,
            input_commitment=self.zk.commitment,
            max_price=10 * UNIT,
            start_price=2 * UNIT if auction is AuctionType.DUTCH else 0,
            auction_type=auction,
            auction_window=60,
            deadline=now + 3_600,
            proof_mode=mode,
            min_stake=5 * UNIT,
            price_weight_bps=8_000,
            nonce=self.nonces.next(),
            expiry=now + 600,
        )

    def record(self, key: str, receipt: Any) -> None:
        self.gas[key] = int(receipt["gasUsed"])
        self.calldata[key] = len(bytes(self.w3.eth.get_transaction(receipt["transactionHash"])["input"]))

    def quote(self) -> None:
        """Two zk queries on the quote market, each opened and awarded in one transaction from a
        provider-signed quote and settled by one proof. Nonces are sequential (one bitmap word),
        so the second query, the one recorded, flips a bit of a word already non-zero and credits
        a provider slot already non-zero, as for any active account."""
        address = self.d.market("quote")
        requester = QuoteMarket(self.w3, address, sender=self.requester)
        provider = requester.using(self.providers[0])
        for _ in range(2):
            intent = self.intent(AuctionType.QUOTE).replace(nonce=self.nonces.next())
            job = requester.job_id(intent)
            now = int(self.w3.eth.get_block("latest")["timestamp"])
            quote = Quote(
                job_id=job, provider=self.providers[0].address, price=4 * UNIT, latency=60, expiry=now + 30
            )
            signature = sign_quote(quote, DEV_KEYS[2], chain_id=self.d.chain_id, market=address)
            opened = requester.open_awarded(intent, quote, signature)
            terms = requester.terms_in(opened)
            settled = provider.deliver_quoted(job, terms, self.zk.output, self.zk.proof)
        self.record("open_awarded", opened)
        self.record("settle_zk_quote", settled)

    def batch(self, n: int) -> None:
        """``n`` zk queries on the quote market, opened and awarded by one ``openAwardedBatch``,
        each from its own signed quote (one requester, one provider), settled together by one
        ``deliverBatch`` of a real EZKL proof of the ``n`` inferences (``batch{n}_per_query``: the
        whole lifecycle / ``n``)."""
        from tender import models
        from tender.paths import SAMPLE_MODELS

        mlp = SAMPLE_MODELS / "mlp"
        bundle = models.build(
            mlp / "model.onnx", mlp / "calibration.json", batch=n, input_visibility=BATCH_BINDING
        )
        verifier = models.deploy_verifier(self.w3, self.owner, bundle)
        entry = models.registry_entry(
            bundle, verifier=verifier, owner=self.owner.address, chain_id=self.owner.chain_id
        )
        model_id = Registry(self.w3, self.d.registry, sender=self.owner).register_model(
            ModelInfo.from_dict(entry)
        )
        inputs = [[0.1 * (((i + 3 * j) % 7) - 3) for i in range(bundle.card.input_size)] for j in range(n)]
        proof = models.prove_batch(bundle, inputs)
        address = self.d.market("quote")
        requester = QuoteMarket(self.w3, address, sender=self.requester)
        provider = requester.using(self.providers[0])
        self.chain.rpc("evm_mine", [])  # a fresh timestamp after the (long) proving
        now = int(self.w3.eth.get_block("latest")["timestamp"])
        intents, quotes, signatures = [], [], []
        for job in proof.jobs:
            intent = self.intent(AuctionType.QUOTE).replace(
                nonce=self.nonces.next(), model_id=model_id, input_commitment=job.input_commitment
            )
            quote = Quote(
                job_id=requester.job_id(intent),
                provider=self.providers[0].address,
                price=4 * UNIT,
                latency=600,
                expiry=now + 600,
            )
            intents.append(intent)
            quotes.append(quote)
            signatures.append(sign_quote(quote, DEV_KEYS[2], chain_id=self.d.chain_id, market=address))
        opened = requester.open_awarded_batch(intents, quotes, signatures)
        awarded, skipped = requester.award_outcome(opened)
        assert not skipped, f"skipped entries: {skipped}"
        assert sorted(awarded) == list(range(n)), "every entry of the batch is awarded"
        jobs = [q.job_id for q in quotes]
        terms = [awarded[i] for i in range(n)]
        self.record(f"open_awarded_batch{n}", opened)
        self.gas[f"open_awarded_batch{n}_per_query"] = int(opened["gasUsed"]) // n
        gas, calldata = int(opened["gasUsed"]), self._calldata_of(opened)
        outputs = [list(job.output_felts) for job in proof.jobs]
        settled = provider.deliver_batch(model_id, jobs, terms, outputs, proof.proof)
        assert provider.batch_outcome(settled) == (list(range(n)), {}), "every job of the batch settles"
        self.record(f"batch{n}_deliver", settled)
        self.gas[f"batch{n}_per_query"] = (gas + int(settled["gasUsed"])) // n
        self.batch_calldata[f"batch{n}"] = (calldata + self._calldata_of(settled)) // n

    def _calldata_of(self, receipt: Any) -> int:
        return len(bytes(self.w3.eth.get_transaction(receipt["transactionHash"])["input"]))

    def warm_up(self) -> None:
        """Make the Dutch market's owed slots of the measured payees non-zero, as for any active
        account: a settled job (the requester and the first provider) and an unawarded intent of
        the relayer (who challenges later) refunded."""
        market = self.market(AuctionType.DUTCH, self.requester)
        intent = self.intent(AuctionType.DUTCH)
        job = market.job_id(intent)
        market.post(intent)
        provider = market.using(self.providers[0])
        provider.fill(job, self.providers[0].address, 60)
        provider.deliver(job, self.zk.output, self.zk.proof)
        relayer = market.using(self.relayer)
        intent = self.intent(AuctionType.DUTCH).replace(requester=self.relayer.address)
        relayer.post(intent)
        self.advance(61)
        relayer.refund(relayer.job_id(intent))

    def reverse_zk(self) -> None:
        """Two zk jobs on the reverse market: the first credits empty owed slots
        (``settle_zk_first``), the second the same, now non-zero, slots (``settle_zk``)."""
        market = self.market(AuctionType.REVERSE, self.requester)
        first, second = (market.using(p) for p in self.providers)
        for n in range(2):
            intent = self.intent(AuctionType.REVERSE)
            job = market.job_id(intent)
            posted = market.post(intent)
            bid = first.bid(job, Bid(self.providers[0].address, 4 * UNIT, 60))
            runner_up = second.bid(job, Bid(self.providers[1].address, 6 * UNIT, 60))
            replaced = first.bid(job, Bid(self.providers[0].address, 3 * UNIT, 60))
            self.advance(61)
            awarded = market.using(self.relayer).award(job)
            receipt = first.deliver(job, self.zk.output, self.zk.proof)
            if n == 0:
                # the requester's first intent on this market: a fresh nonce word (~17k more)
                self.record("post_fresh_nonce_word", posted)
                for key, step in (
                    ("bid", bid),
                    ("bid_runner_up", runner_up),
                    ("bid_replace", replaced),
                    ("award", awarded),
                    ("settle_zk_first", receipt),
                ):
                    self.record(key, step)
        # steady state: the second post flips a bit of the requester's nonce word, already non-zero
        self.record("post", posted)
        self.record("settle_zk", receipt)
        self.breakdown = self._calls(receipt["transactionHash"])
        self.gas["verifier_call"] = sum(gas for label, gas in self.breakdown if label.startswith("verifier."))

    def pushout(self) -> None:
        """Every other kind of reverse-auction bid, each on a job of its own (run last, so that no
        other step's figure moves): a book is built by earlier bids (``PUSHOUT_CASES``: the first
        provider, the second, then the newcomer) and the last bid is measured, and its rank checked.
        A newcomer's reservation is made and the pushed-out runner-up's released in one Staking call."""
        market = self.market(AuctionType.REVERSE, self.requester)
        senders = (*self.providers, self.newcomer)
        for key, bids, rank in PUSHOUT_CASES:
            intent = self.intent(AuctionType.REVERSE)
            job = market.job_id(intent)
            market.post(intent)
            receipt = None
            for who, price, latency in bids:
                sender = senders[who]
                receipt = market.using(sender).bid(job, Bid(sender.address, price, latency))
            self.record(key, receipt)
            placed = market.best_bid(job) if rank == 1 else market.runner_up(job)
            last = senders[bids[-1][0]].address
            assert placed.provider == last, f"{key}: the last bidder has rank {rank}"

    def _calls(self, tx_hash: Any) -> list[tuple[str, int]]:
        """The market's outgoing calls in a transaction and their gas (callTracer), labelled."""
        names = {
            self.zk.verifier.lower(): "verifier",
            self.d.token.lower(): "token",
            self.d.staking.lower(): "staking",
        }
        trace = self.chain.rpc("debug_traceTransaction", [Web3.to_hex(tx_hash), {"tracer": "callTracer"}])
        names[self.d.registry.lower()] = "registry"
        functions = {"0x" + keccak(text="verifyProof(bytes,uint256[])")[:4].hex(): "verifyProof"}
        for contract in TENDER_CONTRACTS:
            for entry in load_artifact(contract).entries("function"):
                functions["0x" + keccak(text=abi_to_signature(entry))[:4].hex()] = entry["name"]  # type: ignore[arg-type]
        out = []
        for frame in trace.get("calls", []):
            to = str(frame.get("to", "")).lower()
            selector = str(frame.get("input", "0x"))[:10]
            out.append(
                (f"{names.get(to, to)}.{functions.get(selector, selector)}", int(frame["gasUsed"], 16))
            )
        return out

    def dutch_signed(self) -> None:
        intent = self.intent(AuctionType.DUTCH)
        market = self.market(AuctionType.DUTCH, self.relayer)
        job = market.job_id(intent)
        signature = sign_intent(intent, DEV_KEYS[1], chain_id=self.d.chain_id, market=market.address)
        self.record("submit_signed", market.submit_signed(intent, signature))
        self.advance(20)
        provider = market.using(self.providers[0])
        self.record("dutch_fill", provider.fill(job, self.providers[0].address, 60))
        self.record("settle_zk_dutch", provider.deliver(job, self.zk.output, self.zk.proof))

    def optimistic(self) -> None:
        market = self.market(AuctionType.DUTCH, self.requester)
        provider = market.using(self.providers[0])
        # unchallenged: deliver, wait, finalize
        intent = self.intent(AuctionType.DUTCH, ProofMode.OPTIMISTIC)
        job = market.job_id(intent)
        market.post(intent)
        provider.fill(job, self.providers[0].address, 60)
        self.record("deliver", provider.deliver(job, self.zk.output))
        self.advance(market.params().challenge_window + 1)
        self.record("finalize", market.using(self.relayer).finalize(job))
        # challenged and proven
        intent = self.intent(AuctionType.DUTCH, ProofMode.OPTIMISTIC)
        job = market.job_id(intent)
        market.post(intent)
        provider.fill(job, self.providers[0].address, 60)
        provider.deliver(job, self.zk.output)
        self.record("challenge", market.using(self.relayer).challenge(job))
        self.record("prove", provider.prove(job, self.zk.proof))
        # challenged and silent: slashed
        intent = self.intent(AuctionType.DUTCH, ProofMode.OPTIMISTIC)
        job = market.job_id(intent)
        market.post(intent)
        provider.fill(job, self.providers[0].address, 60)
        provider.deliver(job, self.zk.output)
        market.using(self.relayer).challenge(job)
        self.advance(market.params().proof_window + 1)
        self.record("expire_slash", market.using(self.relayer).expire(job))

    def silent_provider(self) -> None:
        market = self.market(AuctionType.DUTCH, self.requester)
        intent = self.intent(AuctionType.DUTCH)
        job = market.job_id(intent)
        market.post(intent)
        receipt = market.using(self.providers[1]).fill(job, self.providers[1].address, 60)
        assert any(isinstance(e, Awarded) for e in market.events_in(receipt))
        self.advance(120)
        self.record("expire", market.using(self.relayer).expire(job))
        intent = self.intent(AuctionType.REVERSE)
        reverse = self.market(AuctionType.REVERSE, self.requester)
        reverse.post(intent)
        self.advance(61)
        self.record("refund", reverse.using(self.relayer).refund(reverse.job_id(intent)))

    def credit(self) -> None:
        """A post whose escrow the requester's credit covers (the refunds above), and a provider's
        withdrawal of its earnings on the reverse market."""
        market = self.market(AuctionType.REVERSE, self.requester)
        intent = self.intent(AuctionType.REVERSE)
        assert market.covered_by_credit(self.requester.address, market.escrow_for(intent.max_price))
        self.record("post_from_credit", market.post(intent))
        provider = market.using(self.providers[0])
        assert provider.owed(self.providers[0].address) > 0
        self.record("withdraw", provider.withdraw())

    def verifier_tx(self) -> None:
        verifier = self.w3.eth.contract(
            address=Web3.to_checksum_address(self.zk.verifier),
            abi=[
                {
                    "type": "function",
                    "name": "verifyProof",
                    "stateMutability": "nonpayable",
                    "inputs": [
                        {"name": "proof", "type": "bytes"},
                        {"name": "instances", "type": "uint256[]"},
                    ],
                    "outputs": [{"name": "", "type": "bool"}],
                }
            ],
        )
        call = verifier.functions.verifyProof(self.zk.proof, self.zk.instances)
        assert call.call() is True, "the sample proof does not verify against its own verifier"
        self.record("verifier_tx", self.requester.send(call))


#: Where the security review's fixes (issue 14) cost or saved gas, by step (the figures: gas.json's history).
COST_NOTES = {
    "post/submit_signed/post_from_credit/withdraw/challenge/finalize": "cold entries run in the market's "
    "MarketExtension through DELEGATECALL (the markets stay under EIP-170 without linked libraries); "
    "an optimistic post also writes its dispute terms (fixed per job) once",
    "post": "lean storage: the job record's 5 slots (Dutch 6) and the reverse bid book's 2 sentinel slots; "
    "no layout copy (made at the award), no stake-lock slot (derived); sequential nonces reuse a bitmap word "
    "(post_fresh_nonce_word: a requester's first intent on a market). post <= 150k needs terms as calldata "
    "(one hashed word per job, as in the quote market): docs/PROTOCOL.md",
    "award": "every candidate is checked to still have its promised latency before the deadline, "
    "and its lock covers the price it is paid (lockableOf); the first award copies the model's layout "
    "(registry call + one slot, cleared at settlement), so a job never awarded never pays for it",
    "dutch_fill": "copies the model's layout like award",
    "bid/bid_runner_up/bid_pushout": "a provider new to the book reserves the job's largest lock in Staking "
    "(one account write); bid_pushout also releases the runner-up it pushed off the book in the same call (a "
    "second account write); Staking logs neither (BidPlaced.pushedOut does) and a bid reads two job slots "
    "(maxPrice beside the state and clock): docs/PROTOCOL.md (Stake); bid_replace makes no Staking call; "
    "bid_pushout_lead (a newcomer taking the lead at a new latency) also writes both book slots and both "
    "latencies and stays over 60k",
    "deliver": "an optimistic delivery records its block: the audit is drawn from the next block's hash",
    "expire": "cheaper: the slashed stake stays in Staking, credited to the requester (no token transfer)",
    "expire_slash": "the slashed stake is credited in Staking to the requester and the challenger "
    "(two claimable slots) instead of one transfer to the market",
    "open_awarded": "the stake is a hold (Staking.placeHold: the provider's lockedOf only, the amount kept in the job's "
    "hashed terms), not a per-job lock slot (~22k + its event less); the registry call returns the layout word "
    "with the proof modes (one slot read), kept in the terms",
    "batch4_per_query/batch16_per_query": "the N jobs are opened by one openAwardedBatch (one 21k base, one "
    "registry call, one lockableOf, one escrow transferFrom for the requester; each job still writes its own word, "
    "nonce bit, QuoteAwarded and Staking hold) instead of N openAwarded transactions",
    "settle_zk_quote": "no registry call (the layout word comes back in the terms, bound by the job's word; "
    "+32 calldata bytes); Staking.freeHold instead of unlock (no lock slot to clear, no event)",
}


def run(*, use_ezkl: bool = True, out: Path = RESULTS) -> dict[str, Any]:
    with Anvil() as chain:
        bench = Bench(chain, use_ezkl=use_ezkl)
        bench.warm_up()
        bench.reverse_zk()
        bench.dutch_signed()
        bench.optimistic()
        bench.silent_provider()
        bench.credit()
        bench.verifier_tx()
        bench.quote()
        if use_ezkl:
            for n in BATCH_SIZES:
                bench.batch(n)
        bench.pushout()
        gas = dict(bench.gas)
        for path, steps in PATHS.items():
            gas["lifecycle_zk" if path == "quote" else f"lifecycle_zk_{path}"] = sum(gas[s] for s in steps)
        calldata = {path: sum(bench.calldata[s] for s in steps) for path, steps in PATHS.items()}
        calldata_steps = dict(sorted(bench.calldata.items()))
        batch_calldata = dict(bench.batch_calldata)
        gas["settle_overhead"] = gas["settle_zk"] - gas["verifier_tx"]
        gas["settle_overhead_first"] = gas["settle_zk_first"] - gas["verifier_tx"]
        gas["settle_overhead_vs_inner_call"] = gas["settle_zk"] - gas["verifier_call"]
        source = bench.zk.source
        breakdown = [{"call": label, "gas": gas} for label, gas in bench.breakdown]
    limits = {**{key: TARGETS["bid"] for key in BID_KEYS}, **TARGETS}
    checks = {
        key: {"gas": gas[key], "target": limit, "ok": gas[key] < limit}
        for key, limit in limits.items()
        if key in gas
    }
    result = {
        **gas,
        "verifier": source,
        "conditions": "Anvil (cancun); steady state: every owed slot a step credits is already non-zero "
        "from an earlier job (settle_zk_first / settle_overhead_first: the first credit to two empty slots), "
        "payees already hold tokens (withdraw) and the market already holds the model's proof modes (its first "
        "posting of a model copies them: post_fresh_nonce_word, the requester's and the model's first posting); "
        "a reverse job stores only its terms' hash at `post` and `bid`, `award` and `refund` pass the terms "
        "back (calldata_bytes_by_step); `bid` is a job's first bid (fresh storage), "
        "`bid_replace` a provider lowering its own bid, `bid_pushout` a third provider's bid that pushes the "
        "runner-up off a full book (at its latency; `bid_pushout_lead`: taking the lead at a new latency)",
        "targets": checks,
        "calldata_bytes": calldata,
        "calldata_bytes_by_step": calldata_steps,
        "batch_calldata_bytes_per_query": batch_calldata,
        "batch_binding": BATCH_BINDING,
        "paths": {path: list(steps) for path, steps in PATHS.items()},
        "settle_zk_calls": breakdown,
        "cost_notes": COST_NOTES,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result


def show(result: dict[str, Any]) -> None:
    table = Table(title=f"Tender gas per step ({result['verifier']})")
    table.add_column("step")
    table.add_column("gas", justify="right")
    table.add_column("target", justify="right")
    for key, value in result.items():
        if isinstance(value, int):
            check = result["targets"].get(key)
            target = "" if check is None else f"< {check['target']:,} {'✓' if check['ok'] else '✗'}"
            table.add_row(key, f"{value:,}", target)
    Console().print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--mock", action="store_true", help="use the mock verifier even if an EZKL bundle exists"
    )
    args = parser.parse_args(argv)
    result = run(use_ezkl=not args.mock)
    show(result)
    return 0 if all(check["ok"] for check in result["targets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
