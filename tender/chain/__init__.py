"""Tender on chain: artefacts, deployment, transaction sending and typed contract wrappers.

Example::

    from web3 import Web3
    from tender.chain import Deployment, Market, TxSender, connect

    w3 = connect("http://127.0.0.1:8545")
    deployment = Deployment.load(w3.eth.chain_id)
    market = Market(w3, deployment.market("reverse"), sender=TxSender(w3, key))
    receipt = market.post(intent)
    for event in market.events(deployment.block):
        ...

:func:`async_connect` gives asyncio code (the solver) an ``AsyncWeb3`` that stays usable when
requests are cancelled. Everything else here is synchronous and thread-safe (one nonce manager per key and chain), so
asyncio daemons call it through ``asyncio.to_thread`` or :meth:`TxSender.send_async`.
Reverts raise :class:`~tender.errors.ContractRevert` with the custom error decoded from the
ABI; a transaction mined with status 0 raises :class:`~tender.errors.TransactionFailed`.
"""

from __future__ import annotations

from tender.chain import _events
from tender.chain._abi import DecodedLog, LogDecoder, snake
from tender.chain._artifacts import TENDER_CONTRACTS, Artifact, combined_abi, export_abis, load_artifact
from tender.chain._async import LoopSessions, async_connect
from tender.chain._async_market import AsyncMarket
from tender.chain._async_quote_market import AsyncQuoteMarket
from tender.chain._base import ChainAccess, ContractWrapper, WrapperOptions, tender_log_decoder
from tender.chain._contracts import Contracts
from tender.chain._deploy import DEFAULT_PARAMS, connect, deploy, deploy_artifact
from tender.chain._deployment import DEPLOYMENTS, Deployment

# every event type, listed once (in _events.__all__)
from tender.chain._events import *  # noqa: F403
from tender.chain._events import (
    EVENT_TYPES,
    Event,
    RawEvent,
    to_event,
)
from tender.chain._feed import AsyncEventFeed, EventFeed, FeedCursor, Handler, MemoryCursor, RollbackHandler
from tender.chain._jobs import Job, JobState
from tender.chain._market import Market
from tender.chain._quote_market import PADDING_JOB, AwardSkip, BatchSkip, QuoteMarket
from tender.chain._registry import Registry
from tender.chain._reverts import RevertDecoder, revert_data, tender_decoder
from tender.chain._staking import Staking
from tender.chain._structs import (
    INPUT_HASHED,
    INPUT_POLYCOMMIT,
    MODES_OPTIMISTIC,
    MODES_REEXECUTION,
    MODES_ZK,
    DisputeTerms,
    MarketParams,
    ModelInfo,
    Operator,
    Stats,
    market_instances,
    polycommit_commitment,
)
from tender.chain._terms import AuctionTerms, JobTerms, OpenTerms
from tender.chain._token import Token, format_amount, parse_amount
from tender.chain._token_jobs import (
    TokenJob,
    TokenModelConfig,
    TokenQuote,
    decode_tokens,
    encode_tokens,
    escrow_for,
    request_hash,
    token_output_hash,
)
from tender.chain._token_market import TOKEN_MARKET_KEY, TokenMarket, deploy_token_market, token_model_info
from tender.chain._tx import (
    ALREADY_KNOWN,
    NONCE_TOO_LOW,
    UNDERPRICED,
    InFlight,
    NonceManager,
    PendingTx,
    TxSender,
    capped_fees,
    failed_call,
    is_transient,
    nonce_manager,
    resync_nonces,
    rpc_message,
    with_retries_async,
)
from tender.chain._view import JobView

__all__ = [
    "ALREADY_KNOWN",
    "DEFAULT_PARAMS",
    "DEPLOYMENTS",
    "EVENT_TYPES",
    "INPUT_HASHED",
    "INPUT_POLYCOMMIT",
    "MODES_OPTIMISTIC",
    "MODES_REEXECUTION",
    "MODES_ZK",
    "NONCE_TOO_LOW",
    "PADDING_JOB",
    "TENDER_CONTRACTS",
    "TOKEN_MARKET_KEY",
    "UNDERPRICED",
    # typed events
    "Artifact",
    "AsyncEventFeed",
    "AsyncMarket",
    "AsyncQuoteMarket",
    "AuctionTerms",
    "AwardSkip",
    "BatchSkip",
    "ChainAccess",
    "ContractWrapper",
    "Contracts",
    "DecodedLog",
    "Deployment",
    "DisputeTerms",
    "Event",
    "EventFeed",
    "FeedCursor",
    "Handler",
    "InFlight",
    "Job",
    "JobState",
    "JobTerms",
    "JobView",
    "LogDecoder",
    "LoopSessions",
    "Market",
    "MarketParams",
    "MemoryCursor",
    "ModelInfo",
    "NonceManager",
    "OpenTerms",
    "Operator",
    "PendingTx",
    "QuoteMarket",
    "RawEvent",
    "Registry",
    "RevertDecoder",
    "RollbackHandler",
    "Staking",
    "Stats",
    "Token",
    "TokenJob",
    "TokenMarket",
    "TokenModelConfig",
    "TokenQuote",
    "TxSender",
    "WrapperOptions",
    "async_connect",
    "capped_fees",
    "combined_abi",
    "connect",
    "decode_tokens",
    "deploy",
    "deploy_artifact",
    "deploy_token_market",
    "encode_tokens",
    "escrow_for",
    "export_abis",
    "failed_call",
    "format_amount",
    "is_transient",
    "load_artifact",
    "market_instances",
    "nonce_manager",
    "parse_amount",
    "polycommit_commitment",
    "request_hash",
    "resync_nonces",
    "revert_data",
    "rpc_message",
    "snake",
    "tender_decoder",
    "tender_log_decoder",
    "to_event",
    "token_model_info",
    "token_output_hash",
    "with_retries_async",
]
__all__ += _events.__all__
