"""The provider node: quotes, accepts awarded jobs, infers, proves, delivers, gets paid.

:class:`ProviderNode` is a :class:`tender.daemon.Daemon`. ``setup`` opens the job store, loads
and warms the models, starts the proving pool and resumes every unfinished job; ``tasks`` is
the HTTP server; ``stop`` releases everything. Each accepted job runs as its own task through
the node's :class:`~provider._store.WorkStep` s

    accepted -> inferred -> proved -> delivered -> settled   (or failed)

writing each step to the store before the next one, so a restart picks up where it stopped. The
job's state in the market is read from the chain (:class:`tender.chain.JobState`) at each step;
the markets are :class:`tender.chain.AsyncMarket` s, so every market rule (the provider
deadline included) is the contract's.

Faults: an RPC error on a job's path is retried until the job's provider deadline (less
``health.rpc_margin_s``); transactions go through the key's one :class:`~tender.chain.TxSender`
with that ``retry_until``. The node follows the markets' events with the store as the feed's
cursor: a job the chain awards to it again (a reorg took the delivery back) is delivered again,
and a delivery whose settlement a reorg took back is finalized (or its challenge answered) again.
An optimistic job is delivered from the witness and proved only if challenged or audited.

Getting paid: a settlement credits the job's price to the provider in the market (``owed``);
after each settlement the node withdraws that market's credit, with its own transaction sender,
once it reaches ``provider.withdraw_threshold`` (0: never).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import json
import logging
import os
import socket
import time
from collections.abc import Coroutine, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import coincurve
import numpy as np
import uvicorn
from eth_utils import keccak, to_checksum_address
from numpy.typing import NDArray
from pydantic import ValidationError
from web3.exceptions import Web3Exception

from provider._backends import InferenceBackend, KServeBackend, OnnxRuntimeBackend
from provider._batch_proofs import batch_model, calibrate
from provider._batching import MicroBatcher
from provider._bundles import BundleInfo, commits_fast, input_commitment, load_bundle_info
from provider._chain import ProviderChain, job_id_bytes, tx_hash
from provider._clock import ChainClock
from provider._config import ModelEntry, ProviderSection
from provider._errors import (
    BadRequest,
    InputConflict,
    InputRejected,
    JobNotFound,
    ModelNotServed,
    NotAwarded,
    PayloadTooLarge,
    ProviderError,
    ProvingError,
)
from provider._inputs import check_input
from provider._metrics import Metrics
from provider._pricing import Ewma, Pricer
from provider._proving import (
    ProofResult,
    ProveFn,
    ProvingPool,
    WitnessFn,
    prove_with_bundle,
    witness_with_bundle,
)
from provider._spec import ModelSpec, read_spec
from provider._store import JobStore, StoredJob, WorkStep
from tender.chain import (
    AsyncEventFeed,
    AsyncMarket,
    Awarded,
    BidPlaced,
    Event,
    FailedOver,
    FeedCursor,
    InFlight,
    IntentPosted,
    Job,
    JobState,
    is_transient,
)
from tender.daemon import Daemon
from tender.errors import ChainError, ConfigError, ContractRevert, TenderError, TransactionFailed
from tender.intents import ProofMode, decode_input_uri, sign_digest
from tender.logs import log
from tender.wire import JobInput, JobStatus, Quote, QuoteRefusal, QuoteRequest, quote_digest

logger = logging.getLogger("provider.node")

_EIP191_PREFIX = b"\x19Ethereum Signed Message:\n32"

#: The market events the node follows (awards to it, and what a reorg may take back).
_FOLLOWED = [
    "BidPlaced",
    "Awarded",
    "FailedOver",
    "Delivered",
    "Challenged",
    "AuditRequired",
    "Settled",
    "Expired",
    "Slashed",
]

#: Seconds an award to us may wait for its input before the node reads it from the chain itself.
ADOPT_AFTER_S = 3.0
#: Chain seconds before a reverse auction ends at which a node whose bid leads proves the job
#: (``provider.prove_before_award``): the award, mined in the first block past the end, then finds
#: the proof made or under way instead of starting it.
PROVE_BEFORE_END_S = 1.0
#: Early proofs kept for jobs not (yet) awarded; the oldest is dropped past this.
EARLY_PROOFS_KEPT = 64
#: How many blocks before its award the node looks for an adopted job's ``IntentPosted``.
ADOPT_LOOKBACK_BLOCKS = 50_000

#: Seconds after a quote's auction window (and its time to live) that its award may still come.
_AWARD_GRACE_S = 10

#: the parts of the start-up warm-up (:attr:`ProviderNode.warming`)
WARM_QUOTES = "quote path"
WARM_PROVING = "proving"

#: On-chain states in which our delivery already happened.
_AFTER_DELIVERY = frozenset(
    {JobState.DELIVERED, JobState.CHALLENGED, JobState.PROOF_REQUIRED, JobState.SETTLED}
)
#: On-chain states in which our delivery stands but the job is not settled yet: someone must
#: still finalize it or answer its challenge (a reorg can bring a settled job back to these).
_UNSETTLED_DELIVERY = _AFTER_DELIVERY - {JobState.SETTLED}


def process_age_s() -> float | None:
    """Seconds since this process started, interpreter and imports included (Linux ``/proc``;
    ``None`` elsewhere)."""
    try:
        after_name = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - int(after_name[19]) / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def _transient(exc: BaseException) -> bool:
    """Whether an error on a job's path is the RPC (or the network) failing for now: retried."""
    return is_transient(exc) or isinstance(exc, ConnectionError | TimeoutError | aiohttp.ClientError)


@functools.lru_cache(maxsize=256)
def _checksum(address: str) -> str:
    """``to_checksum_address``, remembered: a quote names one of a few markets."""
    return to_checksum_address(address)


def sign_quote_digest(digest: bytes, key: str | coincurve.PrivateKey) -> str:
    """The EIP-191 (``personal_sign``) signature of a 32-byte digest, as 0x hex.

    The same bytes as ``Account.sign_message(encode_defunct(primitive=digest), key)``. A node
    passes its key built once (:func:`tender.intents.sign_digest`).
    """
    return "0x" + sign_digest(keccak(_EIP191_PREFIX + digest), key).hex()


@dataclass(slots=True)
class ServedModel:
    """A model this node serves: its tensors, bundle and batcher."""

    entry: ModelEntry
    spec: ModelSpec
    bundle: BundleInfo | None
    model_ids: list[str]
    batcher: MicroBatcher
    #: jobs per proof: 1, or ``N`` for the batch bundle of an entry (``batch_bundle``), served
    #: beside the entry's own model (same tensors and batcher, its own bundle and model ids)
    batch: int = 1

    @property
    def key(self) -> str:
        """The name its proofs and measurements go under: the model's, ``mlp@batch4`` for a batch."""
        return self.entry.name if self.batch == 1 else f"{self.entry.name}@batch{self.batch}"


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the daemon supervisor owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(listen: str) -> socket.socket:
    """A TCP socket bound to ``listen`` (``host:port``) and listening: taken before anything else
    starts, so that a busy port is one clear :class:`ConfigError`, not a half-started node."""
    host, _, port = listen.rpartition(":")
    try:
        infos = socket.getaddrinfo(host or "127.0.0.1", int(port), type=socket.SOCK_STREAM)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"provider.listen: cannot listen on {listen}: {exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        reason = "the port is in use (another node?)" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise ConfigError(f"provider.listen: cannot listen on {listen}: {reason}") from exc
    sock.setblocking(False)
    return sock


class ProviderNode(Daemon):
    """The provider daemon.

    Args:
        config: the ``[provider]`` section.
        chain: the markets (``None``: the node quotes and infers but cannot take jobs).
        key: the provider's private key (signs quotes; ``chain`` holds its own sender).
        backend: the inference backend (default: from ``config.backend``).
        prove: the function proving workers run (default: ``tender.models`` bundles).
        witness: the output felts without a proof, for optimistic deliveries (default: EZKL's witness).
        sock: the listening socket (:func:`bind`; default: bound at ``setup``).

    On SIGTERM the HTTP server stops accepting, drains the requests in flight (at most
    ``timeout_graceful_shutdown`` seconds) and closes before the jobs, store and chain
    connection are released: it never answers with a half-stopped node.
    """

    name = "provider"

    def __init__(
        self,
        config: ProviderSection,
        *,
        chain: ProviderChain | None,
        key: str,
        backend: InferenceBackend | None = None,
        prove: ProveFn = prove_with_bundle,
        witness: WitnessFn = witness_with_bundle,
        sock: socket.socket | None = None,
        started_at: float | None = None,
    ) -> None:
        super().__init__()
        self._sock = sock
        self.config = config
        self.chain = chain
        self._key = key
        self._signing_key = coincurve.PrivateKey(bytes.fromhex(key.removeprefix("0x")))
        from eth_account import Account

        self.address = to_checksum_address(Account.from_key(key).address)
        if chain is not None and chain.address != self.address:
            raise ConfigError(f"chain key {chain.address} differs from the quote key {self.address}")
        self.backend = backend or self._default_backend()
        self._prove_fn = prove
        self._witness_fn = witness
        #: the key's transactions unmined for longer than ``health.stuck_tx_s`` (refreshed in the background)
        self.stuck_txs: list[InFlight] = []
        self.metrics = Metrics()
        self.models: dict[str, ServedModel] = {}
        self.by_model_id: dict[str, ServedModel] = {}
        #: batch models (``provider.models.batch_bundle``) by key: quote-market jobs proved N at once
        self.batch_models: dict[str, ServedModel] = {}
        self.store: JobStore | None = None
        self.pool: ProvingPool | None = None
        self.pricer = Pricer(config.pricing, workers=config.workers())
        #: chain time for quotes, read from memory (refreshed in the background)
        self.clock = ChainClock(chain.now if chain is not None else None)
        self._jobs: dict[str, asyncio.Task[None]] = {}
        self._reconciling: set[str] = set()  # jobs whose chain state is being read by reconcile
        #: proofs made before the award (:meth:`_prove_early`): job id -> (what was proved, the proof)
        self._early: dict[str, tuple[tuple[str, str], asyncio.Task[ProofResult]] | None] = {}
        #: zk quotes not yet taken up (job id -> model, until when it may still be awarded, on
        #: the monotonic clock): proofs this node promised and may have to make soon
        self._promised: dict[str, tuple[str, float]] = {}
        #: the share of those quotes that became jobs lately (weights the promised proofs)
        self._quotes_won = Ewma(1.0)
        #: the markets' job events, with the store as cursor (``None``: no chain)
        self.feed: AsyncEventFeed | None = None
        self._background: set[asyncio.Task[None]] = set()
        #: what the node still warms up (see :meth:`_warm_up`); ``/health`` answers 503,
        #: ``status`` ``"warming"``, until it is empty
        self.warming: set[str] = set()
        self._server: _Server | None = None
        self._withdrawing: dict[str, asyncio.Lock] = {}
        #: when this node's start began (``time.time()``): the process start when the node is
        #: the process (``tender provider run`` passes it), else its creation (a node made inside a
        #: long-running process, as in tests, must not take that process's age for its start-up)
        self.started_at = time.time() if started_at is None else started_at
        from provider._rfq import RfqDesk

        #: the quote path (``/rfq/quote``, ``/rfq/run``)
        self.rfq = RfqDesk(self)

    def _default_backend(self) -> InferenceBackend:
        b = self.config.backend
        if b.kind == "kserve":
            names = {m.name: m.kserve_name or m.name for m in self.config.models}
            return KServeBackend(b.url or "", names=names, timeout_s=b.timeout_s)
        return OnnxRuntimeBackend(
            device=b.device, warm_batch=self.config.batching.max_batch, inline_ms=b.inline_ms
        )

    # -- lifecycle ----------------------------------------------------------------------

    async def setup(self) -> None:
        if self._sock is None:
            self._sock = bind(self.config.listen)
        await self.load()
        await self.resume()

    async def load(self) -> None:
        """Open the store, load the models and start the proving pool (no HTTP server)."""
        self.store = JobStore(self.config.store_path())
        specs = [read_spec(m.name, m.onnx) for m in self.config.models]
        await self.backend.load(specs)
        batching = self.config.batching
        registered = await self.chain.registered_models() if self.chain is not None else []
        for entry, spec in zip(self.config.models, specs, strict=True):
            bundle = load_bundle_info(entry.bundle) if entry.bundle is not None else None
            if entry.model_id:
                model_ids = [entry.model_id.lower()]
                if self.chain is not None and model_ids[0] not in {m.lower() for m, _, _ in registered}:
                    log(
                        logger,
                        "model.unregistered",
                        level=logging.WARNING,
                        model=entry.name,
                        model_id=entry.model_id,
                        reason="provider.models.model_id is not in the ModelRegistry: no intent can name it",
                    )
            elif bundle is not None:
                model_ids = [
                    mid
                    for mid, onnx, settings in registered
                    if onnx == bundle.onnx_sha256 and settings == bundle.settings_sha256
                ]
            else:
                raise ConfigError(f"provider.models.{entry.name}: set model_id or bundle")
            if not model_ids:
                log(
                    logger,
                    "model.unregistered",
                    level=logging.WARNING,
                    model=entry.name,
                    onnx_sha256=bundle.onnx_sha256 if bundle else None,
                )
            max_batch = batching.max_batch if batching.enabled and spec.dynamic_batch else 1
            served = ServedModel(entry, spec, bundle, model_ids, self._batcher(entry.name, max_batch))
            self.models[entry.name] = served
            for model_id in model_ids:
                self.by_model_id[model_id] = served
            if entry.batch_bundle is not None:
                batch = batch_model(served, registered)
                self.batch_models[batch.key] = batch
                for model_id in batch.model_ids:
                    self.by_model_id[model_id] = batch
            log(
                logger,
                "model.served",
                model=entry.name,
                model_ids=model_ids,
                max_batch=max_batch,
                execution_provider=self.backend.device(entry.name),
            )
        self.pool = ProvingPool(
            self.config.workers(),
            prove=self._prove_fn,
            nice=self.config.proving_nice,
            idle=self.config.proving_idle,
        )
        loop = asyncio.get_running_loop()
        self.warming = {WARM_QUOTES, *([WARM_PROVING] if self.config.proving_warmup else [])}
        self._background.add(loop.create_task(self._warm_up(), name="warm-up"))
        await self.clock.start()
        self._background.add(loop.create_task(self.clock.run(), name="chain-clock"))
        if self.chain is not None:
            self._background.add(loop.create_task(self._watch_txs(), name="stuck-txs"))
            cursor: FeedCursor = self.store  # the feed keeps its place in the job store (checked by mypy)
            self.feed = await self.chain.follow(cursor, names=_FOLLOWED)
            self._background.add(loop.create_task(self._follow_chain(), name="market-feed"))

    # -- following the chain ------------------------------------------------------------

    async def _follow_chain(self) -> None:
        """Read the markets' job events with the store as the cursor. An award to us (a failover
        or a re-award after a reorg) of a job the store thinks done, and every job a reorg
        touched, is checked against the chain again (:meth:`reconcile`)."""
        assert self.feed is not None
        while True:
            try:
                processed = await self.feed.step(self._on_events, self._on_rollback)
            except (
                TenderError,
                OSError,
                ValueError,
                Web3Exception,
                aiohttp.ClientError,
                TimeoutError,
            ) as exc:
                log(logger, "feed.error", level=logging.WARNING, error=repr(exc))
                processed = 0
            if processed == 0:
                await asyncio.sleep(self.config.poll_interval_s)

    def _on_events(self, events: list[Event]) -> None:
        """Note which block last spoke of each of our jobs (inside the feed's transaction); an
        award to us of a job whose input never came (the solver died after the award, or we
        were down when it tried) is taken up from the chain (:meth:`adopt`)."""
        assert self.store is not None
        for event in events:
            job_id = "0x" + bytes(getattr(event, "job_id", b"")).hex()
            if isinstance(event, BidPlaced):
                if (
                    self.config.prove_before_award
                    and self.pool is not None
                    and event.rank == 1
                    and _checksum(event.provider) == self.address
                    and job_id not in self._early
                ):
                    while len(self._early) >= EARLY_PROOFS_KEPT:  # jobs never awarded (refunded)
                        self._early.pop(next(iter(self._early)))
                    self._early[job_id] = None  # one early proof per job
                    self._background_task(
                        self._prove_early(job_id, _checksum(event.address), event.block_number),
                        f"early-{job_id[:10]}",
                    )
                continue
            to_us = (isinstance(event, Awarded) and _checksum(event.provider) == self.address) or (
                isinstance(event, FailedOver) and _checksum(event.to) == self.address
            )
            record = self.store.get(job_id)
            if record is None:
                if isinstance(event, Awarded | FailedOver) and not to_us:
                    self._quote_lost(job_id)
                    self._early.pop(job_id, None)  # a proof under way finishes; nobody waits for it
                if to_us:
                    self._background_task(
                        self.adopt(job_id, _checksum(event.address), event.block_number),
                        f"adopt-{job_id[:10]}",
                    )
                continue
            self.store.update(job_id, chain_block=event.block_number)
            if to_us:
                self._soon(job_id)

    def _on_rollback(self, fork: int, touched: Sequence[Any]) -> None:
        log(logger, "chain.reorg", level=logging.WARNING, fork=fork, jobs=len(touched))
        for job_id in touched:
            self._soon(str(job_id))

    def _soon(self, job_id: str) -> None:
        self._background_task(self.reconcile(job_id), f"reconcile-{job_id[:10]}")

    def _background_task(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def adopt(self, job_id: str, market: str, awarded_block: int) -> None:
        """Take up a job the chain awarded to us whose input has not come: after
        :data:`ADOPT_AFTER_S` (the solver's upload normally comes first), read the input the
        intent carries inline (its ``IntentPosted`` event) and accept it as if it had been
        uploaded. An input behind a URI, or a job no longer awarded to us, is left alone."""
        assert self.store is not None
        assert self.chain is not None
        await asyncio.sleep(ADOPT_AFTER_S)
        if self.store.get(job_id) is not None or market not in self.chain.markets:
            return
        try:
            data = await self._inline_input(job_id, market, awarded_block)
            if data is None:
                log(logger, "job.adopt_skipped", job_id=job_id, reason="no inline input on chain")
                return
            body = JobInput(jobId=job_id, market=market, input=data).model_dump_json().encode()
            _, new = await self.accept(body)
        except (TenderError, OSError, ValueError, aiohttp.ClientError, TimeoutError) as exc:
            log(logger, "job.adopt_failed", level=logging.WARNING, job_id=job_id, error=repr(exc))
            return
        if new:
            log(
                logger,
                "job.adopted",
                level=logging.WARNING,
                job_id=job_id,
                reason="awarded to us, no input came",
            )

    async def _inline_input(self, job_id: str, market: str, block: int) -> Any:
        """The input job ``job_id``'s intent carries inline (its ``IntentPosted`` event, looked for
        up to ``block``), or ``None`` (an input behind a URI)."""
        assert self.chain is not None
        wrapper = self.chain.market(market).sync
        posted = await asyncio.to_thread(
            lambda: [
                e
                for e in wrapper.events(
                    max(0, block - ADOPT_LOOKBACK_BLOCKS),
                    block,
                    names=["IntentPosted"],
                    job_id=job_id_bytes(job_id),
                )
                if isinstance(e, IntentPosted)
            ]
        )
        return decode_input_uri(bytes(posted[-1].intent.input_location)) if posted else None

    async def _prove_early(self, job_id: str, market: str, bid_block: int) -> None:
        """Prove a zk reverse job our bid leads before it is awarded: at
        :data:`PROVE_BEFORE_END_S` before its auction ends, if our bid still leads, its inline
        input is proved in the pool (at the job's deadline, like any job) and :meth:`_prove` takes
        that proof once the award and the input come. On 2 s blocks the award is mined a block
        after the end: the proof no longer starts when it is seen. A lead lost at the last moment
        (a later bid, a skipped award) costs one proof nobody uses; nothing is sent on chain."""
        assert self.chain is not None
        assert self.pool is not None
        pool = self.pool
        try:
            if market not in self.chain.markets:
                return
            on_chain = self.chain.market(market)
            job = await on_chain.job(job_id_bytes(job_id))
            served = self.by_model_id.get("0x" + job.model_id.hex())
            if (
                job.state is not JobState.OPEN
                or job.proof_mode is not ProofMode.ZK
                or served is None
                or served.bundle is None
            ):
                return
            wait = job.auction_end - PROVE_BEFORE_END_S - self.clock.now()
            if wait > 0:
                await asyncio.sleep(wait)
            best = await on_chain.best_bid(job_id_bytes(job_id))
            if _checksum(best.provider) != self.address or job_id not in self._early:
                return
            data = await self._inline_input(job_id, market, bid_block)
            if data is None:
                return
            row = check_input(served.spec.input, data).tolist()
            proof = asyncio.ensure_future(
                pool.prove(str(served.bundle.path), row, deadline=job.deadline, model=served.entry.name)
            )
            proof.add_done_callback(lambda done: done.cancelled() or done.exception())
            if job_id in self._early:
                self._early[job_id] = ((str(served.bundle.path), json.dumps(row)), proof)
            log(
                logger,
                "job.proving_early",
                job_id=job_id,
                model=served.entry.name,
                auction_end=job.auction_end,
            )
        except (TenderError, OSError, ValueError, aiohttp.ClientError, TimeoutError) as exc:
            log(logger, "job.early_proof_skipped", level=logging.WARNING, job_id=job_id, error=repr(exc))
        finally:
            if job_id in self._early and self._early[job_id] is None:  # no proof was started
                del self._early[job_id]

    async def reconcile(self, job_id: str) -> None:
        """Follow the chain, not the store: a job whose task has ended is started again when the
        chain says there is work left for us: awarded to us (the store says settled, failed or
        delivered: delivered again), or our delivery back in a non-terminal state (a reorg took
        the settlement back: finalized, or its challenge answered, again)."""
        assert self.store is not None
        assert self.chain is not None
        running = self._jobs.get(job_id)
        if (running is not None and not running.done()) or job_id in self._reconciling:
            return  # its task reads the chain each step (and goes back to delivery itself)
        self._reconciling.add(job_id)  # one reconciliation at a time: never two tasks for a job
        try:
            await self._reconcile(job_id)
        finally:
            self._reconciling.discard(job_id)

    async def _reconcile(self, job_id: str) -> None:
        assert self.store is not None
        assert self.chain is not None
        record = self.store.get(job_id)
        if record is None or record.step is WorkStep.DECLINED:
            return
        market = self.chain.market(record.market)
        ended = (WorkStep.DELIVERED, WorkStep.SETTLED, WorkStep.FAILED)
        try:
            job = await market.job(job_id_bytes(job_id))
            if _checksum(job.provider) != self.address:
                return
            if job.state is JobState.AWARDED:
                if record.step in ended:
                    await self._redeliver(record, market, f"awarded to us on chain, {record.step.value} here")
            elif job.state in _UNSETTLED_DELIVERY and record.step in ended:
                if record.step is not WorkStep.DELIVERED:
                    log(
                        logger,
                        "job.unsettled_again",
                        level=logging.WARNING,
                        job_id=job_id,
                        state=job.state.name.lower(),
                        was=record.step.value,
                    )
                    self._set(record, WorkStep.DELIVERED, error=None)
            else:
                return
        except (TenderError, OSError, aiohttp.ClientError, TimeoutError) as exc:  # the next event retries
            log(logger, "job.reconcile_failed", level=logging.WARNING, job_id=job_id, error=repr(exc))
            return
        self._start(record)

    async def _watch_txs(self) -> None:
        """Keep :attr:`stuck_txs` current for ``/health`` (the sender asks the chain which nonces
        are mined; during an outage it answers from its own view)."""
        assert self.chain is not None
        older_than = self.config.health.stuck_tx_s
        while True:
            try:
                self.stuck_txs = await asyncio.to_thread(self.chain.sender.stuck, older_than)
            except (TenderError, OSError, ValueError, Web3Exception) as exc:  # the local view stays
                log(logger, "health.tx_check_failed", level=logging.DEBUG, error=repr(exc))
            await asyncio.sleep(1.0)

    async def _warm_up(self) -> None:
        """Pay every first-use cost before the node says it is ready (``/health`` 200): the
        quote path's input commitment and witness per model (:meth:`RfqDesk.warm`) and, with
        ``provider.proving_warmup``, the proving workers and one timed proof per model
        (:meth:`_warm_pool`), so the first real quote round costs what later ones do and is
        not slowed by calibration proofs. Each part is done (or failed, logged) once; the
        node is ready when both are, and serves meanwhile (only ``/health`` says it is warming)."""
        started = time.perf_counter()

        async def part(name: str, warm: Coroutine[Any, Any, None]) -> None:
            try:
                await warm
            finally:
                self.warming.discard(name)

        parts = [part(WARM_QUOTES, self.rfq.warm())]
        if WARM_PROVING in self.warming:
            parts.append(part(WARM_PROVING, self._warm_pool()))
        await asyncio.gather(*parts)
        log(logger, "provider.ready", seconds=round(time.perf_counter() - started, 3))

    async def _warm_pool(self) -> None:
        """Start the proving workers, then time one proof per model so the first quotes promise
        a latency measured on this machine rather than a guess."""
        assert self.pool is not None
        started = time.perf_counter()
        try:
            await self.pool.warm()
            log(
                logger,
                "proving.ready",
                workers=self.pool.workers,
                seconds=round(time.perf_counter() - started, 3),
            )
            for name, served in self.models.items():
                if served.bundle is None:
                    continue
                zeros = np.zeros(served.spec.input.single_shape(), dtype=served.spec.input.dtype).tolist()
                result = await self.pool.prove(str(served.bundle.path), zeros, track=False, model=name)
                self.pricer.observe(name, proof_s=result.seconds)
                log(logger, "proving.calibrated", model=name, proof_s=round(result.seconds, 3))
            for key, batch in self.batch_models.items():
                seconds = await calibrate(self, batch)
                log(logger, "proving.calibrated", model=key, proof_s=round(seconds, 3))
        except (TenderError, OSError, RuntimeError) as exc:  # the first real proof shows (and retries) it
            log(logger, "proving.warm_failed", level=logging.WARNING, error=repr(exc))

    def _batcher(self, model: str, max_batch: int) -> MicroBatcher:
        sizes = self.metrics.batch_size.labels(model)
        times = self.metrics.inference.labels(model)

        async def run(batch: NDArray[Any]) -> NDArray[Any]:
            return await self.backend.infer(model, batch)

        def on_batch(size: int, seconds: float) -> None:
            sizes.observe(size)
            times.observe(seconds)
            self.pricer.observe(model, inference_s=seconds / size)

        return MicroBatcher(
            run, max_batch=max_batch, max_wait_ms=self.config.batching.max_wait_ms, on_batch=on_batch
        )

    def tasks(self) -> list[Coroutine[Any, Any, None]]:
        return [self.serve_http()]

    async def serve_http(self) -> None:
        from provider._app import create_app

        # httptools: uvicorn's C parser (h11 is pure Python). Keep-alive outlives the solvers'
        # pools (aiohttp's 30 s), so a solver's idle connection is closed by the solver, never
        # under a quote it is sending.
        config = uvicorn.Config(
            create_app(self),
            host=self.config.host,
            port=self.config.port,
            log_level="warning",
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=2,
            http="httptools",
            timeout_keep_alive=75,
        )
        self._server = server = _Server(config)
        if self._sock is None:
            self._sock = bind(self.config.listen)
        sockets = [self._sock]
        # how long a restart takes here, as loaded as the machine is now
        started_s = max(0.0, time.time() - self.started_at)
        self.pricer.observe_startup(started_s)
        log(
            logger,
            "http.listening",
            listen=self.config.listen,
            address=self.address,
            startup_s=round(started_s, 1),
        )
        try:
            await server.serve(sockets=sockets)
        except asyncio.CancelledError:
            await self._close_http(server, sockets)
            raise
        if not self.stopping.is_set():
            raise ProviderError(f"HTTP server on {self.config.listen} stopped")

    async def _close_http(self, server: _Server, sockets: list[socket.socket]) -> None:
        """Stop accepting, drain the requests in flight, close (before anything else stops)."""
        server.should_exit = True
        if getattr(server, "started", False):
            await server.shutdown(sockets=sockets)
        for sock in sockets:
            sock.close()
        self._sock = None

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._sock is not None:  # never served (setup failed): release the port
            self._sock.close()
            self._sock = None
        await self.rfq.close()
        for task in [*self._jobs.values(), *self._background]:
            task.cancel()
        await asyncio.gather(*self._jobs.values(), *self._background, return_exceptions=True)
        for served in self.models.values():
            await served.batcher.close()
        await self.backend.close()
        if self.pool is not None:
            self.pool.close()
        if self.chain is not None:
            await self.chain.close()
        if self.store is not None:
            self.store.close()

    # -- quotes -------------------------------------------------------------------------

    def _active(self) -> int:
        return sum(1 for t in self._jobs.values() if not t.done())

    async def quote(self, request: QuoteRequest) -> Quote | QuoteRefusal:
        """A signed quote for ``request``, or a refusal with the reason."""
        intent = request.intent

        def refuse(reason: str, outcome: str) -> QuoteRefusal:
            self.metrics.quotes.labels(outcome).inc()
            return QuoteRefusal(jobId=request.jobId, provider=self.address, reason=reason)

        served = self.by_model_id.get(intent.modelId.lower())
        if served is None:
            return refuse(f"unknown model {intent.modelId}", "unknown_model")
        if served.batch > 1:
            return refuse(f"batch model {intent.modelId}: quote market only (/rfq/quote)", "unknown_model")
        if self.chain is not None:
            if request.chainId != self.chain.chain_id:
                return refuse(f"unknown chain {request.chainId}", "unknown_market")
            if _checksum(request.market) not in self.chain.markets:
                return refuse(f"unknown market {request.market}", "unknown_market")
        if self._active() >= self.config.max_jobs:
            return refuse(f"no capacity: {self._active()} jobs in flight", "no_capacity")
        mismatch = await self._input_mismatch(served, intent.inputLocation, int(intent.inputCommitment))
        if mismatch is not None:
            return refuse(mismatch, "input_mismatch")
        now = self.clock.now()  # from memory: a quote makes no RPC
        queued = self.pool.in_flight if self.pool else 0
        zk = intent.proofMode != 1
        offer = self.pricer.offer(
            served.entry.name,
            max_price=int(intent.maxPrice),
            queued=queued,
            now=now,
            deadline=intent.deadline,
            optimistic=not zk,
            ahead=self.proofs_ahead(request.jobId.lower()),
        )
        if offer.refusal is not None:
            return refuse(offer.refusal, offer.refusal.split(":")[0].replace(" ", "_"))
        if zk:
            until = self.config.pricing.quote_ttl_s + int(intent.auctionWindow) + _AWARD_GRACE_S
            self._promised[request.jobId.lower()] = (served.entry.name, time.monotonic() + until)
        expires_at = int(time.time()) + self.config.pricing.quote_ttl_s
        unsigned = Quote(
            jobId=request.jobId,
            provider=self.address,
            price=str(offer.price),
            latency_s=offer.latency_s,
            capacity=max(0, self.config.max_jobs - self._active()),
            region=self.config.region,
            expires_at=expires_at,
            signature="0x",
        )
        signed = unsigned.model_copy(
            update={"signature": sign_quote_digest(quote_digest(unsigned), self._signing_key)}
        )
        self.metrics.quotes.labels("quoted").inc()
        log(
            logger,
            "quote.sent",
            job_id=request.jobId,
            model=served.entry.name,
            price=offer.price,
            cost=offer.cost,
            latency_s=offer.latency_s,
        )
        return signed

    def proofs_ahead(self, job_id: str | None = None) -> list[float]:
        """The proofs a new job's proof may wait behind, in seconds (each its model's measured
        proving time): every proof queued or running in the pool, and every proof promised in
        a zk quote not yet taken up nor past its award (but ``job_id``'s own), weighted by the
        share of quotes that became jobs lately."""
        ahead = [self.pricer.proof_estimate(m) for m in (self.pool.backlog() if self.pool else [])]
        now = time.monotonic()
        for key, (model, until) in list(self._promised.items()):
            if until < now:
                del self._promised[key]
                self._quotes_won.add(0.0)
            elif key != job_id:
                ahead.append(self.pricer.proof_estimate(model) * self._quotes_won.value)
        return ahead

    def _quote_lost(self, job_id: str) -> None:
        """A quoted job was awarded to another provider: its proof will not be ours to make."""
        if self._promised.pop(job_id, None) is not None:
            self._quotes_won.add(0.0)

    def _taken_up(self, job_id: str) -> None:
        """A quoted job was awarded to us and its input arrived: its proof is in the pool now."""
        if self._promised.pop(job_id, None) is not None:
            self._quotes_won.add(1.0)

    async def _input_mismatch(self, served: ServedModel, location: str, commitment: int) -> str | None:
        """Why an intent's inline input cannot be served as committed (it does not fit the model,
        or does not match ``commitment``), or ``None``. Checked before quoting, so the node never
        wins a job it would have to decline; an input behind a URI is checked when it arrives."""
        try:
            data = decode_input_uri(bytes.fromhex(location.removeprefix("0x")))
        except ValueError as exc:
            return f"inline input is not JSON: {exc}"
        if data is None or served.bundle is None:
            return None
        try:
            array = check_input(served.spec.input, data)
        except InputRejected as exc:
            return f"inline input does not fit the model: {exc.message}"
        if commits_fast(served.bundle):  # ~1-2 ms of arithmetic; EZKL goes off the event loop
            got = input_commitment(served.bundle, array)
        else:
            got = await asyncio.to_thread(input_commitment, served.bundle, array)
        if got != commitment:
            return f"inline input commits to {got}, the intent to {commitment}"
        return None

    # -- accepting jobs -----------------------------------------------------------------

    def parse_job_input(self, body: bytes) -> JobInput:
        """Parse a ``POST /jobs`` body: size, JSON, then the envelope (the input is checked later)."""
        if len(body) > self.config.max_payload_bytes:
            raise PayloadTooLarge(
                f"body is {len(body)} bytes, over the {self.config.max_payload_bytes} limit", field="body"
            )
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: see tender.bounds
            raise BadRequest(f"body is not JSON: {exc}", field="body", code="invalid_json") from exc
        if not isinstance(data, dict):
            raise BadRequest("body must be a JSON object", field="body", code="invalid_body")
        raw_input = data.get("input")
        envelope = {**data, "input": [0.0]} if "input" in data else data
        try:
            job = JobInput.model_validate(envelope)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            raise BadRequest(f"{where}: {first['msg']}", field=where, code="invalid_body") from exc
        # The real input is checked against the model card (shape and dtype) once we know the model.
        return job.model_copy(update={"input": raw_input})

    async def accept(self, body: bytes) -> tuple[JobStatus, bool]:
        """Accept an awarded job's input; returns its status and whether it is new.

        Every check happens before the job is written; a refused input leaves no row.
        """
        assert self.store is not None
        job_input = self.parse_job_input(body)
        job_id = job_input.jobId.lower()
        existing = self.store.get(job_id)
        if existing is not None:
            status = self._again(existing, job_input)
            if self.chain is not None and existing.step in (
                WorkStep.DELIVERED,
                WorkStep.SETTLED,
                WorkStep.FAILED,
            ):
                await self.reconcile(job_id)  # the chain, not the store: awarded again -> deliver again
                status = self.status(job_id)
            return status, False
        if self.chain is None:
            raise NotAwarded("this node has no chain access and takes no jobs", field="jobId")
        market = to_checksum_address(job_input.market)
        if market not in self.chain.markets:
            raise NotAwarded(f"market {market} is not served by this node", field="market")
        on_chain = self.chain.market(market)
        chain_job = await on_chain.job(job_id_bytes(job_id))
        if not chain_job.exists:
            raise NotAwarded(f"job {job_id} does not exist on market {market}", field="jobId")
        if chain_job.state is not JobState.AWARDED or to_checksum_address(chain_job.provider) != self.address:
            raise NotAwarded(
                f"job {job_id} is {chain_job.state.name.lower()} for provider {chain_job.provider},"
                f" not awarded to {self.address}",
                field="jobId",
            )
        model_id = "0x" + chain_job.model_id.hex()
        served = self.by_model_id.get(model_id)
        if served is None:
            raise ModelNotServed(f"model {model_id} of job {job_id} is not served here", field="modelId")
        deadline = await on_chain.provider_deadline(job_id_bytes(job_id))
        if await self.chain.now() >= deadline:
            raise NotAwarded(
                f"job {job_id} is past its delivery deadline {deadline}",
                field="jobId",
                code="deadline_passed",
            )
        array = check_input(served.spec.input, job_input.input)
        record = StoredJob(
            job_id=job_id,
            market=market,
            model=served.entry.name,
            input=job_input.input,
            input_commitment=str(chain_job.input_commitment),
            deadline=deadline,
            proof_mode=int(chain_job.proof_mode),
            price=str(chain_job.price),
        )
        try:
            # a polycommit commitment is a KZG MSM (~15 ms): off the event loop
            await asyncio.to_thread(self._check_commitment, served, array, chain_job)
        except InputRejected as exc:
            if exc.code == "commitment_mismatch":
                await self._decline(record, exc)
            raise
        if not self.store.insert(record):  # a concurrent upload of the same job won the race
            existing = self.store.get(job_id)
            assert existing is not None
            return self._again(existing, job_input), False
        self._taken_up(job_id)
        self.metrics.jobs.labels(WorkStep.ACCEPTED.value).inc()
        log(
            logger,
            "job.accepted",
            job_id=job_id,
            model=served.entry.name,
            seq=record.seq,
            deadline=record.deadline,
            proof_mode=record.proof_mode,
            price=record.price,
        )
        self._start(record)
        return self.status_of(record), True

    def _again(self, existing: StoredJob, job_input: JobInput) -> JobStatus:
        """An upload for a job accepted before: its status if it is the same input, else 409."""
        if existing.input != job_input.input or existing.market != to_checksum_address(job_input.market):
            raise InputConflict(f"job {existing.job_id} was accepted with another input", field="input")
        return self.status_of(existing)

    async def _decline(self, accepted: StoredJob, rejected: InputRejected) -> None:
        """Give back a job whose input does not match the intent's commitment: doing it would
        prove a different input than the one committed to, and not doing it would be slashed.
        A decline costs no stake (it stays locked until the deadline; the job task frees it
        then). ``rejected`` gets the decline's transaction in its message; if the market refuses
        the decline (its window, the first quarter of the latency, is over) nothing is stored."""
        assert self.chain is not None
        assert self.store is not None
        job_id = accepted.job_id
        try:
            tx = tx_hash(await self.chain.market(accepted.market).decline(job_id_bytes(job_id)))
        except ChainError as exc:  # too late to decline (DeclineWindowClosed)
            log(logger, "job.decline_failed", level=logging.WARNING, job_id=job_id, error=str(exc))
            rejected.message = f"{rejected.message}; the decline failed: {exc}"
            rejected.args = (rejected.message,)
            return
        record = replace(accepted, step=WorkStep.DECLINED, tx={"decline": tx}, error=rejected.message)
        if self.store.insert(record):
            self.metrics.jobs.labels(WorkStep.DECLINED.value).inc()
            log(
                logger,
                "job.declined",
                job_id=job_id,
                tx=tx,
                reason=rejected.message,
                release_at=record.deadline,
            )
            self._start(record)
        rejected.message = f"{rejected.message}; declined on chain (tx {tx})"
        rejected.args = (rejected.message,)

    async def _release(self, record: StoredJob) -> None:
        """Free the stake of a declined job once its provider deadline has passed (chain time)."""
        assert self.chain is not None
        market = self.chain.market(record.market)
        while True:
            now = self.clock.now()  # from memory: it keeps estimating through an outage
            if now <= record.deadline:
                await asyncio.sleep(
                    min(max(1.0, record.deadline - now + 1.0), 30.0, self.config.poll_interval_s * 10)
                )
                continue
            try:
                tx = tx_hash(await market.release_declined(job_id_bytes(record.job_id), self.address))
            except ContractRevert as exc:
                if exc.name == "NotExpired":  # our clock read a block ahead of the next one
                    await asyncio.sleep(self.config.poll_interval_s)
                    continue
                if exc.name != "NotDeclined":  # NotDeclined: somebody released it already
                    raise
                tx = ""
            except (OSError, aiohttp.ClientError, TimeoutError, ChainError) as exc:  # the RPC: try again
                if (isinstance(exc, TransactionFailed) and exc.revert is not None) or (
                    isinstance(exc, OSError) and not _transient(exc)
                ):
                    raise
                log(logger, "job.release_retry", level=logging.WARNING, job_id=record.job_id, error=repr(exc))
                await asyncio.sleep(self.config.poll_interval_s * 10)
                continue
            self._set(
                record,
                WorkStep.FAILED,
                tx={**record.tx, "release": tx} if tx else record.tx,
                error=f"declined: {record.error}; stake released",
            )
            return

    def _check_commitment(self, served: ServedModel, array: NDArray[Any], job: Job) -> None:
        if served.bundle is None:
            raise InputRejected(
                f"model {served.entry.name} has no bundle: cannot check commitments",
                field="input",
                code="commitment_unavailable",
            )
        got = input_commitment(served.bundle, array)
        if got != job.input_commitment:
            raise InputRejected(
                f"input commits to {got}, the intent committed to {job.input_commitment}",
                field="input",
                code="commitment_mismatch",
            )

    # -- status -------------------------------------------------------------------------

    def status_of(self, record: StoredJob) -> JobStatus:
        return JobStatus(
            jobId=record.job_id,
            state=record.step.value,
            output=record.output,
            outputFelts=record.output_felts,
            proof=record.proof,
            txHashes=dict(record.tx),
            error=record.error,
        )

    def status(self, job_id: str) -> JobStatus:
        assert self.store is not None
        record = self.store.get(job_id.lower())
        if record is None:
            raise JobNotFound(f"no job {job_id} here", field="jobId")
        return self.status_of(record)

    def health(self) -> dict[str, Any]:
        """What ``/health`` answers: ``status`` is ``"ok"``, ``"warming"`` (the start-up warm-up
        is not done: :attr:`warming`), or ``"unhealthy"`` with ``reasons`` (the chain
        unreachable for ``health.chain_stale_s``, a transaction stuck, the proof queue behind);
        the route answers 503 unless it is ``"ok"``. No I/O: every figure is in memory."""
        limits = self.config.health
        reasons: list[str] = []
        age = self.clock.read_age_s()
        if age is not None and age > limits.chain_stale_s:
            reasons.append(f"chain unreachable: no head read for {age:.1f}s ({self.clock.error})")
        if self.stuck_txs:
            oldest = self.stuck_txs[0]
            reasons.append(
                f"{len(self.stuck_txs)} transaction(s) stuck: nonce {oldest.nonce} unmined "
                f"for {oldest.age_s:.0f}s"
            )
        waiting = self.pool.oldest_age_s() if self.pool else 0.0
        if waiting > limits.proof_wait_s:
            reasons.append(f"proof queue behind: a proof has waited {waiting:.0f}s")
        status = "unhealthy" if reasons else "warming" if self.warming else "ok"
        if self.warming:
            reasons.append("warming up: " + ", ".join(sorted(self.warming)))
        return {
            "status": status,
            "reasons": reasons,
            "provider": self.address,
            "uptime_s": round(time.time() - self.started_at, 3),
            "backend": self.backend.kind,
            "models": {name: self.backend.device(name) for name in self.models},
            "proving_in_flight": self.pool.in_flight if self.pool else 0,
            "jobs_active": self._active(),
            "chain": {
                "reachable": age is not None and age <= limits.chain_stale_s,
                "head_timestamp": self.clock.head_timestamp,
                "last_head_read_age_s": None if age is None else round(age, 3),
                "error": self.clock.error,
            }
            if self.chain is not None
            else None,
            "stuck_txs": [
                {"nonce": t.nonce, "tx": t.tx_hash, "versions": t.versions, "age_s": t.age_s}
                for t in self.stuck_txs
            ],
            "proof_queue": {
                "length": self.pool.in_flight if self.pool else 0,
                "oldest_age_s": round(waiting, 3),
                "workers": self.pool.workers if self.pool else 0,
            },
        }

    # -- inference ----------------------------------------------------------------------

    async def infer(self, model: str, row: NDArray[Any]) -> NDArray[Any]:
        """One request through the model's micro-batcher (shape ``(1, ...)`` in and out)."""
        served = self.models.get(model)
        if served is None:
            raise ModelNotServed(f"model {model!r} is not served here", field="model")
        return await served.batcher.submit(row)

    # -- running jobs -------------------------------------------------------------------

    def _start(self, record: StoredJob) -> None:
        task = asyncio.get_running_loop().create_task(
            self._run_job(record.job_id), name=f"job-{record.job_id[:10]}"
        )
        self._jobs[record.job_id] = task
        self.metrics.active_jobs.set(self._active())
        task.add_done_callback(self._job_done)

    def _job_done(self, task: asyncio.Task[None]) -> None:
        self.metrics.active_jobs.set(self._active())
        if not task.cancelled() and task.exception() is not None:
            # A bug, not a job failure: keep the row as it is (a restart resumes it) and say so.
            log(
                logger, "job.crashed", level=logging.ERROR, task=task.get_name(), error=repr(task.exception())
            )

    async def resume(self) -> None:
        """Restart every unfinished job whose deadline has not passed."""
        assert self.store is not None
        unfinished = self.store.unfinished()
        if not unfinished:
            return
        now = await self.chain.now() if self.chain is not None else int(time.time())
        for record in unfinished:
            if record.step not in (WorkStep.DELIVERED, WorkStep.DECLINED) and record.deadline <= now:
                self._set(record, WorkStep.FAILED, error="deadline passed while the node was down")
                continue
            log(logger, "job.resumed", job_id=record.job_id, step=record.step.value)
            self._start(record)

    def _set(self, record: StoredJob, step: WorkStep, **changes: Any) -> None:
        assert self.store is not None
        record.step = step
        for name, value in changes.items():
            setattr(record, name, value)
        self.store.update(record.job_id, step=step, **changes)
        self.metrics.jobs.labels(step.value).inc()
        log(
            logger,
            f"job.{step.value}",
            job_id=record.job_id,
            **{k: v for k, v in changes.items() if k in ("error", "tx")},
        )

    async def _run_job(self, job_id: str) -> None:
        assert self.store is not None
        record = self.store.get(job_id)
        if record is None:
            return
        served = self.models.get(record.model)
        try:
            if served is None:
                raise ModelNotServed(f"model {record.model} is no longer served")
            misbehave = self.config.misbehave
            if misbehave.silent_on_job is not None and record.seq == misbehave.silent_on_job:
                log(logger, "misbehave.silent", level=logging.WARNING, job_id=job_id, seq=record.seq)
                return
            if record.step is WorkStep.DECLINED:
                await self._release(record)
            else:
                await self._with_retries(record, served)
        except asyncio.CancelledError:
            raise
        except (TenderError, OSError) as exc:
            log(
                logger,
                "job.error",
                level=logging.ERROR,
                job_id=job_id,
                step=record.step.value,
                error=repr(exc),
                revert=repr(getattr(exc, "revert", None)),
            )
            self._set(record, WorkStep.FAILED, error=str(exc))

    def _until(self, record: StoredJob) -> float:
        """Unix seconds until which RPC errors on the job's path are retried: its provider
        deadline (chain time) less ``health.rpc_margin_s``, on the wall clock. Once delivered,
        what is left (answering a challenge, finalizing) has its own, later windows: a day on."""
        if record.step in (WorkStep.DELIVERED, WorkStep.SETTLED):
            return time.time() + 86_400
        left = record.deadline - self.clock.now() - self.config.health.rpc_margin_s
        return time.time() + max(0.0, left)

    async def _with_retries(self, record: StoredJob, served: ServedModel) -> None:
        """Advance the job; a transient failure (the RPC down or refusing, a proving worker
        died) is retried with a bounded backoff while the job's deadline allows (and without
        end once delivered). Reverts and bad proofs are final."""
        delay = 0.5
        while True:
            try:
                await self._advance(record, served)
                if record.step in (WorkStep.ACCEPTED, WorkStep.INFERRED, WorkStep.PROVED):
                    delay = 0.5  # sent back to delivery by the chain (a reorg): deliver again
                    continue
                return
            except (ProvingError, ChainError, OSError, aiohttp.ClientError, TimeoutError) as exc:
                # A decoded revert is final; a failed transaction that replays cleanly (gas, a
                # race with another sender) is retried: _deliver re-reads the job first.
                if isinstance(exc, ContractRevert) or (
                    isinstance(exc, TransactionFailed) and exc.revert is not None
                ):
                    raise
                if isinstance(exc, OSError) and not _transient(exc):
                    raise
                if time.time() + delay >= self._until(record):
                    raise
                record.attempts += 1
                assert self.store is not None
                self.store.update(record.job_id, attempts=record.attempts)
                log(
                    logger,
                    "job.retry",
                    level=logging.WARNING,
                    job_id=record.job_id,
                    step=record.step.value,
                    attempt=record.attempts,
                    error=repr(exc),
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _advance(self, record: StoredJob, served: ServedModel) -> None:
        assert self.store is not None
        assert self.pool is not None
        name = served.entry.name
        if record.step is WorkStep.ACCEPTED:
            row = check_input(served.spec.input, record.input)
            out = await self.infer(name, row)
            self._set(record, WorkStep.INFERRED, output=[float(x) for x in np.asarray(out).ravel()])
        if record.step is WorkStep.INFERRED:
            if served.bundle is None:
                raise ProviderError(f"model {name} has no bundle to prove with")
            if record.proof_mode == 1:
                # Optimistic: the output felts (EZKL's witness, no proof) are all a delivery
                # sends; the proof is made only if a challenge or an audit asks for it.
                data = check_input(served.spec.input, record.input).tolist()
                started = time.perf_counter()
                felts = await asyncio.to_thread(self._witness_fn, str(served.bundle.path), data)
                self.pricer.observe(name, witness_s=time.perf_counter() - started)
                self._set(record, WorkStep.PROVED, output_felts=felts)
            else:
                proof = await self._prove(record, served)
                self._set(
                    record, WorkStep.PROVED, output_felts=proof.output_felts, proof="0x" + proof.proof.hex()
                )
        if record.step is WorkStep.PROVED:
            await self._deliver(record)
        if record.step is WorkStep.DELIVERED:
            await self._follow(record, served)

    async def _prove(
        self, record: StoredJob, served: ServedModel, *, deadline: float | None = None
    ) -> ProofResult:
        """Prove the job's input in the pool, ahead of the proofs due later than ``deadline``
        (unix seconds; the job's delivery deadline by default). Timed: the measurement feeds
        the quoted latency."""
        assert self.pool is not None
        assert served.bundle is not None
        row = check_input(served.spec.input, record.input).tolist()
        early = self._early.pop(record.job_id, None)
        self.metrics.proving_queue.inc()
        try:
            proof: ProofResult | None = None
            if early is not None and early[0] == (str(served.bundle.path), json.dumps(row)):
                with contextlib.suppress(ProvingError):  # proved again below
                    proof = await early[1]
                    log(logger, "job.early_proof_used", job_id=record.job_id)
            if proof is None:
                proof = await self.pool.prove(
                    str(served.bundle.path),
                    row,
                    deadline=record.deadline if deadline is None else deadline,
                    model=served.entry.name,
                )
        finally:
            self.metrics.proving_queue.dec()
        self.metrics.proof.labels(served.entry.name).observe(proof.seconds)
        self.pricer.observe(served.entry.name, proof_s=proof.seconds)
        return proof

    async def _deliver(self, record: StoredJob) -> None:
        assert self.chain is not None
        assert record.output_felts is not None
        market = self.chain.market(record.market)
        job_id = job_id_bytes(record.job_id)
        chain_job = await market.job(job_id)
        if chain_job.state is not JobState.AWARDED:
            # Delivered before a crash (or expired, or taken over): never send twice.
            if chain_job.state in _AFTER_DELIVERY and to_checksum_address(chain_job.provider) == self.address:
                self._set(record, WorkStep.DELIVERED)
                return
            self._set(
                record,
                WorkStep.FAILED,
                error=f"job is {chain_job.state.name.lower()} on-chain, cannot deliver",
            )
            return
        if to_checksum_address(chain_job.provider) != self.address:
            self._set(record, WorkStep.FAILED, error=f"job is awarded to {chain_job.provider}, not to us")
            return
        output = [int(x) for x in record.output_felts]
        optimistic = record.proof_mode == 1
        if not optimistic and record.proof is None:
            raise ProviderError(f"job {record.job_id} is a zk job without a proof")
        proof = b"" if optimistic or record.proof is None else bytes.fromhex(record.proof[2:])
        if optimistic and self._wrong_output_job(record):
            output = [output[0] + 1, *output[1:]] if output else [1]
            log(logger, "misbehave.wrong_output", level=logging.WARNING, job_id=record.job_id, seq=record.seq)
        started = time.perf_counter()
        try:
            receipt = await self.chain.send(
                market, "deliver", job_id, output, proof, until=self._until(record)
            )
        except TransactionFailed as exc:
            await self.chain.explain(exc)
            raise
        self.pricer.observe_delivery(time.perf_counter() - started)
        self._set(record, WorkStep.DELIVERED, tx={**record.tx, "deliver": tx_hash(receipt)})

    async def _redeliver(self, record: StoredJob, market: AsyncMarket, why: str) -> None:
        """The chain says the job is awarded to us while the store says we are past delivery
        (a reorg dropped the delivery, or a re-award): deliver again, before the deadline the
        chain gives now. One task per job and a delivery only while the chain says ``Awarded``
        to us: never twice for one award."""
        deadline = await market.provider_deadline(job_id_bytes(record.job_id))
        kept = {k: v for k, v in record.tx.items() if k == "decline"}
        previous = {f"{k}_dropped": v for k, v in record.tx.items() if k != "decline"}
        log(
            logger,
            "job.redeliver",
            level=logging.WARNING,
            job_id=record.job_id,
            reason=why,
            deadline=deadline,
            dropped=previous,
        )
        step = WorkStep.PROVED if record.output_felts is not None else WorkStep.ACCEPTED
        self._set(record, step, deadline=deadline, tx={**kept, **previous}, error=None)

    def _wrong_output_job(self, record: StoredJob) -> bool:
        """Whether the misbehave knob makes this job the M-th optimistic one to get a wrong output."""
        target = self.config.misbehave.wrong_output_on_job
        if target is None or record.proof_mode != 1 or self.store is None:
            return False
        return self.store.optimistic_rank(record.seq) == target

    async def _follow(self, record: StoredJob, served: ServedModel) -> None:
        """Wait until the job settles: finalize an unchallenged optimistic delivery after its
        window, answer a challenge or an audit with the proof (made now for an optimistic job).

        The chain decides, not what the store says was sent: a job awarded to us again (a reorg
        dropped the delivery) goes back to be delivered again, and a ``finalize``, ``drawAudit``
        or ``prove`` that a reorg took back is sent again, since the job is back in the state
        that asks for it. The task ends once the feed has read past the block in which it saw
        the job settled, so a later reorg of that block reaches :meth:`reconcile`."""
        assert self.chain is not None
        wrong = self._wrong_output_job(record)
        market = self.chain.market(record.market)
        job_id = job_id_bytes(record.job_id)
        settled_at: int | None = None  # the head when the job was first seen settled
        silent = False  # the misbehave knob's unanswered challenge, logged once
        while True:
            job = await market.job(job_id)
            state = job.state
            ours = to_checksum_address(job.provider) == self.address
            if state is JobState.AWARDED and ours:
                await self._redeliver(record, market, "awarded again: the delivery is not on chain")
                return
            if state is JobState.SETTLED and ours:
                if record.step is not WorkStep.SETTLED:
                    self._set(record, WorkStep.SETTLED)
                    await self.withdraw(record.market)
                if settled_at is None:
                    settled_at = await self.chain.block_number()
                if self.feed is None or self.feed.position >= settled_at:
                    return
                await asyncio.sleep(self.config.poll_interval_s)
                continue
            settled_at = None
            if state.final or state is JobState.NONE or not ours:
                self._set(record, WorkStep.FAILED, error=f"job ended {state.name.lower()} on-chain")
                return
            if record.step is not WorkStep.DELIVERED:  # settled here, taken back by a reorg
                log(
                    logger,
                    "job.unsettled_again",
                    level=logging.WARNING,
                    job_id=record.job_id,
                    state=state.name.lower(),
                )
                self._set(record, WorkStep.DELIVERED)
            if state in (JobState.CHALLENGED, JobState.PROOF_REQUIRED):
                if wrong:
                    if not silent:
                        log(logger, "misbehave.no_answer", level=logging.WARNING, job_id=record.job_id)
                        silent = True
                else:
                    if record.proof is None:  # an optimistic delivery: prove it now
                        proof = await self._prove(record, served, deadline=job.dispute_end)
                        self._set(record, WorkStep.DELIVERED, proof="0x" + proof.proof.hex())
                    assert record.proof is not None
                    proof_bytes = bytes.fromhex(record.proof[2:])
                    if await self._follow_tx(record, market, "prove", "prove", job_id, proof_bytes):
                        continue
            # Draw the audit early: past 256 blocks its seed is gone and the job counts as audited
            # (a refusal: drawn by someone else, or too early).
            if (
                state is JobState.DELIVERED
                and await self._audit_drawable(market, job)
                and await self._follow_tx(record, market, "draw", "drawAudit", job_id, refused=logging.DEBUG)
            ):
                continue
            # Finalize (a refusal: the window may close a block later, or someone else finalized
            # first; tried again next turn, while the chain still says delivered).
            if (
                state is JobState.DELIVERED
                and self.clock.now() > job.dispute_end
                and await self._follow_tx(
                    record, market, "finalize", "finalize", job_id, refused=logging.DEBUG
                )
            ):
                continue
            await asyncio.sleep(self.config.poll_interval_s)

    #: What the log calls a refused follow-up transaction, by its step.
    _REFUSED = {"prove": "job.prove_failed", "draw": "job.draw_skipped", "finalize": "job.finalize_retry"}

    async def _follow_tx(
        self,
        record: StoredJob,
        market: AsyncMarket,
        step: str,
        function: str,
        *args: Any,
        refused: int = logging.ERROR,
    ) -> bool:
        """Send ``market.function(*args)`` for a delivered job and note its transaction under
        ``step`` in ``record.tx``; a revert or a failed transaction is logged (at level
        ``refused``) and gives False."""
        assert self.chain is not None
        try:
            receipt = await self.chain.send(market, function, *args, until=self._until(record))
        except (ContractRevert, TransactionFailed) as exc:
            log(logger, self._REFUSED[step], level=refused, job_id=record.job_id, error=str(exc))
            return False
        self._set(record, WorkStep.DELIVERED, tx={**record.tx, step: tx_hash(receipt)})
        return True

    async def _audit_drawable(self, market: AsyncMarket, job: Job) -> bool:
        """Whether to draw the audit of our optimistic delivery now: the model is audited at all,
        nobody drew it yet and the block after the delivery is mined (the draw reads its hash,
        which stops being readable 256 blocks later: then the job counts as audited, so the node
        draws early)."""
        assert self.chain is not None
        terms = await market.dispute_terms(job.job_id)
        if terms.audit_drawn or terms.delivered_block == 0:
            return False
        if await self.chain.audit_rate_bps(bytes(job.model_id)) == 0:
            return False
        return await self.chain.block_number() >= terms.delivered_block + 2

    # -- payment --------------------------------------------------------------------------

    async def withdraw(self, market: str) -> int:
        """Withdraw what ``market`` owes this node when it reaches ``withdraw_threshold`` (0:
        never); the amount withdrawn (0 when below, disabled or failed). One withdrawal per
        market at a time; a failure is logged and left for the next settlement."""
        threshold = self.config.withdraw_threshold
        if self.chain is None or threshold == 0:
            return 0
        lock = self._withdrawing.setdefault(market, asyncio.Lock())
        async with lock:
            try:
                wrapper = self.chain.market(market)
                owed = await wrapper.owed(self.address)
                self.metrics.owed.labels(market).set(owed)
                if owed < threshold:
                    return 0
                receipt = await wrapper.withdraw()
                amount, tx = await wrapper.withdrawn_in(receipt), tx_hash(receipt)
            except ChainError as exc:  # a revert (NothingOwed: withdrawn elsewhere) or the RPC
                self.metrics.withdrawals.labels("failed").inc()
                log(
                    logger,
                    "payment.withdraw_failed",
                    level=logging.WARNING,
                    market=market,
                    threshold=threshold,
                    error=str(exc),
                )
                return 0
            self.metrics.withdrawals.labels("ok").inc()
            self.metrics.withdrawn.inc(amount)
            self.metrics.owed.labels(market).set(0)
            log(
                logger,
                "payment.withdrawn",
                market=market,
                amount=amount,
                owed=owed,
                threshold=threshold,
                tx=tx,
            )
            return amount
