"""Batched proofs on real parts: Anvil with the ``QuoteMarket``, the sample MLP's batch-4 bundle
(hashed inputs) registered as its own model, and a real provider node (onnxruntime, EZKL witness
and proofs in its proving pool) configured with ``batch_bundle``.

Three requesters each take the node's quote for their own job of the batch model and open it
with their own ``openAwarded``; the node collects the three awarded jobs and settles them with
one real EZKL batch proof in one ``deliverBatch`` (the fourth slot padding, which settles
nothing), each with exactly the output it committed to. Nothing here is timed: the waits are
hang guards only (``batch_wait_s`` is the collection window, longer than the three awards take).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from provider_testing import running

from provider import ProviderChain, ProviderNode, ProviderSection
from provider._batch_proofs import batch_model
from tender.anvil import DEV_KEYS, Anvil, free_port
from tender.chain import (
    PADDING_JOB,
    BatchDelivered,
    Delivered,
    Deployment,
    JobState,
    QuoteMarket,
    Staking,
    Token,
    TxSender,
    connect,
)
from tender.errors import ConfigError
from tender.intents import AuctionType, Intent, NonceSequence, ProofMode, sign_intent
from tender.models import Bundle, build, input_commitment
from tender.paths import SAMPLE_MODELS
from tender.quotes import Quote, output_hash, quote_digest
from tender.rfq import FirmQuote, RunQuoted

pytestmark = pytest.mark.slow

PROVIDER_KEY = DEV_KEYS[3]
REQUESTER_KEYS = [DEV_KEYS[4], DEV_KEYS[5], DEV_KEYS[6]]
PROVIDER = Account.from_key(PROVIDER_KEY).address
UNIT = 10**18
SETTLE_TIMEOUT = 600


@dataclass
class Chain:
    anvil: Anvil
    w3: Any
    deployment: Deployment
    single: Bundle
    batch: Bundle
    batch_model_id: str


def _register(w3: Any, deployment: Deployment, bundle: Bundle) -> str:
    from tender.chain import ModelInfo, Registry
    from tender.models import deploy_verifier, registry_entry

    sender = TxSender(w3, DEV_KEYS[0])
    verifier = deploy_verifier(w3, sender, bundle)
    entry = registry_entry(bundle, verifier=verifier, owner=sender.address, chain_id=31337)
    registry = Registry(w3, deployment.registry, sender=sender)
    receipt = registry.register(ModelInfo.from_dict(entry))
    (event,) = [e for e in registry.events_in(receipt) if e.name == "ModelRegistered"]
    return "0x" + bytes(event.model_id).hex()  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    from tender.devnet._chain import ChainSetup

    folder = tmp_path_factory.mktemp("chain")
    mlp = SAMPLE_MODELS / "mlp"
    single = build(mlp / "model.onnx", mlp / "calibration.json")
    batch = build(mlp / "model.onnx", mlp / "calibration.json", batch=4, input_visibility="hashed")
    with Anvil() as anvil:
        w3 = connect(anvil.rpc_url)
        setup = ChainSetup(w3, DEV_KEYS[0])
        deployment = setup.deploy(save=folder / "deployment.json")
        _register(w3, deployment, single)
        batch_id = _register(w3, deployment, batch)
        requesters = [Account.from_key(k).address for k in REQUESTER_KEYS]
        setup.mint([PROVIDER, *requesters], 10**24)
        setup.stake(PROVIDER_KEY, 10**22)
        for key in REQUESTER_KEYS:
            Token(w3, deployment.token, sender=TxSender(w3, key)).ensure_allowance(
                deployment.market("quote"), 10**23
            )
        yield Chain(anvil, w3, deployment, single, batch, batch_id)


def _section(chain: Chain, store: Path, **entry: Any) -> ProviderSection:
    model = {
        "name": "mlp",
        "onnx": str(chain.single.onnx),
        "bundle": str(chain.single.path),
        "batch_bundle": str(chain.batch.path),
        **entry,
    }
    return ProviderSection.model_validate(
        {
            "listen": f"127.0.0.1:{free_port()}",
            "models": [model],
            "store": str(store),
            "proving_workers": 1,
            "proving_nice": 0,
            "poll_interval_s": 0.1,
            "withdraw_threshold": 0,
        }
    )


def _samples() -> list[list[float]]:
    data = json.loads((SAMPLE_MODELS / "mlp" / "samples.json").read_text())
    return [s["input"] for s in data["samples"]]


def _intent(chain: Chain, key: str, row: list[float], nonces: NonceSequence) -> Intent:
    now = int(chain.w3.eth.get_block("latest")["timestamp"])
    return Intent(
        requester=Account.from_key(key).address,
        model_id=bytes.fromhex(chain.batch_model_id[2:]),
        input_commitment=input_commitment(chain.batch, row),
        max_price=10 * UNIT,
        auction_type=AuctionType.QUOTE,
        auction_window=60,
        deadline=now + 3_600,
        proof_mode=ProofMode.ZK,
        min_stake=UNIT,
        price_weight_bps=8_000,
        nonce=nonces.next(),
        expiry=now + 600,
        input_location=json.dumps(row).encode(),
    )


async def _take_and_open(node: ProviderNode, chain: Chain, key: str, intent: Intent) -> tuple[bytes, str]:
    """The requester ``key`` takes the node's quote for ``intent`` (``/rfq/quote``, ``/rfq/run``) and
    opens it on chain with its own ``openAwarded``; the job id and the committed output hash."""
    address = chain.deployment.market("quote")
    market = QuoteMarket(chain.w3, address, sender=TxSender(chain.w3, key))
    job = market.job_id(intent)
    signed = {
        "intent": intent.to_json(),
        "signature": "0x" + sign_intent(intent, key, chain_id=31337, market=address).hex(),
        "market": address,
        "chainId": 31337,
        "jobId": "0x" + job.hex(),
    }
    from tender.wire import SignedIntentWire

    firm = await node.rfq.quote(SignedIntentWire.model_validate(signed))
    assert isinstance(firm, FirmQuote), firm
    quote = Quote.from_json(firm.quote)
    from tender.intents import sign_digest

    acceptance = sign_digest(quote_digest(quote, chain_id=31337, market=address), key)
    committed = await node.rfq.run(
        RunQuoted.model_validate(
            {
                "signed": signed,
                "quote": firm.quote,
                "quoteSignature": firm.signature,
                "acceptance": "0x" + acceptance.hex(),
            }
        )
    )
    await asyncio.to_thread(market.open_awarded, intent, quote, bytes.fromhex(firm.signature[2:]))
    return job, committed.outputHash


async def test_three_jobs_of_three_requesters_settle_in_one_batch_proof(chain: Chain, tmp_path: Path) -> None:
    market = QuoteMarket(chain.w3, chain.deployment.market("quote"))
    staking = Staking(chain.w3, chain.deployment.staking)
    stake_before = staking.stake_of(PROVIDER)
    start = chain.w3.eth.block_number
    node = ProviderNode(
        _section(chain, tmp_path / "jobs.db", batch_wait_s=20),
        chain=ProviderChain(chain.w3, chain.deployment, PROVIDER_KEY),
        key=PROVIDER_KEY,
    )
    rows = _samples()[:3]
    async with running(node):
        assert node.by_model_id[chain.batch_model_id].batch == 4  # found in the registry by its hashes
        nonces = [NonceSequence() for _ in REQUESTER_KEYS]
        taken = [
            await _take_and_open(node, chain, key, _intent(chain, key, row, nonce))
            for key, row, nonce in zip(REQUESTER_KEYS, rows, nonces, strict=True)
        ]
        jobs = [job for job, _ in taken]
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while node.rfq.runs:  # each job's settlement ends once its deliverBatch's receipt is read
            assert time.monotonic() < deadline, [market.job_state(j) for j in jobs]
            await asyncio.sleep(0.5)
        collector = node.rfq.collector(node.by_model_id[chain.batch_model_id])
        assert collector.sent == [3]
    events = list(market.events(start + 1))
    batches = [e for e in events if isinstance(e, BatchDelivered)]
    assert len(batches) == 1
    assert batches[0].settled == 0b111  # slots 0..2 settled; slot 3 (padding) settled nothing
    delivered = {bytes(e.job_id): e for e in events if isinstance(e, Delivered)}
    assert set(delivered) == set(jobs)
    for job, committed in taken:
        # each job settled with exactly the output the node committed to at /rfq/run
        assert "0x" + output_hash(delivered[job].output).hex() == committed.lower()
        assert market.job_state(job) is JobState.SETTLED
    assert market.job_state(PADDING_JOB) is JobState.NONE
    assert staking.stake_of(PROVIDER) == stake_before  # the honest provider is never slashed
    assert market.owed(PROVIDER) > 0


def test_batch_bundle_must_be_a_batch_of_the_same_model(chain: Chain, tmp_path: Path) -> None:
    from provider._node import ServedModel
    from provider._spec import read_spec

    section = _section(chain, tmp_path / "jobs.db", batch_bundle=str(chain.single.path))
    entry = section.models[0]
    served = ServedModel(entry, read_spec("mlp", entry.onnx), None, [], None)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"provider\.models\.mlp\.batch_bundle: .*one job per proof"):
        batch_model(served, [])
    with pytest.raises(ValueError, match="batch_model_id needs batch_bundle"):
        ProviderSection.model_validate(
            {"models": [{"name": "mlp", "onnx": str(chain.single.onnx), "batch_model_id": "0x" + "01" * 32}]}
        )
