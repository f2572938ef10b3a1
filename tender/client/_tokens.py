"""Buying tokens: an RFQ to token desks, the job opened on ``TokenMarket``, the tokens streamed.

::

    market = TokenMarket(w3, address, sender=TxSender(w3, requester_key))
    result = await request_tokens(market, ["http://127.0.0.1:7400"], prompt_ids,
                                  max_tokens=48, max_price_per1k=10**16, on_token=print)
    result.tokens, result.ttft_s, result.tokens_per_s, result.price_per1k

The requester asks every desk for a firm per-1k quote (``POST /tokens/quote``; a solver answers
the same route with the best quote of its own desks and the desk's ``stream_url``), keeps the
cheapest that is for its own request (the quote's ``request_hash``, budget and cap) and signed by
the quoting provider, opens it on chain (escrow ``ceil(price_per1k * max_tokens / 1000)``), and
reads the tokens as the provider makes them (``POST /tokens/stream``, NDJSON). The provider then
puts the sequence on chain; the job settles after the challenge window (or a dispute) and pays
only the tokens delivered. Needs no model and no onnxruntime.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from tender.chain import TokenMarket, TokenQuote, request_hash, token_output_hash
from tender.client._errors import RequestFailed, RequestRejected
from tender.errors import IntentError
from tender.intents import recover_digest_signer
from tender.quotes import recover_commitment_signer

__all__ = ["TokenResult", "request_tokens"]


@dataclass
class TokenResult:
    """One token request, as the requester saw it.

    Attributes:
        job_id: the job (the quote's digest).
        provider: who generated.
        price_per1k: the quoted price per 1,000 tokens.
        tokens: the ids streamed to us, in order.
        ttft_s: seconds from asking for the stream to the first token.
        stream_s: seconds from asking for the stream to its last token.
        output_hash: keccak256 of the ids as streamed (uint32 big-endian each), when the desk
            committed to them.
        commitment: the desk's signed result commitment to ``output_hash`` (EIP-712
            ``ResultCommitment``, checked: the quoted provider signed it for this job). Should
            the chain get another sequence, ``TokenMarket.slash_commitment`` slashes it.
        delivered: whether the provider put the same sequence on chain (its ``output_hash``).
        error: why the provider's delivery failed, when it did.
        quotes: how many desks quoted.
        disclosed: how many of the verifiers given kept the request (``POST /v1/tokens/requests``:
            only they can re-execute the job when it is audited or challenged).
    """

    job_id: bytes
    provider: str
    price_per1k: int
    tokens: list[int] = field(default_factory=list)
    ttft_s: float | None = None
    stream_s: float = 0.0
    output_hash: bytes | None = None
    commitment: bytes | None = None
    delivered: bool = False
    error: str | None = None
    quotes: int = 0
    disclosed: int = 0

    @property
    def tokens_per_s(self) -> float | None:
        return len(self.tokens) / self.stream_s if self.tokens and self.stream_s > 0 else None


async def _ask(
    http: httpx.AsyncClient, url: str, body: dict[str, Any]
) -> tuple[TokenQuote, bytes, str] | None:
    """A desk's (or a solver's) signed quote and where to stream the tokens from: the desk itself,
    or the desk a solver names (``stream_url``)."""
    try:
        response = await http.post(f"{url}/tokens/quote", json=body)
        if response.status_code != 200:
            return None
        data = response.json()
        stream_url = str(data.get("stream_url") or url)
        if not stream_url.startswith(("http://", "https://")):
            return None
        quote = TokenQuote.from_json(data["quote"])
        return quote, bytes.fromhex(str(data["signature"]).removeprefix("0x")), stream_url.rstrip("/")
    except (httpx.HTTPError, KeyError, ValueError, TypeError):  # a desk that cannot quote is skipped
        return None


def _check_commitment(result: TokenResult, item: dict[str, Any], *, chain_id: int, market: str) -> None:
    """Keeps the desk's result commitment once it binds the streamed ids and the quoted provider
    signed it for this job (else the request is refused: the job stays on chain to expire or be
    challenged)."""
    job = "0x" + result.job_id.hex()
    committed = token_output_hash(result.tokens)
    try:
        claimed = bytes.fromhex(str(item["output_hash"]).removeprefix("0x"))
        signature = bytes.fromhex(str(item["commitment"]).removeprefix("0x"))
        signer = recover_commitment_signer(
            result.job_id, claimed, signature, chain_id=chain_id, market=market
        )
    except (KeyError, ValueError, IntentError) as exc:
        raise RequestRejected(f"bad result commitment: {exc}", job_id=job) from exc
    if claimed != committed:
        raise RequestRejected("the result commitment is not to the streamed tokens", job_id=job)
    if signer != result.provider:
        raise RequestRejected(
            f"the result commitment is signed by {signer}, not {result.provider}", job_id=job
        )
    result.output_hash, result.commitment = claimed, signature


async def _disclose(http: httpx.AsyncClient, url: str, body: dict[str, Any]) -> bool:
    """Hands the request to one verifier; whether it kept it (a verifier down is skipped)."""
    try:
        response = await http.post(f"{url}/v1/tokens/requests", json=body)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


async def request_tokens(
    market: TokenMarket,
    desks: Sequence[str],
    prompt: Sequence[int],
    *,
    max_tokens: int,
    max_price_per1k: int,
    model_id: bytes | None = None,
    temperature: float = 0.0,
    top_k: int = 0,
    seed: int = 0,
    on_token: Callable[[int], None] | None = None,
    verifiers: Sequence[str] = (),
    http: httpx.AsyncClient | None = None,
) -> TokenResult:
    """Buy ``max_tokens`` (at most) of a continuation of ``prompt`` from the cheapest desk.

    ``verifiers`` are the model's verifiers (``tender verifier tokens --listen``): once the job is
    open, the request (prompt and sampling) is disclosed to each, so that they can re-execute the
    delivery, challenge it and vote on its audit. A request disclosed to nobody is never
    re-executed (docs/PROTOCOL.md, "Who sees a token request").

    Raises:
        RequestRejected: no desk quoted within the cap for this request.
        RequestFailed: the stream broke off.
    """
    sender = market.sender
    if sender is None:
        raise RequestRejected("request_tokens: the market wrapper needs the requester as sender")
    own = http or httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=5.0))
    disclosing: list[asyncio.Future[bool]] = []
    try:
        body = {
            "requester": sender.address,
            "prompt": list(prompt),
            "max_tokens": max_tokens,
            "temperature": temperature,
            "top_k": top_k,
            "seed": seed,
            "max_price_per1k": max_price_per1k,
        }
        wanted = request_hash(prompt, temperature=temperature, top_k=top_k, seed=seed)
        chain_id = await asyncio.to_thread(lambda: int(market.w3.eth.chain_id))
        answers = await asyncio.gather(*(_ask(own, url, body) for url in desks))
        valid: list[tuple[TokenQuote, bytes, str]] = []
        for answer in answers:
            if answer is None:
                continue
            quote, signature, url = answer
            ok = (
                quote.requester == sender.address
                and quote.request_hash == wanted
                and quote.max_tokens == max_tokens
                and 0 < quote.price_per1k <= max_price_per1k
                and (model_id is None or quote.model_id == model_id)
            )
            digest = quote.digest(chain_id=chain_id, market=market.address)
            if ok and recover_digest_signer(digest, signature) == quote.provider:
                valid.append((quote, signature, url))
        if not valid:
            raise RequestRejected(f"no token desk quoted within {max_price_per1k} per 1k tokens")
        quote, signature, url = min(valid, key=lambda entry: entry[0].price_per1k)
        receipt = await asyncio.to_thread(market.open, quote, signature)
        job_id = market.job_id_in(receipt)
        result = TokenResult(
            job_id=job_id, provider=quote.provider, price_per1k=quote.price_per1k, quotes=len(valid)
        )
        disclosure = {
            "jobId": "0x" + job_id.hex(),
            "prompt": list(prompt),
            "temperature": temperature,
            "topK": top_k,
            "seed": seed,
        }
        disclosing = [asyncio.ensure_future(_disclose(own, url, disclosure)) for url in verifiers]
        start = time.perf_counter()
        claimed: str | None = None
        async with own.stream(
            "POST", f"{url}/tokens/stream", json={"job_id": "0x" + job_id.hex()}
        ) as response:
            if response.status_code != 200:
                raise RequestFailed(
                    f"{url} refused the stream: {response.status_code} {await response.aread()!r}",
                    job_id="0x" + job_id.hex(),
                )
            async for line in response.aiter_lines():
                if not line.strip():
                    continue
                item = json.loads(line)
                if "token" in item:
                    if result.ttft_s is None:
                        result.ttft_s = time.perf_counter() - start
                    result.tokens.append(int(item["token"]))
                    if on_token is not None:
                        on_token(int(item["token"]))
                elif "commitment" in item:
                    _check_commitment(result, item, chain_id=chain_id, market=market.address)
                elif item.get("done"):
                    claimed = item.get("output_hash")
                    result.error = item.get("error")
        result.stream_s = time.perf_counter() - start
        result.disclosed = sum(await asyncio.gather(*disclosing))
        result.delivered = claimed == "0x" + token_output_hash(result.tokens).hex()
        return result
    except httpx.HTTPError as exc:
        raise RequestFailed(f"token stream failed: {exc}") from exc
    finally:
        for task in disclosing:  # a stream that broke off leaves no disclosure behind
            task.cancel()
        await asyncio.gather(*disclosing, return_exceptions=True)
        if http is None:
            await own.aclose()
