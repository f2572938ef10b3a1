"""The token market's test world: a real Anvil with ``TokenMarket``, a requester, a staked provider,
a challenger and three staked re-executors (fixtures in ``conftest.py``)."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from dataclasses import dataclass, replace

from eth_account import Account
from web3 import Web3

from tender.anvil import DEV_KEYS, Anvil
from tender.chain import Staking, Token, TokenMarket, TokenQuote, TxSender, request_hash, token_model_info
from tender.paths import SAMPLE_MODELS
from tender.tokens import Sampling, TokenModel, TokenRequest

#: ``models/lm`` in the registry's re-execution tier, unaudited and every delivery audited; the
#: world's owner (development account 0) registers both
LM_INFO = token_model_info(SAMPLE_MODELS / "lm", audit_rate_bps=0)
AUDITED_INFO = replace(LM_INFO, audit_rate_bps=10_000)
MODEL_ID = LM_INFO.model_id(Account.from_key(DEV_KEYS[0]).address)
AUDITED_ID = AUDITED_INFO.model_id(Account.from_key(DEV_KEYS[0]).address)
PRICE_PER_1K = 2 * 10**16  # 0.02 token per 1k tokens
STAKE = 100 * 10**18
FUNDS = 1_000 * 10**18
BOND = 10**18
WINDOW = 600


@dataclass
class Party:
    key: str
    sender: TxSender
    market: TokenMarket
    token: Token
    staking: Staking

    @property
    def address(self) -> str:
        return self.sender.address


@dataclass
class World:
    chain: Anvil
    w3: Web3
    market_address: str
    owner: Party
    requester: Party
    provider: Party
    challenger: Party
    reexecutors: list[Party]

    def advance(self, seconds: int) -> None:
        self.chain.rpc("evm_increaseTime", [seconds])
        self.chain.rpc("evm_mine", [])
        self.chain.rpc("evm_mine", [])  # the audit draw needs the block after the delivery's mined


def party(w3: Web3, key: str, deployment_token: str, staking: str, market: str) -> Party:
    sender = TxSender(w3, key)
    return Party(
        key=key,
        sender=sender,
        market=TokenMarket(w3, market, sender=sender),
        token=Token(w3, deployment_token, sender=sender),
        staking=Staking(w3, staking, sender=sender),
    )


def token_request(
    model: TokenModel, text: str, max_tokens: int = 48, sampling: Sampling | None = None
) -> TokenRequest:
    return TokenRequest(tuple(model.encode(text)), max_tokens, sampling or Sampling())


def open_job(env: World, request: TokenRequest, *, model_id: bytes = MODEL_ID) -> bytes:
    """The provider quotes ``request``; the requester opens it. Returns the job id."""
    s = request.sampling
    now = int(env.w3.eth.get_block("latest")["timestamp"])
    quote = TokenQuote(
        requester=env.requester.address,
        provider=env.provider.address,
        model_id=model_id,
        request_hash=request_hash(request.prompt, temperature=s.temperature, top_k=s.top_k, seed=s.seed),
        max_tokens=request.max_tokens,
        price_per1k=PRICE_PER_1K,
        latency=120,
        expiry=now + 60,
        salt=now,
    )
    signature = quote.sign(env.provider.key, chain_id=env.w3.eth.chain_id, market=env.market_address)
    receipt = env.requester.market.open(quote, signature)
    job_id = env.requester.market.job_id_in(receipt)
    assert job_id == quote.digest(chain_id=env.w3.eth.chain_id, market=env.market_address)
    return job_id


def wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 180) -> None:
    """Wait until ``url`` answers while ``process`` is alive."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert process.poll() is None, f"{url}: the process exited with {process.returncode}"
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer in {timeout} s")


def served(env: World, model: str = "lm") -> list[str]:
    """What a desk or a token verifier process is told: ``models/<model>`` as ``MODEL_ID`` on the
    world's chain and market."""
    return [
        *("--model", str(SAMPLE_MODELS / model), "--model-id", "0x" + MODEL_ID.hex()),
        *("--rpc", env.chain.rpc_url, "--market", env.market_address),
    ]
