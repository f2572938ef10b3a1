"""The provider's token desk: per-1k quotes, streamed generation and delivery on ``TokenMarket``.

The real-time path for token models (docs/PROTOCOL.md, "Token models"):

- ``POST /tokens/quote``: a requester asks for a firm quote for its request (prompt ids, budget,
  sampling). The desk prices it per 1,000 tokens from its measured tokens/s and GPU-hour cost
  (``cost = gpu_hour_cost / 3600 / tokens_per_s * 1000``, asked at ``cost * (1 + margin)``),
  promises a latency from the same speed, and signs an EIP-712 ``TokenQuote`` (its digest is
  the job id). A cap below the price is refused (409).
- ``POST /tokens/stream``: once the requester opened the job on chain (``TokenMarket.open``),
  it asks for the tokens. The desk checks the job is Awarded to it for a quote it gave, streams
  the tokens as NDJSON lines (``{"token": id}``) as the micro-batcher makes them, then its signed
  result commitment to the whole sequence (``{"output_hash": ..., "commitment": ...}``: EIP-712
  ``ResultCommitment(jobId, outputHash)``, the quote market's; anyone holding it slashes a desk
  that delivers anything else, ``TokenMarket.slashCommitment``), then puts the sequence on chain
  (``deliver``) and ends with ``{"done": ..., "output_hash": ...}``.

A desk may be told to misbehave (the devnet's cheats): ``cheap`` generates with a cheaper model
(re-executors catch it), ``truncate`` stops halfway without EOS (the chain refuses the delivery;
the job expires slashed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal

from fastapi import FastAPI
from fastapi.responses import JSONResponse, StreamingResponse

from tender.chain import JobState, TokenMarket, TokenQuote, request_hash, token_output_hash
from tender.errors import TenderError
from tender.logs import log
from tender.quotes import sign_commitment
from tender.tokens import Sampling, TokenBatcher, TokenModel, TokenRequest
from tender.wire import TokenQuoteRequest, TokenStreamRequest

__all__ = ["Misbehaviour", "TokenDesk", "TokenQuoteRequest", "TokenStreamRequest", "token_app"]

logger = logging.getLogger("provider.tokens")

Misbehaviour = Literal["cheap", "truncate"]


@dataclass
class _Quoted:
    quote: TokenQuote
    request: TokenRequest
    #: the chain the quote was signed for (the commitment is signed for it too)
    chain_id: int


@dataclass
class TokenDesk:
    """One token model served on one ``TokenMarket`` by one staked key.

    Attributes:
        model: the model it serves (honestly, or not: ``misbehave``).
        market: the market, sending as the provider.
        key: the provider's key (signs quotes).
        model_id: the model's id in the market.
        gpu_hour_cost: payment-token units per GPU-hour of this machine.
        margin: asked over cost.
        tokens_per_s: measured at :meth:`warm_up` (a prior before).
        misbehave: None, ``"cheap"`` (with ``cheap_model``) or ``"truncate"``.
    """

    model: TokenModel
    market: TokenMarket
    key: str
    model_id: bytes
    gpu_hour_cost: int = 2 * 10**18
    margin: float = 0.2
    quote_ttl_s: int = 60
    tokens_per_s: float = 1_000.0
    misbehave: Misbehaviour | None = None
    cheap_model: TokenModel | None = None
    quoted: dict[bytes, _Quoted] = field(default_factory=dict)
    served: int = 0

    def __post_init__(self) -> None:
        serving = self.cheap_model if self.misbehave == "cheap" and self.cheap_model else self.model
        self.batcher = TokenBatcher(serving, max_batch=16, max_wait_ms=5.0)

    @property
    def address(self) -> str:
        sender = self.market.sender
        assert sender is not None
        return sender.address

    def warm_up(self, *, tokens: int = 64) -> float:
        """Measure this machine's tokens/s on the served model (greedy, one request)."""
        request = TokenRequest((self.model.eos_token_id or 0,), tokens)
        start = time.perf_counter()
        made = len(self.model.generate(request).tokens)
        self.tokens_per_s = made / max(time.perf_counter() - start, 1e-6)
        return self.tokens_per_s

    def price_per1k(self) -> int:
        """What 1,000 tokens cost us, with the margin: ``gpu_hour_cost / 3600 / tokens_per_s * 1000``."""
        cost = self.gpu_hour_cost / 3600 / self.tokens_per_s * 1000
        return max(1, math.ceil(cost * (1 + self.margin)))

    def latency_s(self, max_tokens: int) -> int:
        """The promise: the generation at a quarter of our measured speed, plus delivery headroom."""
        return max(8, math.ceil(4 * max_tokens / self.tokens_per_s) + 5)

    def quote(self, body: TokenQuoteRequest, *, now: int, chain_id: int) -> tuple[TokenQuote, bytes] | None:
        """A signed quote, or None when the cap is below our price."""
        price = self.price_per1k()
        if price > body.max_price_per1k:
            return None
        sampling = Sampling(temperature=body.temperature, top_k=body.top_k, seed=body.seed)
        request = TokenRequest(tuple(body.prompt), body.max_tokens, sampling)
        self.served += 1
        quote = TokenQuote(
            requester=body.requester,
            provider=self.address,
            model_id=self.model_id,
            request_hash=request_hash(
                body.prompt, temperature=body.temperature, top_k=body.top_k, seed=body.seed
            ),
            max_tokens=body.max_tokens,
            price_per1k=price,
            latency=self.latency_s(body.max_tokens),
            expiry=now + self.quote_ttl_s,
            salt=time.time_ns() + self.served,
        )
        job_id = quote.digest(chain_id=chain_id, market=self.market.address)
        self.quoted[job_id] = _Quoted(quote, request, chain_id)
        return quote, quote.sign(self.key, chain_id=chain_id, market=self.market.address)

    async def stream(self, job_id: bytes) -> AsyncIterator[bytes]:
        """NDJSON lines: each token as it is made, then the delivery's outcome."""
        quoted = self.quoted.pop(job_id)
        tokens: list[int] = []
        limit = quoted.request.max_tokens // 2 if self.misbehave == "truncate" else None
        async for token in self.batcher.stream(quoted.request):
            tokens.append(token)
            yield json.dumps({"token": token}).encode() + b"\n"
            if limit is not None and len(tokens) >= limit:
                break
        committed = token_output_hash(tokens)
        commitment = sign_commitment(
            job_id, committed, self.key, chain_id=quoted.chain_id, market=self.market.address
        )
        yield json.dumps(
            {"output_hash": "0x" + committed.hex(), "commitment": "0x" + commitment.hex()}
        ).encode()
        yield b"\n"
        outcome: dict[str, object] = {"done": True, "tokens": len(tokens)}
        try:
            receipt = await asyncio.to_thread(self.market.deliver, job_id, tokens)
            outcome["output_hash"] = "0x" + token_output_hash(tokens).hex()
            outcome["gas"] = int(receipt["gasUsed"])
        except TenderError as exc:  # a refused delivery (truncation): reported, the job will expire
            outcome["error"] = str(exc)
            log(logger, "tokens.delivery_refused", level=logging.WARNING, job_id=job_id.hex(), error=str(exc))
        yield json.dumps(outcome).encode() + b"\n"

    async def close(self) -> None:
        await self.batcher.close()


def token_app(desk: TokenDesk) -> FastAPI:
    """The desk's HTTP API (``/tokens/quote``, ``/tokens/stream``, ``/health``)."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await desk.close()

    app = FastAPI(title="Tender token desk", lifespan=lifespan)

    @app.get("/health")
    async def health() -> dict[str, object]:
        return {"ok": True, "provider": desk.address, "price_per1k": desk.price_per1k()}

    @app.post("/tokens/quote")
    async def quote(body: TokenQuoteRequest) -> JSONResponse:
        w3 = desk.market.w3
        block = await asyncio.to_thread(w3.eth.get_block, "latest")
        chain_id = await asyncio.to_thread(lambda: int(w3.eth.chain_id))
        signed = desk.quote(body, now=int(block["timestamp"]), chain_id=chain_id)
        if signed is None:
            return JSONResponse(
                {
                    "error": "PriceAboveCap",
                    "field": "max_price_per1k",
                    "price_per1k": str(desk.price_per1k()),
                },
                status_code=409,
            )
        quote, signature = signed
        return JSONResponse({"quote": quote.to_json(), "signature": "0x" + signature.hex()})

    @app.post("/tokens/stream", response_model=None)
    async def stream(body: TokenStreamRequest) -> StreamingResponse | JSONResponse:
        job_id = bytes.fromhex(body.job_id[2:])
        if job_id not in desk.quoted:
            return JSONResponse({"error": "UnknownQuote", "field": "job_id"}, status_code=404)
        job = await asyncio.to_thread(desk.market.job, job_id)
        if job.state is not JobState.AWARDED or job.provider != desk.address:
            return JSONResponse(
                {"error": "NotAwarded", "field": "job_id", "state": job.state.name}, status_code=409
            )
        return StreamingResponse(desk.stream(job_id), media_type="application/x-ndjson")

    return app
