"""The requester SDK: buy one inference, get the output with its proof, or a typed error.

::

    from tender import Client

    client = Client("http://127.0.0.1:8545", key, solvers=["http://127.0.0.1:7100"])
    result = await client.request("mlp", pixels, max_price=10**17, deadline=60)
    print(result.values, result.price_paid, result.latency.total_ms)

A request computes the input commitment, builds the intent, signs it (EIP-712) and broadcasts
it to the solvers' ``POST /intents`` (or, with ``on_chain=True``, posts it to the market
itself), follows the job's events to a terminal state, checks the proof locally and returns a
:class:`~tender.client.RequestResult`. A request that ends any other way raises one of the
errors of :mod:`tender.client._errors`.

The markets never push tokens: unspent escrow and refunds are credited to the requester in the
market (:meth:`Client.owed`), pay its next escrows there first, and :meth:`Client.withdraw`
pays them out::

    print(await client.owed())        # {"reverse": 0, "dutch": 12_000_000_000_000_000}
    for paid in await client.withdraw():
        print(paid.auction, paid.amount, paid.tx_hash)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

import httpx
from eth_account import Account
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import Web3Exception

from tender.chain import (
    Deployment,
    Event,
    JobState,
    Market,
    ModelRegistered,
    Staking,
    Token,
    TxSender,
)
from tender.client._errors import (
    ProofInvalid,
    ProviderSlashed,
    RequestExpired,
    RequestFailed,
    RequestRefunded,
    RequestRejected,
    RequestTimeout,
)
from tender.client._hub import EventHub
from tender.client._models import ModelHandle, encode_input_uri, resolve_model
from tender.client._result import Latency, RequestResult, Withdrawal
from tender.client._stakes import STAKE_MAX_AGE_S
from tender.client._tracker import JobTracker
from tender.config import check_private_key
from tender.errors import (
    ChainError,
    ConfigError,
    ContractRevert,
    IntentError,
    ModelError,
    RequestError,
    TenderError,
    TransactionFailed,
)
from tender.intents import (
    AuctionType,
    Intent,
    NonceSequence,
    ProofMode,
    check_signature,
    erc1271_accepts,
    erc1271_calldata,
    job_id,
    sign_intent,
    typed_data,
)
from tender.logs import log
from tender.paths import cache_dir
from tender.wire import SignedIntentWire

if TYPE_CHECKING:
    from web3.types import TxReceipt

    from tender.client._agent import AgentClient
    from tender.client._rfq import ProvisionalResult

__all__ = ["DEFAULT_CONFIRMATIONS", "LOCAL_CHAIN_IDS", "Client"]

T = TypeVar("T")

logger = logging.getLogger("tender.client")

ProofName = Literal["zk", "optimistic"]
AuctionName = Literal["reverse", "dutch"]

_MAX_UINT = 2**256 - 1

#: An outside signer: takes the intent's EIP-712 typed data (``typed_data(json_safe=True)``, what
#: a wallet's ``eth_signTypedData_v4`` takes) and returns the 65-byte signature (bytes or hex).
Signer = Callable[[dict[str, Any]], "bytes | str"]


@contextlib.contextmanager
def _as_request_error(job: str | None = None) -> Any:
    """Let a failure of the chain, the deployment, the model or the connection out of a request
    as :class:`RequestFailed` (every failure of a request is a ``RequestError``)."""
    try:
        yield
    except RequestError:
        raise
    except (TenderError, Web3Exception, OSError, ValueError, httpx.HTTPError) as exc:
        raise RequestFailed(f"{type(exc).__name__}: {exc}", job_id=job) from exc
    except Exception as exc:  # requests' errors (web3's HTTP transport), named without importing it
        if type(exc).__module__.startswith(("requests", "urllib3")):
            raise RequestFailed(
                f"cannot reach the JSON-RPC node: {type(exc).__name__}: {exc}", job_id=job
            ) from exc
        raise


#: Seconds past a deadline (or auction end) before the client expires (or refunds) a job
#: itself, leaving the verifier agents and solvers the first go; and between its attempts.
_HELP_MARGIN_S = 4
_HELP_RETRY_S = 3.0


#: Chains whose blocks never reorganise on their own (Anvil, Hardhat): no confirmations needed.
LOCAL_CHAIN_IDS = frozenset({31337, 1337})

#: Confirmations awaited on any other chain unless ``Client(confirmations=...)`` says otherwise.
DEFAULT_CONFIRMATIONS = 3

#: Errors of a chain read that an outage explains: retried while a request follows its job.
_RPC_ERRORS: tuple[type[Exception], ...] = (ChainError, OSError, TimeoutError, Web3Exception)


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def _start_price(auction: str, max_price: int, start_price: int | None) -> int:
    """Dutch auctions start at a quarter of the max price unless told; reverse ones at 0."""
    if start_price is not None:
        return int(start_price)
    return int(max_price) // 4 if auction == "dutch" else 0


class Client:
    """A requester: signs intents with ``key`` and follows them on the chain at ``rpc``.

    Args:
        rpc: the chain's JSON-RPC URL.
        key: the requester's private key (from the environment or a keystore, never a flag);
            ``None`` with ``signer`` and ``address``: the client then sends no transactions
            (no approve, post or self-help: the wallet approves the markets itself).
        solvers: base URLs of solvers whose ``POST /intents`` take signed intents.
        deployment: the deployment record, its JSON path, or ``None`` for
            ``deployments/<chainId>.json``.
        bundles: model bundle folder by model name (for commitments and proof checks).
        model_ids: registry model id (``0x``-hex) by model name (default: the card's).
        poll_interval: seconds between log polls.
        auction_window: default auction window in seconds, per auction type.
        self_help: expire a late job, or refund an unawarded one, yourself when nobody else
            has a little after it became possible.
        sender: a ready :class:`~tender.chain.TxSender` (tests); built from ``key`` otherwise.
        signer: an outside wallet signing intents (see :data:`Signer`) instead of ``key``.
        address: the requester's address, without ``key``: intents are then signed by ``signer``
            or handed over signed (``send(intent, signature=...)``).
        confirmations: blocks that must be mined on top of the block that ended a job before
            the request reports its result as final (default: 0 on a local devnet, chain ids
            31337 and 1337, else :data:`DEFAULT_CONFIRMATIONS`). Until then a reorg that takes
            the settlement back sends the job back to its earlier state (logged as
            ``request.reorged``, counted in ``RequestResult.reorgs``) and the request keeps
            following it.
        award_batch: quote path: most awards of concurrent requests sent in one
            ``openAwardedBatch`` (1: each its own ``openAwarded``); see
            :class:`~tender.client._awards.AwardBatcher`.
        award_wait: quote path: seconds the first award waits for others to join its batch
            (after the provisional result is returned: off the time to result).
        stake_max_age: seconds a read of a provider's free stake answers the quote path's stake
            check from memory (the check then makes no RPC call; see
            :class:`~tender.client._stakes.StakeView`); 0 reads it afresh for every result.

    RPC errors while a request follows its job are retried (bounded backoff) until the
    request's own timeout.

    A signature made elsewhere can also be handed over per intent:
    ``await client.send(intent, signature=sig)`` (``client.typed_data(intent)`` is what to sign).
    """

    def __init__(
        self,
        rpc: str,
        key: str | None = None,
        *,
        solvers: Sequence[str] = (),
        deployment: Deployment | Path | str | None = None,
        bundles: Mapping[str, Path] | None = None,
        model_ids: Mapping[str, str] | None = None,
        poll_interval: float = 0.2,
        auction_window: Mapping[str, int] | None = None,
        self_help: bool = True,
        http_timeout: float = 5.0,
        sender: TxSender | None = None,
        signer: Signer | None = None,
        address: str | None = None,
        confirmations: int | None = None,
        award_batch: int = 1,
        award_wait: float = 0.25,
        stake_max_age: float = STAKE_MAX_AGE_S,
    ) -> None:
        if confirmations is not None and confirmations < 0:
            raise ConfigError(f"Client: confirmations must be >= 0, not {confirmations}")
        if not stake_max_age >= 0:
            raise ConfigError(f"Client: stake_max_age must be >= 0 seconds, not {stake_max_age}")
        self.stake_max_age = float(stake_max_age)
        self._confirmations = confirmations
        if award_batch < 1 or award_wait < 0:
            raise ConfigError(
                f"Client: award_batch must be >= 1 and award_wait >= 0, not {award_batch}, {award_wait}"
            )
        self.award_batch = award_batch
        self.award_wait = award_wait
        if key:
            key = check_private_key(key, where="Client key")
            self.address: str = Account.from_key(key).address
        elif address and Web3.is_address(address):
            self.address = Web3.to_checksum_address(address)
        else:
            raise ConfigError(
                "Client: a private key (TENDER_PRIVATE_KEY), or the address an outside signer signs for,"
                " is required"
            )
        self.w3 = Web3(Web3.HTTPProvider(rpc, request_kwargs={"timeout": 30}))
        self.rpc = rpc
        self._key = key
        self.signer = signer
        self.solvers = [s.rstrip("/") for s in solvers]
        self.bundles = {k: Path(v) for k, v in (bundles or {}).items()}
        self.model_ids = dict(model_ids or {})
        self.poll_interval = poll_interval
        self.auction_window = {"reverse": 3, "dutch": 6, **(auction_window or {})}
        self.self_help = self_help
        self._http_timeout = http_timeout
        self._deployment_arg = deployment
        self._sender = sender
        self._deployment: Deployment | None = None
        self._hub: EventHub | None = None
        self._http: httpx.AsyncClient | None = None
        self._models: dict[str, ModelHandle] = {}
        self._allowance_lock = asyncio.Lock()
        #: sequential nonces in one random bitmap word at a time: an intent flips a bit of a word that
        #: is already non-zero (~5k gas) rather than a fresh one (~22k)
        self._nonces = NonceSequence()
        self._approved: set[str] = set()
        #: escrow this client counts on taking from its credit, by market, until the intent is
        #: posted (or its request ends): two concurrent requests do not both count on one credit
        self._reserved: dict[str, dict[str, int]] = {}
        self._markets: dict[str, Market] = {}
        #: called with (tracker, event) after each event of a followed job
        self.listeners: list[Callable[[JobTracker, Event], None]] = []

    # -- set-up ------------------------------------------------------------------------

    @property
    def deployment(self) -> Deployment:
        if self._deployment is None:
            arg = self._deployment_arg
            if isinstance(arg, Deployment):
                self._deployment = arg
            elif arg is not None:
                self._deployment = Deployment.load(path=Path(arg))
            else:
                self._deployment = Deployment.load(self.w3.eth.chain_id)
        return self._deployment

    @property
    def sender(self) -> TxSender:
        if self._sender is None:
            if not self._key:
                raise ConfigError(
                    "Client: this client signs through an outside signer and holds no key: it sends no "
                    "transactions (approve the markets, post and withdraw from the wallet)"
                )
            self._sender = TxSender(self.w3, self._key)
        return self._sender

    def market(self, auction: str) -> Market:
        """The market for ``auction`` (``"reverse"`` or ``"dutch"``), sending from this account."""
        market = self._markets.get(auction)
        if market is None:
            kind = AuctionType.DUTCH if auction == "dutch" else AuctionType.REVERSE
            sender = self.sender if self._key or self._sender is not None else None  # keyless: reads only
            market = Market(self.w3, self.deployment.market(kind), auction=kind, sender=sender)
            self._markets[auction] = market
        return market

    def agent(self, address: str) -> AgentClient:
        """The TenderAgent contract at ``address``, driven by this account (its owner)."""
        from tender.client._agent import AgentClient

        return AgentClient(self, address)

    def _events(self) -> EventHub:
        if self._hub is None:
            d = self.deployment
            self._hub = EventHub(self.w3, list(d.markets.values()), poll_interval=self.poll_interval)
            self._hub.listeners.append(self._notify)
        return self._hub

    def _notify(self, tracker: JobTracker, event: Event) -> None:
        for listener in self.listeners:
            listener(tracker, event)

    def model(self, model: str | bytes) -> ModelHandle:
        """The model handle (bundle, card, registry id) for a name; cached.

        The bundle is ``bundles[name]``, a bundle folder given as the name, or else the one
        bundle of that name in the local cache (``tender model build`` puts them there) that is
        registered on this chain (the one ``model_ids[name]`` names, when given). Without an id
        in ``model_ids`` the registry's ``ModelRegistered`` events are searched for the bundle's
        ONNX and settings hashes.

        Raises:
            ModelError: no such bundle, or none of them registered on this chain.
        """
        key = model if isinstance(model, str) else _hex(model)
        handle = self._models.get(key)
        if handle is None:
            ids = dict(self.model_ids)
            bundles = dict(self.bundles)
            if isinstance(model, str) and key not in bundles and not Path(key).exists():
                bundles[key] = self._cached_bundle(key, ids.get(key))
            if key not in ids and key in bundles:
                found = self._registered_id(bundles[key])
                if found is not None:
                    ids[key] = found
            handle = self._models[key] = resolve_model(model, bundles=bundles, model_ids=ids)
        return handle

    def _registered(self) -> dict[tuple[bytes, bytes], str]:
        """``{(onnx sha256, settings hash): model id}`` of every model registered on this chain."""
        from tender.chain import Registry

        registry = Registry(self.w3, self.deployment.registry)
        found: dict[tuple[bytes, bytes], str] = {}
        for event in registry.events(self.deployment.block, names=["ModelRegistered"]):
            if isinstance(event, ModelRegistered):
                found.setdefault((event.info.onnx_sha256, event.info.settings_hash), _hex(event.model_id))
        return found

    def _registered_id(self, bundle: Path) -> str | None:
        from tender.client._models import load_bundle

        card = load_bundle(bundle).card
        return self._registered().get((bytes.fromhex(card.onnx_sha256), bytes.fromhex(card.settings_sha256)))

    def _cached_bundle(self, name: str, model_id: str | None) -> Path:
        """The cached bundle named ``name`` that this chain knows: the one ``model_id`` names,
        else the one registered (a model rebuilt with other settings leaves several)."""
        from tender.chain import Registry
        from tender.client._models import cached_bundles

        candidates = cached_bundles(name)
        where = f"{cache_dir() / 'models'}"
        if not candidates:
            raise ModelError(
                f"model {name!r}: no bundle of that name in {where} (build it with "
                f"`tender model build`, or pass --bundle)"
            )
        if model_id is not None:
            try:
                raw = bytes(HexBytes(model_id))
                info = Registry(self.w3, self.deployment.registry).model(raw)
            except (ValueError, ContractRevert) as exc:
                raise ModelError(f"model id {model_id}: not registered on this chain ({exc})") from exc
            wanted = {(info.onnx_sha256, info.settings_hash)}
        else:
            wanted = set(self._registered())
        matches = [path for path, hashes in candidates if hashes in wanted]
        if not matches:
            if model_id is None and len(candidates) == 1:
                return candidates[0][0]  # resolve_model names what is missing
            raise ModelError(
                f"model {name!r}: none of its bundles in {where} is registered on this chain"
                + (f" as {model_id}" if model_id else "")
                + " (`tender model register`)"
            )
        return matches[0]

    async def warm(self) -> None:
        """Pay the first request's one-off costs before it is timed: the HTTP client (a
        process's first request through it costs ~30 ms), a keep-alive connection to every
        solver (``GET /health``; a solver that does not answer is left to the request) and the
        quote market's wrappers and stake multiple (an RPC read). Optional: a request does all
        of it itself, on its own clock."""
        from tender.client._rfq import warm_quotes

        with contextlib.suppress(TenderError, Web3Exception, OSError):  # the request reads it again
            await warm_quotes(self)
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self._http_timeout)
        http = self._http

        async def touch(url: str) -> None:
            with contextlib.suppress(httpx.HTTPError):
                await http.get(f"{url}/health", timeout=5.0)

        await asyncio.gather(*(touch(url) for url in self.solvers))

    async def aclose(self) -> None:
        """Stop following jobs and close connections."""
        if self._hub is not None:
            await self._hub.close()
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- building intents --------------------------------------------------------------

    async def chain_time(self) -> int:
        """Seconds on the chain's clock (the latest block's, or the wall clock if later)."""
        block = await asyncio.to_thread(self.w3.eth.get_block, "latest")
        return max(int(block["timestamp"]), int(time.time()))

    async def _block_time(self) -> int:
        """The latest block's timestamp: chain time as the contracts see it (it stands still
        while no block is mined)."""
        block = await asyncio.to_thread(self.w3.eth.get_block, "latest")
        return int(block["timestamp"])

    async def build_intent(
        self,
        model: str | bytes,
        data: Any,
        *,
        max_price: int,
        deadline: float,
        proof: ProofName = "zk",
        auction: AuctionName = "reverse",
        auction_window: int | None = None,
        start_price: int | None = None,
        min_stake: int = 0,
        region: str | bytes = b"\x00\x00",
        price_weight_bps: int = 10_000,
        callback_gas_limit: int = 0,
        requester: str | None = None,
    ) -> tuple[Intent, ModelHandle]:
        """The intent for one request (not yet signed or sent).

        ``deadline`` is seconds from now, or a Unix time when it is over 10**9.
        """
        handle = await asyncio.to_thread(self.model, model)
        commitment = await asyncio.to_thread(handle.commitment, data)
        now = await self.chain_time()
        window = self.auction_window[auction] if auction_window is None else auction_window
        absolute = int(deadline) if deadline > 10**9 else now + window + int(deadline)
        if isinstance(region, str):
            region = bytes.fromhex(region.removeprefix("0x")) if region else b"\x00\x00"
        intent = Intent(
            requester=requester or self.address,
            model_id=handle.model_id,
            input_commitment=commitment,
            input_location=encode_input_uri(data),
            max_price=int(max_price),
            start_price=_start_price(auction, max_price, start_price),
            auction_type=AuctionType.DUTCH if auction == "dutch" else AuctionType.REVERSE,
            auction_window=window,
            deadline=absolute,
            proof_mode=ProofMode.OPTIMISTIC if proof == "optimistic" else ProofMode.ZK,
            min_stake=min_stake,
            region=region,
            price_weight_bps=price_weight_bps,
            callback_gas_limit=callback_gas_limit,
            nonce=self._nonces.next(),
            expiry=now + window + 60,
        )
        return intent, handle

    def job_id(self, intent: Intent) -> str:
        market = self.deployment.market(intent.auction_type)
        return _hex(job_id(intent, chain_id=self.deployment.chain_id, market=market))

    # -- escrow and credit -------------------------------------------------------------

    async def ensure_allowance(self, auction: AuctionName, amount: int, *, job_id: str | None = None) -> None:
        """Let the market take an escrow of ``amount``.

        The market takes an escrow from what it owes this account when that covers all of it
        (no allowance needed), else all of it from the allowance. So: nothing to do while the
        credit (less what this client's other unposted intents count on) covers ``amount``;
        the escrow is then reserved under ``job_id`` until :meth:`_release`. Otherwise the
        maximum is approved, once per market.
        """
        spender = self.deployment.market(auction)
        async with self._allowance_lock:
            if spender in self._approved:
                return
            reserved = self._reserved.setdefault(spender, {})
            owed = await asyncio.to_thread(self.market(auction).owed, self.address)
            if owed - sum(reserved.values()) >= amount:
                if job_id is not None:
                    reserved[job_id] = amount
                log(logger, "request.escrow_from_credit", market=spender, amount=amount, owed=owed)
                return
            if not self._key and self._sender is None:  # an outside wallet approves, not us
                token = Token(self.w3, self.deployment.token)
                allowance = await asyncio.to_thread(token.allowance, self.address, spender)
                if allowance < amount:
                    raise RequestRejected(
                        f"the market {spender} may take {allowance} of {self.address}'s tokens, the escrow"
                        f" is {amount}: approve the market from the wallet first",
                        job_id=job_id,
                        reasons={"market": "allowance below the escrow"},
                    )
                return
            token = Token(self.w3, self.deployment.token, sender=self.sender)
            await asyncio.to_thread(token.ensure_allowance, spender, amount, approve=_MAX_UINT)
            self._approved.add(spender)

    async def _fund(self, intent: Intent) -> None:
        """Make sure the market can take ``intent``'s escrow (see :meth:`ensure_allowance`)."""
        auction: AuctionName = "dutch" if intent.auction_type == AuctionType.DUTCH else "reverse"
        if self.deployment.market(auction) in self._approved:
            return
        escrow = await asyncio.to_thread(self.market(auction).escrow_for, intent.max_price)
        await self.ensure_allowance(auction, escrow, job_id=self.job_id(intent))

    def _release(self, job_id: str) -> None:
        """Forget the credit reserved for ``job_id`` (its intent was posted, or never will be)."""
        for reserved in self._reserved.values():
            reserved.pop(job_id, None)

    async def owed(self, auction: AuctionName | None = None, *, account: str | None = None) -> dict[str, int]:
        """What the markets owe this account (or ``account``), by auction name (only
        ``auction``'s market when given): refunds and unspent escrow, returned challenge bonds,
        and a provider's payments. It pays later escrows there first; :meth:`withdraw` pays it out."""
        who = account or self.address
        names: tuple[AuctionName, ...] = (auction,) if auction else ("reverse", "dutch")
        out: dict[str, int] = {}
        for name in names:
            if name in self.deployment.markets:
                out[name] = await asyncio.to_thread(self.market(name).owed, who)
        return out

    async def withdraw(self, auction: AuctionName | None = None) -> list[Withdrawal]:
        """Pay out what the markets owe this account: one ``withdraw`` per market that owes
        something (only ``auction``'s market when given), and without ``auction`` the slashed
        stake ``Staking`` holds for it (:meth:`claim`, reported with ``auction="staking"``);
        empty when nothing is owed.

        Raises:
            ContractRevert: ``NothingOwed`` when ``auction`` is given and that market owes
                nothing (the transaction is not sent).
        """
        return await self._pay_out(
            auction, self.address, lambda market: asyncio.to_thread(market.withdraw), self.claim
        )

    async def claimable(self, *, account: str | None = None) -> int:
        """Slashed stake credited to this account (or ``account``) in ``Staking``: a late or
        cheating provider's compensation to its requester, a challenger's reward. :meth:`claim`
        pays it out (:meth:`withdraw` does too)."""
        return await asyncio.to_thread(self.staking().claimable, account or self.address)

    async def claim(self) -> Withdrawal | None:
        """Claim the slashed stake credited to this account in ``Staking`` (``claim``);
        ``None`` (nothing sent) when nothing is credited."""
        return await self._claim(self.address, lambda staking: asyncio.to_thread(staking.claim))

    def staking(self) -> Staking:
        """The ``Staking`` contract (slashed stake is credited there), sending as this account."""
        return Staking(self.w3, self.deployment.staking, sender=self.sender)

    async def _pay_out(
        self,
        auction: AuctionName | None,
        account: str,
        withdraw: Callable[[Market], Awaitable[TxReceipt]],
        claim: Callable[[], Awaitable[Withdrawal | None]],
    ) -> list[Withdrawal]:
        """Run ``withdraw`` for each market that owes ``account`` something (``auction``'s alone,
        owed or not, when given) and report what each ``Withdrawn`` paid; without ``auction``,
        then ``claim`` what ``Staking`` credits ``account``."""
        out: list[Withdrawal] = []
        for name, amount in (await self.owed(auction, account=account)).items():
            if amount == 0 and auction is None:
                continue
            market = self.market(name)
            receipt = await withdraw(market)
            paid = market.withdrawn_in(receipt)
            tx_hash = HexBytes(receipt["transactionHash"]).to_0x_hex()
            out.append(
                Withdrawal(auction=name, market=market.address, account=account, amount=paid, tx_hash=tx_hash)
            )
            log(logger, "market.withdrawn", market=market.address, account=account, amount=paid, tx=tx_hash)
        if auction is None:
            claimed = await claim()
            if claimed is not None:
                out.append(claimed)
        return out

    async def _claim(
        self, account: str, claim: Callable[[Staking], Awaitable[TxReceipt]]
    ) -> Withdrawal | None:
        """Send ``claim`` when ``Staking`` credits ``account`` slashed stake (``None``: nothing
        credited, nothing sent); what it paid out."""
        staking = self.staking()
        if await asyncio.to_thread(staking.claimable, account) == 0:
            return None
        receipt = await claim(staking)
        tx_hash = HexBytes(receipt["transactionHash"]).to_0x_hex()
        amount = staking.claimed_in(receipt)
        log(logger, "staking.claimed", staking=staking.address, account=account, amount=amount, tx=tx_hash)
        return Withdrawal(
            auction="staking", market=staking.address, account=account, amount=amount, tx_hash=tx_hash
        )

    # -- sending -----------------------------------------------------------------------

    def typed_data(self, intent: Intent) -> dict[str, Any]:
        """``intent``'s EIP-712 typed data for a wallet (``eth_signTypedData_v4``): JSON-safe,
        every integer that can exceed 2**53 a decimal string."""
        d = self.deployment
        return typed_data(intent, chain_id=d.chain_id, market=d.market(intent.auction_type), json_safe=True)

    def sign(self, intent: Intent) -> bytes:
        """The requester's signature of ``intent``: by the key, else by the outside signer,
        checked against the market's rule (:func:`tender.intents.check_signature`).

        Raises:
            RequestRejected: the signer's signature is malformed or not the requester's.
        """
        d = self.deployment
        market = d.market(intent.auction_type)
        if self._key:
            return sign_intent(intent, self._key, chain_id=d.chain_id, market=market)
        if self.signer is None:
            raise ConfigError("Client: no key and no signer to sign the intent with")
        raw = self.signer(self.typed_data(intent))
        signature = bytes(HexBytes(raw))
        self._check(intent, signature)
        return signature

    def _check(self, intent: Intent, signature: bytes) -> None:
        """Refuse a signature the market would refuse (its rule; ERC-1271 for a contract requester)."""
        d = self.deployment
        try:
            try:
                check_signature(intent, signature, chain_id=d.chain_id, market=d.market(intent.auction_type))
            except IntentError:
                if not self.w3.eth.get_code(intent.requester):  # type: ignore[arg-type]
                    raise
                call = {
                    "to": intent.requester,
                    "data": erc1271_calldata(bytes(HexBytes(self.job_id(intent))), signature),
                }
                try:
                    result = bytes(self.w3.eth.call(call))  # type: ignore[arg-type]
                except (Web3Exception, ValueError) as exc:
                    raise IntentError(f"the requester contract refused the signature: {exc}") from exc
                if not erc1271_accepts(result):
                    raise IntentError("the requester contract refused the signature (ERC-1271)") from None
        except IntentError as exc:
            raise RequestRejected(
                f"the intent's signature would be refused: {exc}",
                job_id=self.job_id(intent),
                reasons={"signature": str(exc)},
            ) from exc

    async def post(self, intent: Intent) -> str:
        """Post ``intent`` to its market from this account (the escrow is taken now, from the
        account's credit in the market when it covers it, else from its allowance); the tx hash."""
        auction = intent.auction_type.name.lower()
        await self._fund(intent)
        market = self.market(auction)
        try:
            receipt = await asyncio.to_thread(market.post, intent)
        except (ContractRevert, TransactionFailed) as exc:
            raise RequestRejected(
                f"the market refused the intent: {exc}",
                job_id=self.job_id(intent),
                reasons={"market": str(exc)},
            ) from exc
        finally:
            self._release(self.job_id(intent))
        return HexBytes(receipt["transactionHash"]).to_0x_hex()

    def signed_wire(self, intent: Intent, *, signature: bytes | str | None = None) -> SignedIntentWire:
        """The signed intent as broadcast to solvers (signed here unless ``signature`` is given)."""
        d = self.deployment
        market = d.market(intent.auction_type)
        if signature is None:
            signature = self.sign(intent)
        else:
            signature = bytes(HexBytes(signature))
            self._check(intent, signature)
        return SignedIntentWire.model_validate(
            {
                "intent": intent.to_json(),
                "signature": _hex(signature),
                "market": market,
                "chainId": d.chain_id,
                "jobId": self.job_id(intent),
            }
        )

    async def broadcast(
        self, intent: Intent, *, solvers: Sequence[str] | None = None, signature: bytes | str | None = None
    ) -> dict[str, str]:
        """Send the signed intent to every solver (or to ``solvers``); ``{url: "accepted" | reason}``.
        ``signature``: one made by an outside wallet over :meth:`typed_data` (default: sign here).

        Raises:
            RequestRejected: no solver accepted it.
        """
        targets = [s.rstrip("/") for s in solvers] if solvers is not None else self.solvers
        if not targets:
            raise ConfigError(
                "Client: no solvers to send a signed intent to (pass solvers=[...] or on_chain=True)"
            )
        body = self.signed_wire(intent, signature=signature).model_dump_json()
        await self._fund(intent)
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self._http_timeout)
        http = self._http

        async def send(url: str) -> tuple[str, str]:
            try:
                reply = await http.post(
                    f"{url}/intents", content=body, headers={"Content-Type": "application/json"}
                )
            except httpx.HTTPError as exc:
                return url, f"unreachable: {exc!r}"
            if reply.status_code < 300:
                return url, "accepted"
            try:
                detail = reply.json().get("message") or reply.text
            except ValueError:
                detail = reply.text
            return url, f"{reply.status_code}: {detail}"[:300]

        answers = dict(await asyncio.gather(*(send(url) for url in targets)))
        if not any(v == "accepted" for v in answers.values()):
            self._release(self.job_id(intent))
            raise RequestRejected(
                "no solver accepted the intent", job_id=self.job_id(intent), reasons=answers
            )
        return answers

    # -- the whole request -------------------------------------------------------------

    @overload
    async def request(
        self,
        model: str | bytes,
        input: Any,
        max_price: int,
        deadline: float,
        proof: ProofName = "zk",
        *,
        auction: Literal["quote"],
        timeout: float | None = None,  # noqa: ASYNC109
        **intent_options: Any,
    ) -> ProvisionalResult: ...

    @overload
    async def request(
        self,
        model: str | bytes,
        input: Any,
        max_price: int,
        deadline: float,
        proof: ProofName = "zk",
        auction: AuctionName = "reverse",
        on_chain: bool = False,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
        verify: bool = True,
        **intent_options: Any,
    ) -> RequestResult: ...

    async def request(
        self,
        model: str | bytes,
        input: Any,
        max_price: int,
        deadline: float,
        proof: ProofName = "zk",
        auction: AuctionName | Literal["quote"] = "reverse",
        on_chain: bool = False,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a deadline on the whole request, documented
        verify: bool = True,
        **intent_options: Any,
    ) -> RequestResult | ProvisionalResult:
        """Buy one inference and return its verified result.

        ``auction="quote"``: a quote round on the quote market instead (see
        :mod:`tender.client._rfq`); returns a :class:`ProvisionalResult` as soon as the winning
        provider's output and signed commitment are checked (``window_ms``: the round's window,
        default 100), and its ``settled()`` awaits the proof on chain.

        Args:
            model: model name (``"mlp"``) or 32-byte id.
            input: the input tensor as nested lists of numbers.
            max_price: the most you pay, in token base units (escrowed).
            deadline: seconds after the auction window by which the output must be delivered
                (or an absolute Unix time).
            proof: ``"zk"`` (paid against an on-chain verified proof) or ``"optimistic"``.
            auction: ``"reverse"`` (bids, second-score price) or ``"dutch"`` (first fill).
            on_chain: post the intent from this account instead of broadcasting it signed.
            timeout: seconds to wait for a terminal state (default: deadline plus margins).
            verify: check the proof locally before returning.
            **intent_options: ``auction_window``, ``start_price``, ``min_stake``, ``region``,
                ``price_weight_bps``.

        Raises:
            RequestRejected, RequestRefunded, RequestExpired, ProviderSlashed, ProofInvalid,
            RequestTimeout: see :mod:`tender.client`.
        """
        if auction == "quote":
            from tender.client._rfq import request_quote

            return await request_quote(
                self, model, input, max_price, deadline, timeout=timeout, **intent_options
            )
        with _as_request_error():
            intent, handle = await self.build_intent(
                model,
                input,
                max_price=max_price,
                deadline=deadline,
                proof=proof,
                auction=auction,
                **intent_options,
            )
        tracker = await self.send(intent, on_chain=on_chain)
        return await self.follow(tracker, intent, handle, timeout=timeout, verify=verify)

    async def send(
        self,
        intent: Intent,
        *,
        on_chain: bool = False,
        solvers: Sequence[str] | None = None,
        signature: bytes | str | None = None,
    ) -> JobTracker:
        """Send ``intent`` (signed to the solvers, or posted) and start following its job.
        ``signature``: made by an outside wallet over :meth:`typed_data` (default: sign here)."""
        with _as_request_error():
            hub = self._events()
            tracker = JobTracker(job_id=self.job_id(intent))
        hub.follow(tracker)
        try:
            with _as_request_error(tracker.job_id):
                if on_chain:
                    tracker.tx_hashes["post"] = await self.post(intent)
                else:
                    await self.broadcast(intent, solvers=solvers, signature=signature)
        except BaseException:
            hub.forget(tracker.job_id)
            self._release(tracker.job_id)
            raise
        log(logger, "request.sent", job_id=tracker.job_id, on_chain=on_chain, max_price=intent.max_price)
        return tracker

    async def follow(
        self,
        tracker: JobTracker,
        intent: Intent,
        handle: ModelHandle | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a deadline on the whole request, documented
        verify: bool = True,
    ) -> RequestResult:
        """Wait for ``tracker``'s job to end; the result, or the typed error of how it ended."""
        with _as_request_error(tracker.job_id):
            return await self._follow(tracker, intent, handle, timeout=timeout, verify=verify)

    async def _follow(
        self,
        tracker: JobTracker,
        intent: Intent,
        handle: ModelHandle | None,
        *,
        timeout: float | None,  # noqa: ASYNC109 - see follow
        verify: bool,
    ) -> RequestResult:
        hub = self._events()
        changed = hub.follow(tracker)
        auction = intent.auction_type.name.lower()
        challenge_s = 30 if intent.proof_mode == ProofMode.OPTIMISTIC else 0
        followed_at = time.monotonic()
        # Until the chain answers, the request's own timeout (or a generous default) bounds it.
        waited_until = followed_at + (timeout if timeout is not None else 3_600.0)
        now = await self._retrying(self.chain_time, until=waited_until, tracker=tracker)
        block_time = await self._retrying(self._block_time, until=waited_until, tracker=tracker)
        need = await self._retrying(self.confirmations, until=waited_until, tracker=tracker)
        if timeout is None:
            waited_until = time.monotonic() + max(0, intent.deadline - now) + challenge_s + 60
        tried: dict[str, float] = {}
        reorgs = tracker.reorgs
        try:
            while not (tracker.state.final and tracker.confirmations >= need):
                if hub.fatal and hub.error is not None:
                    raise ChainError(f"cannot follow the chain: {hub.error!r}") from hub.error
                if tracker.reorgs > reorgs:
                    reorgs = tracker.reorgs
                    log(
                        logger,
                        "request.reorg_followed",
                        level=logging.WARNING,
                        job_id=tracker.job_id,
                        state=tracker.state.name.lower(),
                        reorgs=reorgs,
                    )
                remaining = waited_until - time.monotonic()
                if remaining <= 0:
                    moved: int | None = None
                    with contextlib.suppress(*_RPC_ERRORS):
                        moved = await self._block_time() - block_time
                    raise RequestTimeout(
                        job_id=tracker.job_id,
                        last_state=tracker.state.name.lower(),
                        waited_s=time.monotonic() - tracker.sent_at,
                        chain_moved_s=moved,
                        followed_s=time.monotonic() - followed_at,
                    )
                changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), timeout=min(remaining, 1.0))
                if self.self_help and not tracker.state.final:
                    try:
                        await self._self_help(tracker, intent, tried)
                    except _RPC_ERRORS as exc:  # the chain is unreachable: try again next round
                        log(logger, "request.self_help_deferred", job_id=tracker.job_id, error=repr(exc))
        finally:
            hub.forget(tracker.job_id)
            self._release(tracker.job_id)
        return await self._retrying(
            lambda: self._outcome(tracker, intent, handle, auction=auction, verify=verify),
            until=waited_until,
            tracker=tracker,
        )

    async def confirmations(self) -> int:
        """Blocks awaited on top of a job's last event before its result is final (see
        ``Client(confirmations=...)``); reads the chain id when no number was given."""
        if self._confirmations is None:
            chain_id = int(await asyncio.to_thread(lambda: self.w3.eth.chain_id))
            self._confirmations = 0 if chain_id in LOCAL_CHAIN_IDS else DEFAULT_CONFIRMATIONS
        return self._confirmations

    async def _retrying(self, call: Callable[[], Awaitable[T]], *, until: float, tracker: JobTracker) -> T:
        """``await call()``, retrying chain errors (an RPC outage) with a bounded backoff until
        ``until`` (``time.monotonic()``); then :class:`RequestTimeout`. A request error (how the
        job ended) is raised at once."""
        pause = 0.2
        while True:
            try:
                return await call()
            except RequestError:
                raise
            except _RPC_ERRORS as exc:
                if time.monotonic() + pause > until:
                    raise RequestTimeout(
                        job_id=tracker.job_id,
                        last_state=tracker.state.name.lower(),
                        waited_s=time.monotonic() - tracker.sent_at,
                    ) from exc
                log(
                    logger, "request.rpc_retry", level=logging.WARNING, job_id=tracker.job_id, error=repr(exc)
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)

    async def _self_help(self, tracker: JobTracker, intent: Intent, tried: dict[str, float]) -> None:
        """Expire a late job, or refund one nobody won, ourselves (anyone may): a few seconds
        after it became possible, retried every few seconds while the job stays stuck."""
        now = await self.chain_time()
        action: str | None = None
        if (
            tracker.state == JobState.AWARDED
            and now > (tracker.provider_deadline or intent.deadline) + _HELP_MARGIN_S
        ):
            action = "expire"
        elif tracker.state == JobState.DELIVERED and not (now > intent.deadline + 30 and "finalize" in tried):
            action = "finalize"  # anyone may once the challenge window closed; a revert means not yet
        elif (
            tracker.state in (JobState.CHALLENGED, JobState.PROOF_REQUIRED, JobState.DELIVERED)
            and now > intent.deadline + 30
        ):
            action = "expire"  # an unproven challenge or audit past its proof deadline
        elif (
            tracker.state == JobState.OPEN and now > (tracker.auction_end or intent.deadline) + _HELP_MARGIN_S
        ):
            # A reverse auction with bids that nobody closed: close it (anyone may); else refund.
            bids = tracker.bids > 0 and intent.auction_type == AuctionType.REVERSE
            action = "award" if bids and "award" not in tried else "refund"
        if action is None or time.monotonic() - tried.get(action, -1e9) < _HELP_RETRY_S:
            return
        if not self._key and self._sender is None:
            return  # no key to send with: the agents and solvers do it
        tried[action] = time.monotonic()
        market = self.market(intent.auction_type.name.lower())
        try:
            await asyncio.to_thread(getattr(market, action), bytes(HexBytes(tracker.job_id)))
            log(logger, "request.self_help", job_id=tracker.job_id, action=action)
        except (ContractRevert, TransactionFailed) as exc:  # somebody else was first, or not yet
            log(logger, "request.self_help_skipped", job_id=tracker.job_id, action=action, reason=str(exc))

    async def _outcome(
        self, tracker: JobTracker, intent: Intent, handle: ModelHandle | None, *, auction: str, verify: bool
    ) -> RequestResult:
        market = self._market_address(auction)
        common: dict[str, Any] = {
            "job_id": tracker.job_id,
            "refund": tracker.refund,
            "compensation": tracker.compensation,
            "market": market,
        }
        if tracker.state == JobState.SLASHED:
            # The output was disputed and never proved: the provider cheated (or gave up).
            raise ProviderSlashed(
                provider=tracker.provider,
                output=tracker.output,
                tx_hash=tracker.tx_hashes.get("slashed"),
                **common,
            )
        if tracker.state == JobState.EXPIRED:
            raise RequestExpired(
                provider=tracker.provider, tx_hash=tracker.tx_hashes.get("expired"), **common
            )
        if tracker.state == JobState.REFUNDED:
            raise RequestRefunded(tx_hash=tracker.tx_hashes.get("refunded"), **common)
        gas = await asyncio.to_thread(self._gas, tracker.tx_hashes)
        output, proof = tracker.output, tracker.proof
        if output is None or (proof is None and intent.proof_mode == ProofMode.ZK):
            output, proof = await asyncio.to_thread(self._delivery, tracker, auction, output, proof)
        verified = False
        if verify and proof and handle is not None and handle.can_verify:
            try:
                verified = await asyncio.to_thread(
                    handle.verify, proof, output=list(output or []), commitment=intent.input_commitment
                )
            except RequestError:
                raise
            except Exception as exc:  # any failure of the local check means: do not trust it
                raise ProofInvalid(repr(exc), job_id=tracker.job_id) from exc
            if not verified:
                raise ProofInvalid("the verification key rejects the proof", job_id=tracker.job_id)
        settle_from = "proved" if "proved" in tracker.at else "delivered"
        latency = Latency(
            auction_ms=tracker.auction_ms or 0.0,
            delivery_ms=tracker.ms_between("awarded", "delivered") or 0.0,
            settlement_ms=tracker.ms_between(settle_from, "settled") or 0.0,
            total_ms=tracker.total_ms or (time.monotonic() - tracker.sent_at) * 1000,
        )
        return RequestResult(
            job_id=tracker.job_id,
            model=handle.name if handle else _hex(intent.model_id),
            output=list(output or []),
            values=handle.dequantize(list(output)) if handle and output else None,
            proof=proof,
            verified=verified,
            proof_mode="optimistic" if intent.proof_mode == ProofMode.OPTIMISTIC else "zk",
            auction=auction,
            provider=tracker.provider or "",
            price_paid=tracker.price or 0,
            max_price=intent.max_price,
            refund=tracker.refund,
            latency=latency,
            tx_hashes=dict(tracker.tx_hashes),
            gas=gas,
            bids=tracker.bids,
            market=market or "",
            confirmations=tracker.confirmations,
            reorgs=tracker.reorgs,
        )

    def _market_address(self, auction: str) -> str | None:
        """The address of ``auction``'s market when the deployment is known (no RPC)."""
        if self._deployment is None and not isinstance(self._deployment_arg, Deployment):
            return None
        return self.deployment.markets.get(auction)

    def _delivery(
        self, tracker: JobTracker, auction: str, output: list[int] | None, proof: bytes | None
    ) -> tuple[list[int] | None, bytes | None]:
        """Output and proof from the calldata of the ``deliver`` (or ``prove``) transaction."""
        market = self.market(auction)
        for step in ("proved", "delivered"):
            tx_hash = tracker.tx_hashes.get(step)
            if not tx_hash:
                continue
            tx = self.w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
            try:
                _, args = market.contract.decode_function_input(tx["input"])
            except ValueError:
                continue
            for key in ("output", "outputs", "_output"):
                if output is None and key in args:
                    output = [int(v) for v in args[key]]
            for key in ("proof", "_proof"):
                if proof is None and args.get(key):
                    proof = bytes(args[key])
        return output, proof

    def _gas(self, tx_hashes: Mapping[str, str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for step, tx_hash in tx_hashes.items():
            with contextlib.suppress(Web3Exception, ValueError, OSError):  # gas figures are informative
                out[step] = int(self.w3.eth.get_transaction_receipt(tx_hash)["gasUsed"])  # type: ignore[arg-type]
        return out
