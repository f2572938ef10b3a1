"""The auditor: check settled jobs from chain data alone.

For each job rebuilt by :mod:`verifier._history` the auditor runs five checks:

``events``   the market's stored record (``job(jobId)``) agrees with the job's events: state,
             provider, price, locked stake, challenger and bond, and the output hash of the
             delivered output; the output in the calldata is the one the event logged.
``model``    the registry record exists, names a verifier whose code is the one a local
             bundle with the same ONNX and settings hashes compiled, with the same layout.
``input``    the input (when the intent carries it inline, or ``fetch_inputs`` is set)
             commits to the intent's ``inputCommitment`` (Poseidon hash, or the KZG point's
             keccak for polycommit models, computed with the bundle's vk and SRS).
``proof``    the proof decoded from the ``deliver``/``prove`` calldata verifies, both with
             EZKL off-chain against the bundle's verifying key and by the registered verifier
             contract (``eth_call``), on the instances the market builds (layout, input
             commitment, delivered output); for a polycommit model ``keccak256(proof[0:64])``
             must also be the intent's commitment (the market's input check). Optimistic jobs settled without a proof are
             re-executed instead when their input is available.
``amounts``  escrow, price, fee, refund, slash, compensation, challenger reward and bond
             agree with each other, with the job's dispute terms, and with the token
             transfers and stake slashes in the same transactions: an escrow or a bond
             comes in by transfer unless it was taken from the payer's credit, a slashed
             stake stays in Staking, credited there to the requester and the challenger
             (``StakeSlashed`` to each), and nothing leaves the market while it runs a job
             (payments, refunds and returned bonds are credited to ``owed``) except what a
             ``withdraw`` in the same transaction paid.

And two deployment-wide checks per market, when the range starts at the deployment:
``credit``: each account's ``owed`` is what the events credited it, less the escrows and bonds
it paid from that credit and what it withdrew (a withdrawal pays the whole credit); ``escrow``:
the market's token balance equals what its open jobs escrow plus the bonds it holds, the fees
owed and the credits owed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils.abi import collapse_if_tuple
from web3 import Web3
from web3.exceptions import ContractLogicError, Web3RPCError

from tender.chain import (
    INPUT_HASHED,
    INPUT_POLYCOMMIT,
    Awarded,
    Challenged,
    Delivered,
    Deployment,
    DisputeTerms,
    Event,
    Expired,
    FailedOver,
    FeesWithdrawn,
    IntentPosted,
    Job,
    JobState,
    OpenTerms,
    Proved,
    Refunded,
    Registry,
    Settled,
    Slashed,
    StakeSlashed,
    Staking,
    Token,
    Withdrawn,
    market_instances,
    polycommit_commitment,
)
from tender.chain import Market as MarketWrapper
from tender.errors import TenderError
from tender.intents import AuctionType, ProofMode
from tender.models import Bundle, BundleError, Proof, verify
from verifier._errors import CommitmentMismatch, InputUnavailable, ReconstructionError
from verifier._history import ChainSource, History, JobHistory
from verifier._inputs import fetch_input, inline_input
from verifier._models import Catalogue, commitment_of, judge
from verifier._report import AuditReport, JobAudit, Status

logger = logging.getLogger("verifier.audit")

BPS = 10_000


@dataclass(frozen=True)
class ModelRecord:
    """A registry record and what the auditor concluded about it."""

    model_id: bytes
    info: dict[str, Any]
    bundle: Bundle | None
    problems: tuple[str, ...]
    note: str


def output_hash(output: Iterable[int]) -> bytes:
    """``keccak256(abi.encode(output))`` as the market stores it."""
    return bytes(Web3.keccak(abi_encode(["uint256[]"], [list(output)])))


def instances_for(info: dict[str, Any], commitment: int, output: list[int]) -> list[int]:
    """The public instance vector the market builds for a delivery (a registry record with the
    Solidity field names; a record without ``inputBinding`` reads as a hashed input)."""
    return market_instances(
        input_binding=int(info.get("inputBinding", INPUT_HASHED)),
        commitment_index=int(info["commitmentIndex"]),
        output_offset=int(info["outputOffset"]),
        instance_count=int(info["instanceCount"]),
        commitment=commitment,
        output=output,
    )


def input_bound(info: dict[str, Any], proof: bytes, commitment: int) -> bool:
    """The market's input check for a polycommit model: ``keccak256(proof[0:64])`` is the intent's
    commitment (hashed inputs are checked by the verifier, as an instance: always true here)."""
    if int(info.get("inputBinding", INPUT_HASHED)) != INPUT_POLYCOMMIT:
        return True
    return polycommit_commitment(proof) == int(commitment)


class Auditor:
    """Audits a Tender deployment.

    Args:
        w3: the chain.
        deployment: its addresses.
        catalogue: where local model bundles are found (off-chain verification, inputs).
        source: where chain data comes from (default: ``w3``); tests pass a tampering one.
        fetch_inputs: also fetch inputs from URIs (inline inputs are always checked).
        offchain: verify proofs with EZKL too (not only with the verifier contract).
        workers: jobs audited in parallel.
    """

    def __init__(
        self,
        w3: Web3,
        deployment: Deployment,
        *,
        catalogue: Catalogue | None = None,
        source: ChainSource | None = None,
        fetch_inputs: bool = False,
        offchain: bool = True,
        reexecute: bool = True,
        workers: int = 8,
    ) -> None:
        self.w3 = w3
        self.deployment = deployment
        self.catalogue = catalogue or Catalogue()
        self.source = source or ChainSource(w3)
        self.history = History(self.source, deployment)
        self.fetch_inputs = fetch_inputs
        self.offchain = offchain
        self.reexecute = reexecute
        self.workers = workers
        self.registry = Registry(w3, deployment.registry)
        self.token = Token(w3, deployment.token)
        self.staking = Staking(w3, deployment.staking)
        self.markets = {
            name: MarketWrapper(
                w3, address, auction=AuctionType.REVERSE if name == "reverse" else AuctionType.DUTCH
            )
            for name, address in self.history.markets.items()
        }
        self._verifier_abi = [
            {
                "type": "function",
                "name": "verifyProof",
                "stateMutability": "nonpayable",
                "inputs": [{"name": "proof", "type": "bytes"}, {"name": "instances", "type": "uint256[]"}],
                "outputs": [{"name": "", "type": "bool"}],
            },
        ]
        self._models: dict[bytes, ModelRecord] = {}
        self._lock = threading.RLock()
        self._views: dict[tuple[str, bytes], bytes] = {}
        self._provider_of: dict[bytes, str] = {}

    # -- entry --------------------------------------------------------------------------

    def run(
        self,
        *,
        from_block: int | None = None,
        to_block: int | None = None,
        job_ids: Iterable[bytes] | None = None,
    ) -> AuditReport:
        """Audit every job with an event in the block range (or only ``job_ids``)."""
        started = time.perf_counter()
        first = self.deployment.block if from_block is None else from_block
        last = int(self.w3.eth.block_number) if to_block is None else to_block
        ids = None if job_ids is None else [bytes(j) for j in job_ids]
        histories = self.history.scan(first, last, job_ids=ids)
        if ids is not None:
            found = {h.job_id for h in histories}
            missing = [j for j in ids if j not in found]
            if missing and first > self.deployment.block:  # look again from the deployment
                histories += self.history.scan(self.deployment.block, first - 1, job_ids=missing)
        self.source.prefetch(
            receipts=[e.tx_hash for h in histories for e in h.events],
            transactions=[
                e.tx_hash for h in histories for e in h.events if isinstance(e, Delivered | Proved)
            ],
        )
        self._provider_of = {h.job_id: p for h in histories if (p := self._provider(h)) is not None}
        self._prefetch_views(histories)
        report = AuditReport(chain_id=int(self.w3.eth.chain_id), from_block=first, to_block=last)
        with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
            report.jobs = list(pool.map(self.audit_job, histories))
        if ids is None and first <= self.deployment.block:
            report.global_checks.extend(self._escrow_checks(histories, last))
        report.seconds = time.perf_counter() - started
        return report

    def audit_job(self, history: JobHistory) -> JobAudit:
        """All checks of one job (never raises for a chain-data problem: it becomes a failure)."""
        mode = "?" if history.intent is None else ProofMode(history.intent.proof_mode).name.lower()
        audit = JobAudit("0x" + history.job_id.hex(), history.market, history.state.name.lower(), mode)
        if history.intent is None:
            audit.add("events", Status.FAIL, "no IntentPosted event for this job in the scanned range")
            return audit
        for name, check in (
            ("events", self._check_events),
            ("model", self._check_model),
            ("input", self._check_input),
            ("proof", self._check_proof),
            ("amounts", self._check_amounts),
        ):
            try:
                status, detail = check(history, audit)
            except (TenderError, ValueError, KeyError, Web3RPCError, ContractLogicError) as exc:
                status, detail = Status.FAIL, f"{type(exc).__name__}: {exc}"
            audit.add(name, status, detail)
        return audit

    # -- events vs stored record ---------------------------------------------------------

    def _stored_job(self, h: JobHistory) -> Job:
        """``job(jobId)`` on the job's market (from the batch fetched by :meth:`_prefetch_views`)."""
        market = self.markets[h.market]
        raw = self._views.get(("job", h.job_id))
        if raw is None:
            return market.job(h.job_id)
        entry = next(e for e in market.artifact.entries("function") if e["name"] == "job")
        (value,) = abi_decode([collapse_if_tuple(entry["outputs"][0])], raw)
        return Job.from_abi(h.job_id, value, entry["outputs"][0]["components"])

    def _prefetch_views(self, histories: list[JobHistory]) -> None:
        """``job(jobId)`` and ``Staking.lockedFor(provider, jobId)`` of every job, in JSON-RPC batches."""
        calls: list[tuple[tuple[str, bytes], str, bytes]] = []
        for h in histories:
            if h.market not in self.markets:
                continue
            market = self.markets[h.market]
            calls.append(
                (("job", h.job_id), market.address, market.fn.job(h.job_id)._encode_transaction_data())
            )
            provider = self._provider(h)
            if provider is not None:
                data = self.staking.fn.lockedFor(provider, h.job_id)._encode_transaction_data()
                calls.append((("locked", h.job_id), self.staking.address, data))
        for start in range(0, len(calls), 200):
            chunk = calls[start : start + 200]
            try:
                with self.w3.batch_requests() as batch:
                    for _, to, data in chunk:
                        batch.add(self.w3.eth.call({"to": to, "data": data}))  # type: ignore[typeddict-item]
                    answers = batch.execute()
            except (Web3RPCError, OSError, ValueError, TypeError):
                return  # fall back to one call per job
            for (key, _, _), answer in zip(chunk, answers, strict=False):
                if isinstance(answer, bytes | bytearray):
                    self._views[key] = bytes(answer)

    @staticmethod
    def _provider(h: JobHistory) -> str | None:
        """The provider of the last award (``None`` when the job was never awarded)."""
        provider = h.view.provider
        return Web3.to_checksum_address(provider) if provider else None

    def _check_open_terms(self, h: JobHistory) -> list[str]:
        """An Open reverse job: the terms its ``IntentPosted`` gives are the ones its word holds
        (the market refuses any other terms with ``TermsMismatch``)."""
        if h.posted is None:
            return []
        market = self.markets[h.market]
        terms = OpenTerms.from_event(h.posted)
        try:
            market.fn.clearingPrice(h.job_id, terms.auction.to_abi()).call()
        except ContractLogicError as exc:
            return [f"the market refuses the terms IntentPosted gives ({exc})"]
        return []

    def _check_events(self, h: JobHistory, audit: JobAudit) -> tuple[Status, str]:
        job = self._stored_job(h)
        problems: list[str] = []
        view = h.view
        if job.state != view.state:
            problems.append(f"stored state {job.state.name.lower()}, events say {view.state.name.lower()}")
        award = h.last(Awarded)
        failover = h.last(FailedOver)
        if award is not None:
            if Web3.to_checksum_address(job.provider) != Web3.to_checksum_address(view.provider):
                problems.append(f"stored provider {job.provider}, events say {view.provider}")
            if int(job.price) != view.price:
                problems.append(f"stored price {job.price}, events say {view.price}")
            if failover is None and int(job.stake_locked) != award.stake_locked:
                problems.append(f"stored stakeLocked {job.stake_locked}, Awarded says {award.stake_locked}")
        # a reverse job's record is written by its award; before one (Open) the market holds only the
        # hash of its terms, and a refund without one writes the payment's fields (requester, maxPrice)
        unrecorded = self.markets[h.market].auction is AuctionType.REVERSE and award is None
        if unrecorded and view.state is JobState.OPEN:
            problems.extend(self._check_open_terms(h))
        elif h.intent is not None:
            if not unrecorded and bytes(job.model_id) != bytes(h.intent.model_id):
                problems.append("stored modelId differs from the intent's")
            if not unrecorded and int(job.input_commitment) != int(h.intent.input_commitment):
                problems.append("stored inputCommitment differs from the intent's")
            if int(job.max_price) != int(h.intent.max_price):
                problems.append(f"stored maxPrice {job.max_price}, intent says {h.intent.max_price}")
            if unrecorded and Web3.to_checksum_address(job.requester) != h.intent.requester:
                problems.append(f"stored requester {job.requester}, intent says {h.intent.requester}")
        challenge = h.last(Challenged)
        if challenge is not None:
            if Web3.to_checksum_address(job.challenger) != Web3.to_checksum_address(challenge.challenger):
                problems.append("stored challenger differs from Challenged")
            if int(job.challenge_bond) != challenge.bond:
                problems.append(f"stored bond {job.challenge_bond}, Challenged says {challenge.bond}")
        delivered = h.last(Delivered)
        if delivered is not None:
            output = list(delivered.output)
            if output_hash(output) != delivered.output_hash:
                problems.append("Delivered.outputHash is not the hash of Delivered.output")
            if job.output_hash != bytes(32) and bytes(job.output_hash) != delivered.output_hash:
                problems.append("stored outputHash differs from Delivered's")
            call = self.history.delivery_call(h)
            if call is not None and [int(v) for v in call.args["output"]] != output:
                problems.append("the deliver calldata's output differs from the Delivered event's")
        if view.state.final and award is not None:
            locked = self._staking_locked(job.provider, h.job_id)
            if locked:
                problems.append(f"{locked} of stake still locked for a finished job")
        if problems:
            return Status.FAIL, "; ".join(problems)
        return Status.OK, f"{len(h.events)} events agree with the stored record"

    def _staking_locked(self, provider: str, job_id: bytes) -> int:
        raw = self._views.get(("locked", job_id))
        if raw is not None and Web3.to_checksum_address(provider) == self._provider_of.get(job_id):
            return int.from_bytes(raw[:32], "big")
        return self.staking.locked_for(provider, job_id)

    # -- model ----------------------------------------------------------------------------

    def model(self, model_id: bytes) -> ModelRecord:
        """The registry record of ``model_id`` with its bundle and any inconsistency (cached)."""
        with self._lock:
            record = self._models.get(model_id)
            if record is None:
                record = self._models[model_id] = self._load_model(model_id)
            return record

    def _load_model(self, model_id: bytes) -> ModelRecord:
        raw = self.registry.fn.model(model_id).call()
        components = next(e for e in self.registry.artifact.entries("function") if e["name"] == "model")[
            "outputs"
        ][0]["components"]
        info = {c["name"]: v for c, v in zip(components, raw, strict=True)}
        problems: list[str] = []
        bundle = self.catalogue.find(info["onnxSha256"], info["settingsHash"])
        code = bytes(self.w3.eth.get_code(Web3.to_checksum_address(info["verifier"])))
        code_hash = "0x" + bytes(Web3.keccak(code)).hex()
        if not code:
            problems.append(f"verifier {info['verifier']} has no code")
        if bundle is None:
            note = f"no local bundle for onnx {bytes(info['onnxSha256']).hex()[:12]}…: on-chain checks only"
        else:
            card = bundle.card
            note = f"{card.name}: verifier code matches the bundle"
            if code_hash != card.verifier_runtime_keccak256:
                problems.append(
                    f"verifier code hash {code_hash[:12]}… is not the bundle's {card.verifier_runtime_keccak256[:12]}…"
                )
            fields = ("inputBinding", "commitmentIndex", "outputOffset", "outputLength", "instanceCount")
            try:
                layout = card.registry_layout()
                expected = tuple(layout[f] for f in fields)
            except BundleError as exc:
                expected = ()
                problems.append(str(exc))
            actual = tuple(int(info[f]) for f in fields)
            if expected and actual != expected:
                problems.append(
                    f"registered layout {actual} differs from the bundle's {expected} ({', '.join(fields)})"
                )
        return ModelRecord(model_id, info, bundle, tuple(problems), note)

    def _check_model(self, h: JobHistory, _: JobAudit) -> tuple[Status, str]:
        assert h.intent is not None
        record = self.model(bytes(h.intent.model_id))
        if record.problems:
            return Status.FAIL, "; ".join(record.problems)
        return (Status.OK if record.bundle else Status.SKIP), record.note

    # -- input ----------------------------------------------------------------------------

    def _input(self, h: JobHistory) -> Any | None:
        assert h.intent is not None
        location = bytes(h.intent.input_location)
        fetched = inline_input(location) if not self.fetch_inputs else fetch_input(location)
        return None if fetched is None else fetched.data

    def _check_input(self, h: JobHistory, _: JobAudit) -> tuple[Status, str]:
        assert h.intent is not None
        record = self.model(bytes(h.intent.model_id))
        if record.bundle is None:
            return Status.SKIP, "no local bundle to hash the input with"
        try:
            data = self._input(h)
        except InputUnavailable as exc:
            return Status.FAIL, str(exc)
        if data is None:
            return Status.SKIP, "input not inline (pass --fetch-inputs to fetch URIs)"
        try:
            actual = commitment_of(record.bundle, data)
        except ValueError as exc:
            return Status.FAIL, f"inline input does not fit the model: {exc}"
        except BundleError as exc:
            return Status.FAIL, f"cannot commit to the input: {exc}"
        if actual != int(h.intent.input_commitment):
            return Status.FAIL, str(CommitmentMismatch(int(h.intent.input_commitment), actual))
        return Status.OK, "inline input hashes to the commitment"

    # -- proof ----------------------------------------------------------------------------

    def verify_onchain(self, verifier: str, proof: bytes, instances: list[int]) -> bool:
        """The registered verifier's answer (``eth_call``; a revert counts as a rejection)."""
        contract = self.w3.eth.contract(address=Web3.to_checksum_address(verifier), abi=self._verifier_abi)
        try:
            return bool(contract.functions.verifyProof(proof, instances).call())
        except (ContractLogicError, Web3RPCError, ValueError):
            return False

    def _check_proof(self, h: JobHistory, audit: JobAudit) -> tuple[Status, str]:
        assert h.intent is not None
        delivered = h.last(Delivered)
        if delivered is None:
            return Status.SKIP, "never delivered"
        output = list(delivered.output)
        record = self.model(bytes(h.intent.model_id))
        proof_bytes: bytes | None = None
        where = ""
        proved = bool(h.named(Proved))
        if proved:
            call = self.history.prove_call(h)
            proof_bytes, where = (bytes(call.args["proof"]) if call else None), "prove"
        else:
            call = self.history.delivery_call(h)
            if call is not None and bytes(call.args["proof"]):
                proof_bytes, where = bytes(call.args["proof"]), "deliver"
        settled_by_proof = delivered.state is JobState.SETTLED or proved
        if proof_bytes is None:
            if settled_by_proof:
                raise ReconstructionError("the job settled on a proof but no proof was found in calldata")
            return self._reexecute(h, record, output)
        commitment = int(h.intent.input_commitment)
        instances = instances_for(record.info, commitment, output)
        onchain = self.verify_onchain(record.info["verifier"], proof_bytes, instances)
        parts = [
            f"{where} proof ({len(proof_bytes)} B): verifier contract {'accepts' if onchain else 'REJECTS'}"
        ]
        ok = onchain
        if int(record.info.get("inputBinding", INPUT_HASHED)) == INPUT_POLYCOMMIT:
            # the verifier checks the proof against its own first point: only this binds the input
            bound = input_bound(record.info, proof_bytes, commitment)
            parts.append(
                "keccak256(proof[0:64]) "
                + ("is the input commitment" if bound else "is NOT the input commitment (another input)")
            )
            ok = ok and bound
        if self.offchain and record.bundle is not None:
            offchain = verify(record.bundle, _proof(record.bundle, proof_bytes, instances, output, h))
            parts.append(f"EZKL {'accepts' if offchain else 'REJECTS'}")
            ok = ok and offchain
        return (Status.OK if ok else Status.FAIL), ", ".join(parts)

    def _reexecute(self, h: JobHistory, record: ModelRecord, output: list[int]) -> tuple[Status, str]:
        if not self.reexecute or record.bundle is None:
            return Status.SKIP, "optimistic, settled without a proof"
        try:
            data = self._input(h)
        except InputUnavailable as exc:
            return Status.SKIP, f"optimistic, no proof, input unavailable: {exc}"
        if data is None:
            return Status.SKIP, "optimistic, no proof, input not inline"
        verdict = judge(record.bundle, data, output)
        if h.state is JobState.SLASHED:
            return Status.OK, f"slashed; re-executed: {verdict.reason}"
        status = Status.FAIL if verdict.wrong else Status.OK
        return status, f"optimistic, no proof; re-executed: {verdict.reason}"

    # -- amounts --------------------------------------------------------------------------

    def terms(self, h: JobHistory) -> DisputeTerms:
        """The dispute terms ``h``'s job was posted with (fixed per job: a later change of the
        market's parameters never reaches it)."""
        return self.markets[h.market].dispute_terms(h.job_id)

    def _check_amounts(self, h: JobHistory, audit: JobAudit) -> tuple[Status, str]:
        assert h.intent is not None
        assert h.posted is not None
        escrow, fee_bps = h.posted.escrow, h.posted.fee_bps
        max_price = int(h.intent.max_price)
        problems: list[str] = []
        amounts: dict[str, int] = {"escrow": escrow}
        if escrow != max_price + max_price * fee_bps // BPS:
            problems.append(f"escrow {escrow} is not maxPrice {max_price} plus {fee_bps} bps")
        requester = h.intent.requester
        challenge = h.last(Challenged)
        challenger = Web3.to_checksum_address(challenge.challenger) if challenge else None
        bond = challenge.bond if challenge else 0
        locked = 0  # the stake locked by the current award
        # Token movements each transaction must show (into the market by payer, out of it by payee).
        # The market pays nothing out while running a job: settlements, refunds and returned bonds
        # are credited (the ledger check follows them to `owed` and `Withdrawn`); only a
        # `withdraw`/`withdrawFees` in the same transaction moves tokens out.
        flows: dict[bytes, tuple[dict[str, int], dict[str, int]]] = {}
        slashes: dict[bytes, dict[str, int]] = {}

        def expect(
            tx: bytes, *, into: tuple[str, int] | None = None, out: tuple[str, int] | None = None
        ) -> None:
            ins, outs = flows.setdefault(tx, ({}, {}))
            for side, item in ((ins, into), (outs, out)):
                if item is not None and item[1]:
                    side[item[0]] = side.get(item[0], 0) + item[1]

        def slash(tx: bytes, to: str, amount: int) -> None:
            if amount:
                slashes.setdefault(tx, {})[to] = slashes.setdefault(tx, {}).get(to, 0) + amount

        def paid_in(tx: bytes, payer: str, amount: int, from_credit: str) -> None:
            """``payer`` paid ``amount`` into the market: from its credit there, else by a transfer."""
            if self.from_credit(tx, payer, h.market_address, amount):
                amounts[from_credit] = amount
                expect(tx)
            else:
                expect(tx, into=(payer, amount))

        for event in h.events:
            tx = event.tx_hash
            if isinstance(event, IntentPosted):
                paid_in(tx, requester, escrow, "escrow_from_credit")
            elif isinstance(event, Awarded):
                locked = event.stake_locked
            elif isinstance(event, Challenged):
                paid_in(tx, Web3.to_checksum_address(event.challenger), event.bond, "bond_from_credit")
            elif isinstance(event, Settled):
                price, fee, refund = event.price, event.fee, event.refund
                amounts.update(price=price, fee=fee, refund=refund)
                award_price = h.view.price
                if price != award_price:
                    problems.append(f"settled price {price}, awarded at {award_price}")
                if price > max_price:
                    problems.append(f"price {price} above maxPrice {max_price}")
                if fee != price * fee_bps // BPS:
                    problems.append(f"fee {fee} is not {fee_bps} bps of {price}")
                if price + fee + refund != escrow:
                    problems.append(f"price + fee + refund = {price + fee + refund}, escrow was {escrow}")
                proved = [e for e in h.named(Proved) if e.tx_hash == tx]
                bond_paid = proved[0].bond_paid if proved else 0
                if bond_paid != (bond if proved else 0):
                    problems.append(f"Proved paid bond {bond_paid}, the challenger posted {bond}")
                amounts["bond_paid"] = bond_paid
                expect(tx)  # credited: the provider price + bond, the requester the refund
            elif isinstance(event, Expired):
                slashed = event.slashed
                amounts["slashed"] = amounts.get("slashed", 0) + slashed
                if slashed != locked:
                    problems.append(f"expiry slashed {slashed}, the award locked {locked}")
                # the stake stays in Staking, credited there to the requester: no token moves
                slash(tx, requester, slashed)
                expect(tx)
            elif isinstance(event, Slashed):
                to_req, to_chal, returned = event.to_requester, event.to_challenger, event.bond_returned
                amounts.update(to_requester=to_req, to_challenger=to_chal, bond_returned=returned)
                if to_req + to_chal != locked:
                    problems.append(f"slashed {to_req + to_chal}, the award locked {locked}")
                if returned != bond:
                    problems.append(f"bond returned {returned}, the challenger posted {bond}")
                rate = self.terms(h).challenger_reward_bps
                if challenger is not None and to_chal != locked * rate // BPS:
                    problems.append(f"challenger got {to_chal}, {rate} bps of {locked} expected")
                if challenger is None and to_chal:
                    problems.append(f"{to_chal} paid to a challenger but nobody challenged")
                # the lock stays in Staking, credited there to the requester (its share) and the
                # challenger (its reward); the market credits the challenger its bond back
                slash(tx, requester, to_req)
                if challenger is not None:
                    slash(tx, challenger, to_chal)
                expect(tx)
            elif isinstance(event, Refunded):
                amount = event.amount
                amounts["refunded"] = amount
                if amount != escrow:
                    problems.append(f"refunded {amount}, escrow was {escrow}")
                expect(tx)  # credited to the requester
        for tx, (ins, outs) in flows.items():
            for account, amount in self._payouts(tx, h.market_address).items():
                outs[account] = outs.get(account, 0) + amount
            self._expect_transfers(problems, tx, h.market_address, ins, outs)
        for tx, paid in slashes.items():
            self._expect_slash(problems, tx, paid)
        audit.amounts = amounts
        if problems:
            return Status.FAIL, "; ".join(problems)
        return Status.OK, ", ".join(f"{k}={v}" for k, v in amounts.items())

    def from_credit(self, tx_hash: bytes, payer: str, market: str, amount: int) -> bool:
        """Whether the market took ``amount`` (an escrow, a bond) from ``payer``'s credit in
        ``tx_hash``: it does when the credit covers all of it, and then no token moves; otherwise
        the transaction holds a transfer of exactly ``amount`` from ``payer`` to the market."""
        payer, market = Web3.to_checksum_address(payer), Web3.to_checksum_address(market)
        transfers = self.history.transfers(tx_hash, self.deployment.token)
        return amount > 0 and (payer, market, amount) not in transfers

    def _payouts(self, tx_hash: bytes, market: str) -> dict[str, int]:
        """What the market's ``Withdrawn``/``FeesWithdrawn`` events in ``tx_hash`` paid, by payee
        (the only token transfers out of a market)."""
        market = Web3.to_checksum_address(market)
        out: dict[str, int] = {}
        for event in self.history.market_events:
            if event.tx_hash != tx_hash or Web3.to_checksum_address(event.address) != market:
                continue
            payout = _payout(event)
            if payout is not None and payout[1]:
                payee = payout[0]
                out[payee] = out.get(payee, 0) + payout[1]
        return out

    def _expect_transfers(
        self, problems: list[str], tx_hash: bytes, market: str, ins: dict[str, int], outs: dict[str, int]
    ) -> None:
        """The token transfers into and out of the market in ``tx_hash`` are exactly ``ins``/``outs``."""
        market = Web3.to_checksum_address(market)
        got_in: dict[str, int] = {}
        got_out: dict[str, int] = {}
        for sender, to, value in self.history.transfers(tx_hash, self.deployment.token):
            if value and to == market:
                got_in[sender] = got_in.get(sender, 0) + value
            elif value and sender == market:
                got_out[to] = got_out.get(to, 0) + value
        if got_in != ins:
            problems.append(f"tx {tx_hash.hex()[:10]}: paid in {_fmt(got_in)}, events say {_fmt(ins)}")
        if got_out != outs:
            problems.append(f"tx {tx_hash.hex()[:10]}: paid out {_fmt(got_out)}, events say {_fmt(outs)}")

    def _expect_slash(self, problems: list[str], tx_hash: bytes, expected: dict[str, int]) -> None:
        """The staking contract's ``StakeSlashed`` events in ``tx_hash`` pay exactly ``expected``."""
        paid: dict[str, int] = {}
        for event in self.history.receipt_events(tx_hash, self.deployment.staking):
            if isinstance(event, StakeSlashed) and event.amount:
                to = Web3.to_checksum_address(event.recipient)
                paid[to] = paid.get(to, 0) + event.amount
        if paid != expected:
            problems.append(
                f"tx {tx_hash.hex()[:10]}: stake slashed {_fmt(paid)}, events say {_fmt(expected)}"
            )

    # -- deployment-wide ------------------------------------------------------------------

    def ledger(self, histories: list[JobHistory], market: str) -> tuple[dict[str, int], list[str]]:
        """What ``market`` owes each account by its events alone, and where they disagree.

        Replays, oldest first, every credit (``Settled``: the provider its price plus any bond
        ``Proved`` paid it, the requester the refund; ``Refunded``: the requester the escrow;
        ``Slashed``: the challenger its bond back; a slashed stake is credited in Staking, not
        here), every escrow or bond taken from a credit
        (no token transfer in its transaction), and every ``Withdrawn``, which must pay the whole
        credit.
        """
        market = Web3.to_checksum_address(market)
        entries: list[tuple[int, int, str, str, int, str]] = []  # (block, log, kind, account, amount, job)

        def add(event: Event, kind: str, account: str, amount: int, job: str = "") -> None:
            if amount:
                entries.append(
                    (
                        event.block_number,
                        event.log_index,
                        kind,
                        Web3.to_checksum_address(account),
                        amount,
                        job,
                    )
                )

        for h in histories:
            if Web3.to_checksum_address(h.market_address) != market or h.intent is None:
                continue
            job = "0x" + h.job_id.hex()[:8]
            requester = h.intent.requester
            challenger: str | None = None
            for event in h.events:
                if isinstance(event, IntentPosted):
                    if self.from_credit(event.tx_hash, requester, market, event.escrow):
                        add(event, "debit", requester, event.escrow, job)
                elif isinstance(event, Challenged):
                    challenger = event.challenger
                    if self.from_credit(event.tx_hash, challenger, market, event.bond):
                        add(event, "debit", challenger, event.bond, job)
                elif isinstance(event, Settled):
                    proved = [e for e in h.named(Proved) if e.tx_hash == event.tx_hash]
                    bond_paid = proved[0].bond_paid if proved else 0
                    add(event, "credit", event.provider, event.price + bond_paid, job)
                    add(event, "credit", requester, event.refund, job)
                elif isinstance(event, Refunded):
                    add(event, "credit", requester, event.amount, job)
                elif isinstance(event, Slashed) and challenger is not None:  # its bond back
                    add(event, "credit", challenger, event.bond_returned, job)
        for event in self.history.market_events:
            if isinstance(event, Withdrawn) and Web3.to_checksum_address(event.address) == market:
                add(event, "withdraw", event.account, event.amount)
        owed: dict[str, int] = {}
        problems: list[str] = []
        for _, _, kind, account, amount, job in sorted(entries):
            have = owed.get(account, 0)
            if kind == "credit":
                owed[account] = have + amount
            elif kind == "debit":
                if amount > have:
                    problems.append(f"job {job}…: {amount} taken from {account[:8]}…'s credit of {have}")
                owed[account] = max(0, have - amount)
            else:
                if amount != have:
                    problems.append(f"{account[:8]}… withdrew {amount}, its credit was {have}")
                owed[account] = 0
        return owed, problems

    def _escrow_checks(self, histories: list[JobHistory], block: int) -> list[Any]:
        """Per market: every account's ``owed`` is what the events credited it, less what it
        spent from it and withdrew (``credit.<market>``); fees owed = fees settled - fees
        withdrawn, and the token balance = the escrow of open jobs + the bonds of open challenges
        + the fees owed + the credits owed (``escrow.<market>``)."""
        from verifier._report import Check

        checks = []
        for name, address in self.history.markets.items():
            held = fees = 0
            for h in histories:
                if h.market != name:
                    continue
                fees += sum(e.fee for e in h.named(Settled))
                if h.posted is None or h.state.final:
                    continue
                held += h.posted.escrow
                challenge = h.last(Challenged)
                if challenge is not None:
                    held += challenge.bond
            market = Web3.to_checksum_address(address)
            credits, credit_problems = self.ledger(histories, market)
            wrapper = self.markets[name]
            for account, expected in sorted(credits.items()):
                actual = int(wrapper.fn.owed(account).call(block_identifier=block))
                if actual != expected:
                    credit_problems.append(f"owed({account[:8]}…) is {actual}, the events credit {expected}")
            credited = sum(credits.values())
            follows = f"owed() of {len(credits)} accounts follows the events: {credited} still owed"
            checks.append(Check.of(f"credit.{name}", credit_problems, follows))
            withdrawn = sum(
                e.amount
                for e in self.history.market_events
                if isinstance(e, FeesWithdrawn) and Web3.to_checksum_address(e.address) == market
            )
            owed = int(wrapper.fn.feesOwed().call(block_identifier=block))
            balance = int(self.token.fn.balanceOf(market).call(block_identifier=block))
            problems = []
            if owed != fees - withdrawn:
                problems.append(f"feesOwed {owed}, settlements earned {fees} and {withdrawn} was withdrawn")
            if balance != held + owed + credited:
                problems.append(
                    f"market holds {balance}, open escrow and bonds {held} + fees owed {owed} "
                    f"+ credits owed {credited}"
                )
            holds = (
                f"market holds {balance} = open escrow and bonds {held} + fees owed {owed} "
                f"+ credits owed {credited}"
            )
            checks.append(Check.of(f"escrow.{name}", problems, holds))
        return checks


def _payout(event: Event) -> tuple[str, int] | None:
    """Who a market's ``Withdrawn``/``FeesWithdrawn`` paid, and how much (``None`` for other events)."""
    if isinstance(event, Withdrawn):
        return Web3.to_checksum_address(event.account), event.amount
    if isinstance(event, FeesWithdrawn):
        return Web3.to_checksum_address(event.treasury), event.amount
    return None


def _fmt(amounts: dict[str, int]) -> str:
    return "{" + ", ".join(f"{k[:8]}…: {v}" for k, v in sorted(amounts.items())) + "}"


def _proof(
    bundle: Bundle, proof_bytes: bytes, instances: list[int], output: list[int], h: JobHistory
) -> Proof:
    commitment = int(h.intent.input_commitment) if h.intent else None
    return Proof.of(bundle.card, output, instances, proof_bytes, input_commitment=commitment)


__all__ = ["Auditor", "ModelRecord", "input_bound", "instances_for", "output_hash"]
