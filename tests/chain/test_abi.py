"""The Python side agrees with the compiled contracts: events, structs, errors, sizes."""

from __future__ import annotations

import dataclasses

import pytest
from chain_env import tender_built

from tender.chain import EVENT_TYPES, TENDER_CONTRACTS, Job, load_artifact, snake, tender_decoder
from tender.chain._artifacts import MAX_CODE_SIZE
from tender.chain._structs import MarketParams, ModelInfo, Operator, Stats
from tender.intents import INTENT_FIELDS, INTENT_TYPE, Bid, Intent

pytestmark = pytest.mark.skipif(not tender_built(), reason="Tender contracts not built: run `make contracts`")

_META = {"address", "block_number", "tx_hash", "log_index"}


def _components(contract: str, function: str) -> list[str]:
    entry = next(e for e in load_artifact(contract).entries("function") if e["name"] == function)
    return [snake(c["name"]) for c in entry["outputs"][0]["components"]]


@pytest.mark.parametrize("contract", TENDER_CONTRACTS)
def test_every_event_has_a_typed_class_with_its_fields(contract: str) -> None:
    for entry in load_artifact(contract).entries("event"):
        cls = EVENT_TYPES.get(entry["name"])
        assert cls is not None, f"{contract}.{entry['name']} has no class in tender.chain._events"
        fields = {f.name for f in dataclasses.fields(cls)} - _META
        assert fields == {snake(i["name"]) for i in entry["inputs"]}, entry["name"]


def test_each_payout_has_its_own_event() -> None:
    """The market paying out credit (``Withdrawn``), Staking paying out unstaked stake
    (``Redeemed``) and a TenderAgent's owner taking tokens out (``Swept``) emit distinct events:
    each decodes to its own class, and no other payout's ABI reads it as one of its own."""
    from eth_abi import encode

    from tender.chain import LogDecoder, Redeemed, Withdrawn, to_event

    payouts = {"ReverseAuctionMarket": "Withdrawn", "Staking": "Redeemed", "TenderAgent": "Swept"}
    decoders = {contract: LogDecoder(load_artifact(contract).abi) for contract in payouts}

    def log(contract: str) -> dict[str, object]:
        topic = decoders[contract].topic(payouts[contract])
        return {
            "address": "0x" + "aa" * 20,
            "blockNumber": 1,
            "transactionHash": "0x" + "00" * 32,
            "logIndex": 0,
            "topics": [topic, b"\x00" * 12 + b"\x11" * 20],
            "data": "0x" + encode(["uint256"], [7]).hex(),
        }

    for contract, name in payouts.items():
        decoded = decoders[contract].decode(log(contract))
        assert decoded is not None
        assert decoded.name == name
        assert all(d.decode(log(contract)) is None for other, d in decoders.items() if other != contract)
    market = decoders["ReverseAuctionMarket"].decode(log("ReverseAuctionMarket"))
    staking = decoders["Staking"].decode(log("Staking"))
    assert market is not None
    assert staking is not None
    assert to_event(market) == Withdrawn(account="0x" + "11" * 20, amount=7)
    assert to_event(staking) == Redeemed(provider="0x" + "11" * 20, amount=7)


def test_job_struct_matches() -> None:
    ours = [f.name for f in dataclasses.fields(Job) if f.name != "job_id"]
    assert ours == _components("ReverseAuctionMarket", "job")


@pytest.mark.parametrize(
    ("cls", "contract", "function"),
    [
        (MarketParams, "ReverseAuctionMarket", "params"),
        (ModelInfo, "ModelRegistry", "model"),
        (Operator, "Staking", "operator"),
        (Stats, "Staking", "stats"),
        (Bid, "ReverseAuctionMarket", "bestBid"),
    ],
)
def test_struct_dataclasses_match(cls: type, contract: str, function: str) -> None:
    assert [f.name for f in dataclasses.fields(cls)] == _components(contract, function)


def test_intent_fields_and_type_string_match_the_abi() -> None:
    entry = next(
        e for e in load_artifact("ReverseAuctionMarket").entries("function") if e["name"] == "hashIntent"
    )
    components = entry["inputs"][0]["components"]
    assert [(c["name"], c["type"]) for c in components] == [(sol, abi) for sol, _, abi in INTENT_FIELDS]
    assert {name for _, name, _ in INTENT_FIELDS} == {f.name for f in dataclasses.fields(Intent)}
    assert "Intent(" + ",".join(f"{c['type']} {c['name']}" for c in components) + ")" == INTENT_TYPE


def test_decoder_knows_every_custom_error() -> None:
    names = tender_decoder().names
    for contract in TENDER_CONTRACTS:
        for entry in load_artifact(contract).entries("error"):
            assert entry["name"] in names


@pytest.mark.parametrize("contract", TENDER_CONTRACTS)
def test_contract_sizes_fit_eip170(contract: str) -> None:
    size = len(load_artifact(contract).runtime)
    assert size <= MAX_CODE_SIZE, f"{contract} runtime is {size} bytes, over EIP-170's {MAX_CODE_SIZE}"
